#include "engine/model_repository.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <system_error>

namespace quiver::engine {
namespace {

namespace fs = std::filesystem;

// 64-bit FNV-1a: a fingerprint only has to change when its input changes; it is not a
// defence against anyone.
class Fingerprint {
 public:
  void Add(std::string_view bytes) {
    for (unsigned char c : bytes) hash_ = (hash_ ^ c) * 1099511628211ull;
  }
  std::string Hex() const { return fmt::format("{:016x}", hash_); }

 private:
  uint64_t hash_ = 14695981039346656037ull;
};

bool IsHidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return name.empty() || name.front() == '.';
}

// The version a directory name stands for ("1", "42"); 0 when it is not a canonical
// positive decimal integer ("0", "01", "v1", "1.0" are not versions).
int64_t VersionFromName(std::string_view name) {
  if (name.empty() || name.front() == '0') return 0;
  int64_t version = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), version);
  if (ec != std::errc() || end != name.data() + name.size()) return 0;
  return version;
}

// Fingerprint of every entry under `dir`: relative path, and size and mtime of files.
std::string TreeFingerprint(const fs::path& dir) {
  std::vector<std::string> entries;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    std::string line = entry.path().lexically_relative(dir).generic_string();
    std::error_code entry_ec;
    if (entry.is_regular_file(entry_ec)) {
      const auto size = entry.file_size(entry_ec);
      const auto mtime = entry.last_write_time(entry_ec).time_since_epoch().count();
      line += fmt::format("|{}|{}", size, static_cast<int64_t>(mtime));
    } else if (entry.is_directory(entry_ec)) {
      line += "/";
    }
    entries.push_back(std::move(line));
  }
  if (ec) entries.push_back(fmt::format("!{}", ec.message()));  // unreadable: still a stable value
  std::sort(entries.begin(), entries.end());
  Fingerprint fingerprint;
  for (const std::string& entry : entries) {
    fingerprint.Add(entry);
    fingerprint.Add("\n");
  }
  return fingerprint.Hex();
}

// Fingerprint of a file's contents; empty when it does not exist or cannot be read.
std::string FileFingerprint(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  Fingerprint fingerprint;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    fingerprint.Add(std::string_view(buffer, static_cast<size_t>(in.gcount())));
  }
  return fingerprint.Hex();
}

// Reads one model directory: its version directories and config fingerprint.
ModelDirectory ReadModelDirectory(const fs::path& path, std::string name) {
  ModelDirectory model{std::move(name), path, {}, FileFingerprint(path / "config.pbtxt")};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    std::error_code entry_ec;
    if (!entry.is_directory(entry_ec)) continue;
    const int64_t version = VersionFromName(entry.path().filename().string());
    if (version > 0) model.versions[version] = TreeFingerprint(entry.path());
  }
  return model;
}

// NOT_FOUND / INVALID_ARGUMENT when `root` is missing or not a directory.
Status CheckRoot(const fs::path& root) {
  std::error_code ec;
  const fs::file_status status = fs::status(root, ec);
  if (!fs::exists(status)) {
    return Status::NotFound(fmt::format("model repository {} does not exist", root.string()));
  }
  if (!fs::is_directory(status)) {
    return Status::InvalidArgument(
        fmt::format("model repository {} is not a directory", root.string()));
  }
  return Status::Ok();
}

Status DuplicateModel(std::string_view name, const std::vector<fs::path>& paths) {
  std::vector<std::string> listed;
  for (const fs::path& path : paths) listed.push_back(path.string());
  return Status::InvalidArgument(fmt::format(
      "model '{}' is in more than one model repository: {}; a model name must be unique "
      "across repositories",
      name, fmt::join(listed, " and ")));
}

std::string RootList(const std::vector<fs::path>& roots) {
  std::vector<std::string> listed;
  for (const fs::path& root : roots) listed.push_back(root.string());
  return fmt::format("{}", fmt::join(listed, ", "));
}

}  // namespace

ModelRepository::ModelRepository(std::vector<std::filesystem::path> roots)
    : roots_(std::move(roots)) {}

Result<RepositoryScan> ModelRepository::Scan() const {
  std::map<std::string, std::vector<fs::path>> found;  // name -> its directories
  for (const fs::path& root : roots_) {
    QUIVER_RETURN_IF_ERROR(CheckRoot(root));
    std::error_code ec;
    fs::directory_iterator it(root, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      std::error_code entry_ec;
      if (IsHidden(it->path()) || !it->is_directory(entry_ec)) continue;
      found[it->path().filename().string()].push_back(it->path());
    }
    if (ec) {
      return Status::InvalidArgument(
          fmt::format("cannot read model repository {}: {}", root.string(), ec.message()));
    }
  }
  RepositoryScan scan;
  for (const auto& [name, paths] : found) {
    if (paths.size() > 1) {
      scan.errors.emplace(name, DuplicateModel(name, paths));
    } else {
      scan.models.push_back(ReadModelDirectory(paths.front(), name));
    }
  }
  return scan;
}

Result<ModelDirectory> ModelRepository::Find(std::string_view model) const {
  // Names come from requests: never let one step outside a root.
  const bool plain_name = !model.empty() && model.front() != '.' &&
                          model.find_first_of(std::string_view("/\\\0", 3)) == model.npos;
  std::vector<fs::path> paths;
  for (const fs::path& root : roots_) {
    QUIVER_RETURN_IF_ERROR(CheckRoot(root));
    std::error_code ec;
    if (plain_name && fs::is_directory(root / model, ec)) paths.push_back(root / model);
  }
  if (paths.empty()) {
    return Status::NotFound(
        fmt::format("model '{}' is not in the model repository ({})", model, RootList(roots_)));
  }
  if (paths.size() > 1) return DuplicateModel(model, paths);
  return ReadModelDirectory(paths.front(), std::string(model));
}

VersionSelection SelectVersions(const inference::ModelVersionPolicy& policy,
                                const std::map<int64_t, std::string>& available) {
  VersionSelection selection;
  switch (policy.policy_choice_case()) {
    case inference::ModelVersionPolicy::kAll:
      for (const auto& entry : available) selection.load.push_back(entry.first);
      break;
    case inference::ModelVersionPolicy::kSpecific: {
      const std::set<int64_t> wanted(policy.specific().versions().begin(),
                                     policy.specific().versions().end());
      for (int64_t version : wanted) {
        (available.contains(version) ? selection.load : selection.missing).push_back(version);
      }
      break;
    }
    case inference::ModelVersionPolicy::kLatest:
    case inference::ModelVersionPolicy::POLICY_CHOICE_NOT_SET: {
      uint32_t n = policy.has_latest() ? policy.latest().num_versions() : 1;
      if (n == 0) n = 1;
      for (auto it = available.rbegin(); it != available.rend() && n > 0; ++it, --n) {
        selection.load.push_back(it->first);
      }
      std::reverse(selection.load.begin(), selection.load.end());
      break;
    }
  }
  return selection;
}

}  // namespace quiver::engine
