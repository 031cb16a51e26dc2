#pragma once
// The arithmetic of `quiver perf`, kept apart from the load and the network so that it can
// be tested exactly: per-window summaries, perf_analyzer's stability rule, the merge of the
// stable windows, and the server-side statistics deltas.
//
// Semantics follow perf_analyzer 2.x (inference_profiler.cc):
//   - a request belongs to the window in which it *completed*; latency = completion - send;
//   - throughput = completed requests x batch size / window duration;
//   - percentile p of n sorted latencies is element floor(p/100 * (n - 1) + 0.5);
//   - a level is stable when, over the last 3 windows, max/min <= 1 + threshold for the
//     throughput and for the stabilising latency (the average, or --percentile), and no
//     window had zero throughput;
//   - the reported result merges those 3 windows (latencies pooled, counts and durations
//     summed); server averages are per request (Triton's statistics count per request).

#include <cstdint>
#include <span>
#include <vector>

#include "service/types.h"

namespace quiver::bench {

// One request as the load generator saw it (steady clock, nanoseconds).
struct RequestRecord {
  int64_t send_ns = 0;
  int64_t end_ns = 0;
  bool delayed = false;  // request-rate mode: sent later than scheduled
};

// Cumulative server counters for one model (summed over its versions), as the statistics
// extension reports them.
struct ServerCounters {
  uint64_t inference_count = 0;
  uint64_t execution_count = 0;
  StatisticDuration success;
  StatisticDuration queue;
  StatisticDuration compute_input;
  StatisticDuration compute_infer;
  StatisticDuration compute_output;
};

// Sums the statistics of every entry (the versions of one model).
ServerCounters SumStatistics(std::span<const ModelStatistics> stats);
// end - start, field by field (0 where a counter went backwards: a reloaded model).
ServerCounters Delta(const ServerCounters& end, const ServerCounters& start);
ServerCounters& operator+=(ServerCounters& a, const ServerCounters& b);

// Average duration per request in ns; 0 without requests.
uint64_t AverageNs(const StatisticDuration& d);

// perf_analyzer's percentile of ascending `sorted` latencies; 0 when empty.
uint64_t PercentileNs(std::span<const uint64_t> sorted, int percentile);

// Latency figures of a set of requests.
struct LatencySummary {
  uint64_t count = 0;
  uint64_t avg_ns = 0;
  uint64_t std_ns = 0;  // sample standard deviation
  uint64_t p50_ns = 0, p90_ns = 0, p95_ns = 0, p99_ns = 0;
  uint64_t extra_ns = 0;  // the --percentile value, when one was asked for
};
// `sorted` ascending; `extra_percentile` -1 for none.
LatencySummary SummarizeLatencies(std::span<const uint64_t> sorted, int extra_percentile);

// One measurement window.
struct Window {
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  std::vector<uint64_t> latencies_ns;  // ascending, of requests completed in the window
  uint64_t delayed = 0;                // of those, sent late (request-rate mode)
  uint64_t sent = 0;                   // requests sent during the window
  ServerCounters server;               // delta over the window
  bool has_server = false;

  double duration_s() const { return static_cast<double>(end_ns - start_ns) * 1e-9; }
};

// Fills `window.latencies_ns` (sorted) and `delayed` from the records that completed in
// [window.start_ns, window.end_ns]; the others (completed later) are left in `records`.
void AssignRecords(std::vector<RequestRecord>& records, Window& window);

// Throughput in inferences per second (requests x batch / duration).
double InferPerSec(uint64_t requests, int64_t batch, double duration_s);

// The two numbers the stability rule compares, for one window.
struct WindowPoint {
  double infer_per_sec = 0;
  double latency_ns = 0;  // average, or the --percentile latency
};
WindowPoint PointOf(const Window& window, int64_t batch, int percentile);

// perf_analyzer's rule over the last `window_count` points (see the file comment).
bool IsStable(std::span<const WindowPoint> points, double threshold, size_t window_count = 3);

// A measured level: the merge of its last windows.
struct LevelResult {
  double level = 0;  // concurrency or request rate
  bool stable = false;
  int windows = 0;  // windows measured for this level (incl. unstable ones)
  uint64_t request_count = 0;
  double duration_s = 0;
  double infer_per_sec = 0;
  double send_rate = 0;  // requests sent per second (request-rate mode: vs the target)
  double delayed_fraction = 0;
  LatencySummary latency;
  bool has_server = false;
  ServerCounters server;
  // Client-side marshalling split; the transports do not measure it, so always 0 (as
  // perf_analyzer itself reports for its gRPC client).
  uint64_t client_send_ns = 0;
  uint64_t client_recv_ns = 0;
};

// Merges `windows` (the last ones of a level) into its result.
LevelResult MergeWindows(std::span<const Window> windows, double level, int64_t batch,
                         int percentile);

// The latency the stability rule and --latency-threshold look at.
uint64_t StabilizingLatencyNs(const LevelResult& r, int percentile);

// Server-side split of the average latency, perf_analyzer's CSV columns in ns:
// network_ns = client average - send - recv - (queue + compute), floored at 0.
struct ServerSplit {
  uint64_t network_ns = 0;
  uint64_t queue_ns = 0;
  uint64_t compute_input_ns = 0;
  uint64_t compute_infer_ns = 0;
  uint64_t compute_output_ns = 0;
};
ServerSplit SplitOf(const LevelResult& r);

}  // namespace quiver::bench
