#pragma once
// glibc malloc's thresholds for processes that run models.
//
// glibc returns freed memory to the kernel early: blocks of 128 KiB and more are mmapped
// and unmapped at once until its adaptive threshold has grown, and an arena's free top is
// given back (madvise/sbrk) past a trim threshold. A model's intermediates are freed and
// allocated again every batch (simple_mlp at batch 64: 128 KiB tensors), so batches faulted
// fresh pages in. How often depends on the order of frees: a Python process running
// simple_mlp over local:// took ~30 page faults per call and ~10 % of its CPU in them,
// `quiver perf` far fewer (docs/benchmarks.md, "Tenth session").
// PinMallocThresholds sets both thresholds to where glibc's own adaptation stops (mmap at
// 32 MiB, trim at 64 MiB): an arena's free top of up to 64 MiB is no longer given back, and
// blocks up to 32 MiB come from the arenas, so a process keeps more freed memory than with
// glibc's defaults (more than 64 MiB in all where several arenas are in use). It overrides
// thresholds the process set with its own mallopt calls.

#include <cstddef>
#include <functional>
#include <string>

namespace quiver {

inline constexpr size_t kMallocMmapThreshold = size_t{32} << 20;
inline constexpr size_t kMallocTrimThreshold = size_t{64} << 20;

// Whether to pin the thresholds, and why not. Not when QUIVER_MALLOC_TUNING is off, 0,
// false or no (any case), nor when the process chose its own malloc settings in its
// environment (GLIBC_TUNABLES naming glibc.malloc.*, or MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_). `getenv` reads one variable (nullptr when
// unset).
struct MallocTuningDecision {
  bool pin = false;
  std::string reason;  // why not, when !pin
};
MallocTuningDecision DecideMallocTuning(const std::function<const char*(const char*)>& getenv);

// Pins the thresholds once per process unless DecideMallocTuning says not to (later calls
// do nothing). Returns whether the thresholds are pinned. Thread-safe.
bool PinMallocThresholds();

}  // namespace quiver
