#pragma once
// ModelRepository: the model directories under one or more repository roots, laid out as
// Triton does:
//   <root>/<model>/config.pbtxt
//   <root>/<model>/<version>/...     (version: a positive decimal integer, e.g. "1")
// Hidden entries, plain files in a root and non-numeric version directories are ignored.
// The scan records fingerprints so that a poller can tell which models changed.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::engine {

// One model directory as found on disk (not yet loaded or validated).
struct ModelDirectory {
  std::string name;
  std::filesystem::path path;               // <root>/<name>
  std::map<int64_t, std::string> versions;  // version -> fingerprint of its files (names,
                                            // sizes, mtimes, recursively)
  std::string config_fingerprint;           // hash of config.pbtxt's contents; empty if missing
};

// What a scan of every root found.
struct RepositoryScan {
  std::vector<ModelDirectory> models;    // sorted by name; duplicated names are left out
  std::map<std::string, Status> errors;  // per model name, e.g. the same name in two roots
};

// The repository roots. Thread-safe: the roots never change and the const methods only
// read the filesystem, so concurrent calls are fine (each sees the disk at its own time).
class ModelRepository {
 public:
  explicit ModelRepository(std::vector<std::filesystem::path> roots);

  // The roots given at construction, in order.
  const std::vector<std::filesystem::path>& roots() const { return roots_; }

  // Lists every model of every root. Fails only when a root is missing or unreadable
  // (NOT_FOUND / INVALID_ARGUMENT naming the root); per-model problems go to `errors`.
  Result<RepositoryScan> Scan() const;

  // The directory of one model: NOT_FOUND naming the model and the roots; INVALID_ARGUMENT
  // (the same message as Scan's) when two roots have it; a root error as in Scan.
  Result<ModelDirectory> Find(std::string_view model) const;

 private:
  std::vector<std::filesystem::path> roots_;
};

// Which version directories a version policy serves.
struct VersionSelection {
  std::vector<int64_t> load;     // versions to load, ascending
  std::vector<int64_t> missing;  // 'specific' versions with no directory, ascending
};

// Applies `policy` to the available versions: latest{n} (n = 0 means 1) takes the n
// highest, all takes all, specific takes the listed ones that exist. Unset = latest 1.
VersionSelection SelectVersions(const inference::ModelVersionPolicy& policy,
                                const std::map<int64_t, std::string>& available);

}  // namespace quiver::engine
