#include "frontend/metrics_registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>
#include <vector>

namespace quiver::frontend {

namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return std::move(s).str();
}

void AppendHeader(std::string& out, std::string_view name, std::string_view help,
                  std::string_view type) {
  out.append("# HELP ").append(name).append(" ").append(EscapeHelp(help)).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void AppendModelSample(std::string& out, std::string_view name, const ModelStatistics& s,
                       uint64_t value) {
  out.append(name)
      .append("{model=\"")
      .append(EscapeLabelValue(s.name))
      .append("\",version=\"")
      .append(EscapeLabelValue(s.version))
      .append("\"} ")
      .append(std::to_string(value))
      .append("\n");
}

void AppendPlainSample(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(" ").append(value).append("\n");
}

constexpr uint64_t Us(const StatisticDuration& d) { return d.ns / 1000; }

struct ModelFamily {
  std::string_view name;
  std::string_view type;
  std::string_view help;
  uint64_t (*value)(const ModelStatistics&);
};

// Help texts follow Triton's.
constexpr ModelFamily kModelFamilies[] = {
    {"nv_inference_request_success", "counter",
     "Number of successful inference requests, all batch sizes",
     [](const ModelStatistics& s) { return s.success.count; }},
    {"nv_inference_request_failure", "counter",
     "Number of failed inference requests, all batch sizes",
     [](const ModelStatistics& s) { return s.fail.count; }},
    {"nv_inference_count", "counter",
     "Number of inferences performed (does not include cached requests)",
     [](const ModelStatistics& s) { return s.inference_count; }},
    {"nv_inference_exec_count", "counter",
     "Number of model executions performed (does not include cached requests)",
     [](const ModelStatistics& s) { return s.execution_count; }},
    {"nv_inference_request_duration_us", "counter",
     "Cumulative inference request duration in microseconds (includes cached requests)",
     [](const ModelStatistics& s) { return Us(s.success); }},
    {"nv_inference_queue_duration_us", "counter",
     "Cumulative inference queuing duration in microseconds (includes cached requests)",
     [](const ModelStatistics& s) { return Us(s.queue); }},
    {"nv_inference_compute_input_duration_us", "counter",
     "Cumulative compute input duration in microseconds (does not include cached requests)",
     [](const ModelStatistics& s) { return Us(s.compute_input); }},
    {"nv_inference_compute_infer_duration_us", "counter",
     "Cumulative compute inference duration in microseconds (does not include cached "
     "requests)",
     [](const ModelStatistics& s) { return Us(s.compute_infer); }},
    {"nv_inference_compute_output_duration_us", "counter",
     "Cumulative inference compute output duration in microseconds (does not include cached "
     "requests)",
     [](const ModelStatistics& s) { return Us(s.compute_output); }},
};

struct HistogramFamily {
  std::string_view name;
  std::string_view help;
  HistogramSnapshot ModelStatistics::*histogram;
};

constexpr HistogramFamily kHistogramFamilies[] = {
    {"quiver_request_duration_us",
     "Distribution of successful inference request durations in microseconds (from arrival "
     "at the model's scheduler to the response)",
     &ModelStatistics::request_histogram},
    {"quiver_queue_duration_us",
     "Distribution of queuing durations of successful inference requests in microseconds",
     &ModelStatistics::queue_histogram},
    {"quiver_compute_infer_duration_us",
     "Distribution of compute inference durations in microseconds, one value per model "
     "execution (batch)",
     &ModelStatistics::compute_infer_histogram},
};

// The samples of one histogram for one model version (nothing for an empty or malformed
// snapshot).
void AppendHistogram(std::string& out, std::string_view name, const ModelStatistics& s,
                     const HistogramSnapshot& h) {
  if (h.empty() || h.counts.size() != h.bounds.size() + 1) return;
  std::string labels = "model=\"";
  labels.append(EscapeLabelValue(s.name))
      .append("\",version=\"")
      .append(EscapeLabelValue(s.version))
      .append("\"");
  const std::vector<uint64_t> cumulative = h.Cumulative();
  for (size_t i = 0; i < cumulative.size(); ++i) {
    out.append(name)
        .append("_bucket{")
        .append(labels)
        .append(",le=\"")
        .append(i < h.bounds.size() ? FormatLeMicros(h.bounds[i]) : std::string("+Inf"))
        .append("\"} ")
        .append(std::to_string(cumulative[i]))
        .append("\n");
  }
  out.append(name)
      .append("_sum{")
      .append(labels)
      .append("} ")
      .append(FormatValue(static_cast<double>(h.sum) / 1000.0))
      .append("\n");
  out.append(name)
      .append("_count{")
      .append(labels)
      .append("} ")
      .append(std::to_string(cumulative.back()))
      .append("\n");
}

// Parses an unsigned decimal at the start of `text` (after blanks); advances `text`.
std::optional<uint64_t> NextNumber(std::string_view& text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr == text.data()) return std::nullopt;
  text.remove_prefix(static_cast<size_t>(ptr - text.data()));
  return v;
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, ptr);
}

std::string FormatLeMicros(uint64_t bound_ns) {
  if (bound_ns % 1000 == 0) return std::to_string(bound_ns / 1000);
  return FormatValue(static_cast<double>(bound_ns) / 1000.0);
}

