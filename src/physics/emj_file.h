#pragma once
// EmjFile: a reader of the test bed's HDF5 layout ("quiver-emj/1", docs/testbed-contract.md)
// that hands out events [a, b) as an EventChunk.
//
// Open checks the `format` attribute, that every dataset of the contract is present, 1-D,
// of the contract's dtype and length, and that both offsets arrays start at 0 and end at
// their content's length. Read checks the offsets of its slice (non-decreasing, inside the
// content). Every failure is a Status naming the file and the dataset or attribute (the
// HDF5 library's own error printing is switched off); nothing aborts on a bad file.
// Not thread-safe: one EmjFile per reading thread (the HDF5 library is a thread-safe build,
// so separate EmjFile objects may be used concurrently).

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "physics/event_chunk.h"
#include "physics/h5_handle.h"

namespace quiver::physics {

// The file's root attributes and sizes.
struct SampleInfo {
  std::string path;
  std::string sample;   // e.g. "qcd", "emj_ctau25"
  std::string process;  // "qcd" | "signal"
  double ctau_mm = -1;
  int64_t seed = 0;
  int64_t n_events = 0;
  int64_t n_jets = 0;
  int64_t n_tracks = 0;
};

inline constexpr const char* kEmjFormat = "quiver-emj/1";

class EmjFile {
 public:
  // NOT_FOUND when `path` does not exist; INVALID_ARGUMENT for anything else wrong with it.
  static Result<std::unique_ptr<EmjFile>> Open(const std::string& path);

  const SampleInfo& info() const { return info_; }
  int64_t n_events() const { return info_.n_events; }

  // Events [begin, end) (0 <= begin <= end <= n_events, else INVALID_ARGUMENT). A read
  // failure (corrupt chunk, inconsistent offsets) is INVALID_ARGUMENT naming the file,
  // dataset and range.
  Result<EventChunk> Read(int64_t begin, int64_t end) const;

 private:
  struct Datasets;
  explicit EmjFile(std::string path);

  SampleInfo info_;
  H5Handle file_;
  std::unique_ptr<Datasets> ds_;

 public:
  ~EmjFile();
};

}  // namespace quiver::physics
