#include "bench/perf_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace quiver::bench {
namespace {

uint64_t Minus(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

StatisticDuration Minus(const StatisticDuration& a, const StatisticDuration& b) {
  return {Minus(a.count, b.count), Minus(a.ns, b.ns)};
}

void Add(StatisticDuration& a, const StatisticDuration& b) {
  a.count += b.count;
  a.ns += b.ns;
}

}  // namespace

ServerCounters SumStatistics(std::span<const ModelStatistics> stats) {
  ServerCounters c;
  for (const ModelStatistics& s : stats) {
    ServerCounters one;
    one.inference_count = s.inference_count;
    one.execution_count = s.execution_count;
    one.success = s.success;
    one.queue = s.queue;
    one.compute_input = s.compute_input;
    one.compute_infer = s.compute_infer;
    one.compute_output = s.compute_output;
    c += one;
  }
  return c;
}

ServerCounters Delta(const ServerCounters& end, const ServerCounters& start) {
  ServerCounters d;
  d.inference_count = Minus(end.inference_count, start.inference_count);
  d.execution_count = Minus(end.execution_count, start.execution_count);
  d.success = Minus(end.success, start.success);
  d.queue = Minus(end.queue, start.queue);
  d.compute_input = Minus(end.compute_input, start.compute_input);
  d.compute_infer = Minus(end.compute_infer, start.compute_infer);
  d.compute_output = Minus(end.compute_output, start.compute_output);
  return d;
}

ServerCounters& operator+=(ServerCounters& a, const ServerCounters& b) {
  a.inference_count += b.inference_count;
  a.execution_count += b.execution_count;
  Add(a.success, b.success);
  Add(a.queue, b.queue);
  Add(a.compute_input, b.compute_input);
  Add(a.compute_infer, b.compute_infer);
  Add(a.compute_output, b.compute_output);
  return a;
}

uint64_t AverageNs(const StatisticDuration& d) { return d.count == 0 ? 0 : d.ns / d.count; }

uint64_t PercentileNs(std::span<const uint64_t> sorted, int percentile) {
  if (sorted.empty()) return 0;
  const auto index =
      static_cast<size_t>(percentile / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(index, sorted.size() - 1)];
}

LatencySummary SummarizeLatencies(std::span<const uint64_t> sorted, int extra_percentile) {
  LatencySummary s;
  s.count = sorted.size();
  if (sorted.empty()) return s;
  // Sums in long double: 10^7 latencies of 10^9 ns still fit exactly enough.
  long double sum = 0;
  for (uint64_t v : sorted) sum += static_cast<long double>(v);
  const long double mean = sum / static_cast<long double>(sorted.size());
  s.avg_ns = static_cast<uint64_t>(mean);
  if (sorted.size() > 1) {
    long double sq = 0;
    for (uint64_t v : sorted) {
      const long double d = static_cast<long double>(v) - mean;
      sq += d * d;
    }
    s.std_ns = static_cast<uint64_t>(std::sqrt(sq / static_cast<long double>(sorted.size() - 1)));
  }
  s.p50_ns = PercentileNs(sorted, 50);
  s.p90_ns = PercentileNs(sorted, 90);
  s.p95_ns = PercentileNs(sorted, 95);
  s.p99_ns = PercentileNs(sorted, 99);
  if (extra_percentile > 0) s.extra_ns = PercentileNs(sorted, extra_percentile);
  return s;
}

void AssignRecords(std::vector<RequestRecord>& records, Window& window) {
  auto later = std::partition(records.begin(), records.end(), [&](const RequestRecord& r) {
    return r.end_ns >= window.start_ns && r.end_ns <= window.end_ns;
  });
  for (auto it = records.begin(); it != later; ++it) {
    window.latencies_ns.push_back(
        static_cast<uint64_t>(std::max<int64_t>(0, it->end_ns - it->send_ns)));
    if (it->delayed) ++window.delayed;
  }
  // Records that ended before the window (left over from a previous level) are dropped;
  // those that end after it wait for the next window.
  records.erase(records.begin(), later);
  std::erase_if(records, [&](const RequestRecord& r) { return r.end_ns < window.start_ns; });
  std::sort(window.latencies_ns.begin(), window.latencies_ns.end());
}

double InferPerSec(uint64_t requests, int64_t batch, double duration_s) {
  if (duration_s <= 0) return 0;
  return static_cast<double>(requests) * static_cast<double>(batch) / duration_s;
}

WindowPoint PointOf(const Window& window, int64_t batch, int percentile) {
  WindowPoint p;
  p.infer_per_sec = InferPerSec(window.latencies_ns.size(), batch, window.duration_s());
  const LatencySummary s = SummarizeLatencies(window.latencies_ns, percentile);
  p.latency_ns = static_cast<double>(percentile > 0 ? s.extra_ns : s.avg_ns);
  return p;
}

bool IsStable(std::span<const WindowPoint> points, double threshold, size_t window_count) {
  if (window_count == 0 || points.size() < window_count) return false;
  const auto last = points.subspan(points.size() - window_count);
  double min_ips = last[0].infer_per_sec, max_ips = min_ips;
  double min_lat = last[0].latency_ns, max_lat = min_lat;
  for (const WindowPoint& p : last) {
    if (p.infer_per_sec <= 0) return false;
    min_ips = std::min(min_ips, p.infer_per_sec);
    max_ips = std::max(max_ips, p.infer_per_sec);
    min_lat = std::min(min_lat, p.latency_ns);
    max_lat = std::max(max_lat, p.latency_ns);
  }
  // A 0 ns latency (a clock that did not move) only compares equal to itself.
  const bool latency_ok = min_lat > 0 ? max_lat / min_lat <= 1 + threshold : max_lat == min_lat;
  return max_ips / min_ips <= 1 + threshold && latency_ok;
}

LevelResult MergeWindows(std::span<const Window> windows, double level, int64_t batch,
                         int percentile) {
  LevelResult r;
  r.level = level;
  std::vector<uint64_t> pooled;
  uint64_t delayed = 0;
  uint64_t sent = 0;
  r.has_server = !windows.empty();
  for (const Window& w : windows) {
    pooled.insert(pooled.end(), w.latencies_ns.begin(), w.latencies_ns.end());
    r.duration_s += w.duration_s();
    delayed += w.delayed;
    sent += w.sent;
    r.has_server = r.has_server && w.has_server;
    r.server += w.server;
  }
  if (!r.has_server) r.server = {};
  std::sort(pooled.begin(), pooled.end());
  r.request_count = pooled.size();
  r.infer_per_sec = InferPerSec(r.request_count, batch, r.duration_s);
  r.send_rate = r.duration_s > 0 ? static_cast<double>(sent) / r.duration_s : 0;
  r.delayed_fraction =
      r.request_count > 0 ? static_cast<double>(delayed) / static_cast<double>(r.request_count) : 0;
  r.latency = SummarizeLatencies(pooled, percentile);
  return r;
}

uint64_t StabilizingLatencyNs(const LevelResult& r, int percentile) {
  return percentile > 0 ? r.latency.extra_ns : r.latency.avg_ns;
}

ServerSplit SplitOf(const LevelResult& r) {
  ServerSplit s;
  if (!r.has_server) return s;
  s.queue_ns = AverageNs(r.server.queue);
  s.compute_input_ns = AverageNs(r.server.compute_input);
  s.compute_infer_ns = AverageNs(r.server.compute_infer);
  s.compute_output_ns = AverageNs(r.server.compute_output);
  const uint64_t accounted =
      s.queue_ns + s.compute_input_ns + s.compute_infer_ns + s.compute_output_ns;
  const uint64_t wait = Minus(r.latency.avg_ns, r.client_send_ns + r.client_recv_ns);
  s.network_ns = Minus(wait, accounted);
  return s;
}

}  // namespace quiver::bench
