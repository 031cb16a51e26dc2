#pragma once
// `quiver perf`: load generator and latency/throughput profiler for any KServe v2 server
// (quiver serve, NVIDIA Triton), modelled on NVIDIA's perf_analyzer. See
// docs/benchmarks.md ("quiver perf") for the flags, the output and how it compares.

#include "bench/perf_options.h"

namespace quiver::bench {

// Exit codes of `quiver perf`.
inline constexpr int kPerfOk = 0;
inline constexpr int kPerfError = 1;     // server, model or request failure
inline constexpr int kPerfBadFlags = 2;  // invalid flag values
inline constexpr int kPerfUnstable = 3;  // measured, but some level never stabilised

// Runs the sweep and prints the table (stdout; stderr with --json), writes -f's CSV and
// --json's document; returns one of the exit codes above.
int RunPerf(const PerfOptions& options);

}  // namespace quiver::bench
