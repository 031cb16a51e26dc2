#pragma once
// MetricsRegistry: renders Triton-compatible Prometheus metrics (text exposition format
// 0.0.4) from an InferenceService's statistics, plus Triton's CPU metrics from /proc.
//
// Families (names, types and units as Triton's docs/user_guide/metrics.md), each with the
// labels model="<name>",version="<version>" per ready model version:
//   counters: nv_inference_request_success, nv_inference_request_failure,
//             nv_inference_count, nv_inference_exec_count,
//             nv_inference_request_duration_us (successful requests, as Triton),
//             nv_inference_queue_duration_us, nv_inference_compute_input_duration_us,
//             nv_inference_compute_infer_duration_us,
//             nv_inference_compute_output_duration_us        (cumulative microseconds)
//   gauge:    nv_inference_pending_request_count
//   histograms (Quiver's own, `_bucket{...,le="..."}`, `_sum`, `_count`, microseconds,
//   buckets from ModelStatistics, normally LatencyBucketsNs(): 50 us .. 10 s, 1-2-5):
//             quiver_request_duration_us (successful requests, enqueue to response),
//             quiver_queue_duration_us (successful requests),
//             quiver_compute_infer_duration_us (one value per execution, not per request)
//   A version whose statistics carry no histogram (e.g. from a remote Triton) has no
//   samples in these families.
// Server-wide gauges (no labels): nv_cpu_utilization (0..1, busy share of all cores
// between two scrapes), nv_cpu_memory_total_bytes, nv_cpu_memory_used_bytes
// (MemTotal - MemAvailable), and, when a total pending-count callback is given,
// quiver_pending_request_count.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "service/inference_service.h"

namespace quiver::frontend {

struct MetricsOptions {
  // Per-model request metrics (nv_inference_*).
  bool model_metrics = true;
  // nv_cpu_* metrics from /proc/stat and /proc/meminfo.
  bool cpu_metrics = true;
  // Requests queued or executing for one model version. Unset: reported as 0.
  // TODO(metrics): engine::Engine exposes only a server-wide PendingCount(); wire a
  // per-version figure here once it has one.
  std::function<size_t(std::string_view model, std::string_view version)> pending_count;
  // Requests queued or executing server-wide (e.g. engine::Engine::PendingCount), exported
  // as the gauge quiver_pending_request_count. Unset: that family is omitted.
  std::function<size_t()> total_pending_count;
  // More families appended to every scrape (the gateway's own: gateway/gateway_metrics.h).
  // Each must write complete families (# HELP, # TYPE, samples).
  std::function<void(std::string& out)> extra_families;
  // Where /proc lives (tests point it at a fake tree).
  std::string proc_root = "/proc";
};

// Thread-safe: Render may be called concurrently (the CPU sample is guarded).
// `service` must outlive the registry.
class MetricsRegistry {
 public:
  explicit MetricsRegistry(InferenceService& service, MetricsOptions options = {});
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The whole exposition, one scrape. Every family has its # HELP and # TYPE lines
  // (also when it has no samples); lines end with '\n'.
  std::string Render();

  const MetricsOptions& options() const { return options_; }

 private:
  void RenderModels(std::string& out);
  void RenderCpu(std::string& out);

  InferenceService& service_;
  MetricsOptions options_;

  std::mutex cpu_mutex_;
  struct CpuSample {
    uint64_t busy = 0;
    uint64_t total = 0;
  };
  std::optional<CpuSample> last_cpu_;  // guarded by cpu_mutex_
  double last_utilization_ = 0.0;      // guarded by cpu_mutex_
};

// ---- Pieces of the exposition format, exposed for tests and other exporters. ----

// A label value with '\\', '"' and newline escaped as \\, \" and \n.
std::string EscapeLabelValue(std::string_view value);
// A HELP text with '\\' and newline escaped.
std::string EscapeHelp(std::string_view text);
// A sample value: shortest round-trip decimal; NaN, +Inf, -Inf spelled as Prometheus does.
std::string FormatValue(double value);
// A histogram bucket bound given in nanoseconds as the `le` label value in microseconds:
// whole microseconds without exponent ("50", "10000000"), others as FormatValue.
std::string FormatLeMicros(uint64_t bound_ns);

// Aggregate CPU jiffies from the first "cpu " line of /proc/stat:
// busy = user + nice + system + irq + softirq + steal, idle = idle + iowait
// (guest time is already part of user/nice).
struct CpuTimes {
  uint64_t busy = 0;
  uint64_t total = 0;  // busy + idle
};
std::optional<CpuTimes> ParseProcStat(std::string_view text);

// MemTotal and MemAvailable (kB in the file) from /proc/meminfo, in bytes.
struct MemInfo {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
};
std::optional<MemInfo> ParseMemInfo(std::string_view text);

}  // namespace quiver::frontend