std::optional<CpuTimes> ParseProcStat(std::string_view text) {
  // The aggregate line: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (!line.starts_with("cpu ")) continue;
    line.remove_prefix(4);
    uint64_t f[8] = {};
    int n = 0;
    for (; n < 8; ++n) {
      auto v = NextNumber(line);
      if (!v) break;
      f[n] = *v;
    }
    if (n < 4) return std::nullopt;  // user nice system idle are always there
    CpuTimes t;
    t.busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    t.total = t.busy + f[3] + f[4];
    return t;
  }
  return std::nullopt;
}

std::optional<MemInfo> ParseMemInfo(std::string_view text) {
  std::optional<uint64_t> total, available, free, buffers, cached;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    std::optional<uint64_t>* slot = key == "MemTotal"       ? &total
                                    : key == "MemAvailable" ? &available
                                    : key == "MemFree"      ? &free
                                    : key == "Buffers"      ? &buffers
                                    : key == "Cached"       ? &cached
                                                            : nullptr;
    if (slot == nullptr) continue;
    auto v = NextNumber(rest);
    if (v) *slot = *v * 1024;  // the file's values are in kB
  }
  if (!total) return std::nullopt;
  MemInfo m;
  m.total_bytes = *total;
  if (available) {
    m.available_bytes = *available;
  } else {  // kernels before 3.14 have no MemAvailable
    m.available_bytes = free.value_or(0) + buffers.value_or(0) + cached.value_or(0);
  }
  if (m.available_bytes > m.total_bytes) m.available_bytes = m.total_bytes;
  return m;
}

MetricsRegistry::MetricsRegistry(InferenceService& service, MetricsOptions options)
    : service_(service), options_(std::move(options)) {
  if (options_.cpu_metrics) {
    // The first scrape then reports utilization since construction, not since boot.
    if (auto text = ReadFile(options_.proc_root + "/stat")) {
      if (auto t = ParseProcStat(*text)) last_cpu_ = CpuSample{t->busy, t->total};
    }
  }
}

std::string MetricsRegistry::Render() {
  std::string out;
  out.reserve(4096);
  if (options_.model_metrics) RenderModels(out);
  if (options_.cpu_metrics) RenderCpu(out);
  if (options_.extra_families) options_.extra_families(out);
  return out;
}

void MetricsRegistry::RenderModels(std::string& out) {
  std::vector<ModelStatistics> stats;
  if (auto r = service_.GetStatistics("", ""); r.ok()) stats = std::move(r).value();
  // A service that cannot report statistics still yields a valid (sample-less) exposition.

  for (const ModelFamily& f : kModelFamilies) {
    AppendHeader(out, f.name, f.help, f.type);
    for (const ModelStatistics& s : stats) AppendModelSample(out, f.name, s, f.value(s));
  }

  AppendHeader(out, "nv_inference_pending_request_count",
               "Instantaneous number of pending requests awaiting execution per-model.", "gauge");
  for (const ModelStatistics& s : stats) {
    const size_t pending = options_.pending_count ? options_.pending_count(s.name, s.version) : 0;
    AppendModelSample(out, "nv_inference_pending_request_count", s, pending);
  }

  if (options_.total_pending_count) {
    AppendHeader(out, "quiver_pending_request_count",
                 "Instantaneous number of requests queued or executing, all models.", "gauge");
    AppendPlainSample(out, "quiver_pending_request_count",
                      std::to_string(options_.total_pending_count()));
  }

  for (const HistogramFamily& f : kHistogramFamilies) {
    AppendHeader(out, f.name, f.help, "histogram");
    for (const ModelStatistics& s : stats) AppendHistogram(out, f.name, s, s.*f.histogram);
  }
}

void MetricsRegistry::RenderCpu(std::string& out) {
  double utilization = 0.0;
  {
    std::lock_guard lock(cpu_mutex_);
    if (auto text = ReadFile(options_.proc_root + "/stat")) {
      if (auto t = ParseProcStat(*text)) {
        const CpuSample now{t->busy, t->total};
        if (last_cpu_ && now.total > last_cpu_->total && now.busy >= last_cpu_->busy) {
          const double busy = static_cast<double>(now.busy - last_cpu_->busy);
          const double total = static_cast<double>(now.total - last_cpu_->total);
          last_utilization_ = std::clamp(busy / total, 0.0, 1.0);
          last_cpu_ = now;
        } else if (!last_cpu_ || now.total < last_cpu_->total) {
          last_cpu_ = now;  // first sample, or the counters went backwards
        }
        // Two scrapes within one jiffy: keep the previous figure and the older sample.
      }
    }
    utilization = last_utilization_;
  }
  AppendHeader(out, "nv_cpu_utilization", "CPU utilization rate [0.0 - 1.0]", "gauge");
  AppendPlainSample(out, "nv_cpu_utilization", FormatValue(utilization));

  // Memory samples are left out (the families stay) when /proc/meminfo is unreadable.
  std::string total, used;
  if (const auto text = ReadFile(options_.proc_root + "/meminfo")) {
    if (const auto mem = ParseMemInfo(*text)) {
      total = std::to_string(mem->total_bytes);
      used = std::to_string(mem->total_bytes - mem->available_bytes);
    }
  }
  AppendHeader(out, "nv_cpu_memory_total_bytes", "CPU total memory (RAM), in bytes", "gauge");
  if (!total.empty()) AppendPlainSample(out, "nv_cpu_memory_total_bytes", total);
  AppendHeader(out, "nv_cpu_memory_used_bytes", "CPU used memory (RAM), in bytes", "gauge");
  if (!used.empty()) AppendPlainSample(out, "nv_cpu_memory_used_bytes", used);
}

}  // namespace quiver::frontend
