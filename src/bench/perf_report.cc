#include "bench/perf_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace quiver::bench {
namespace {

uint64_t Us(uint64_t ns) { return ns / 1000; }

// The percentiles perf_analyzer reports, ascending: 50, 90, 95, 99 and --percentile.
std::set<int> Percentiles(int extra) {
  std::set<int> p{50, 90, 95, 99};
  if (extra > 0) p.insert(extra);
  return p;
}

uint64_t LatencyAt(const LatencySummary& s, int p, int extra) {
  switch (p) {
    case 50:
      return s.p50_ns;
    case 90:
      return s.p90_ns;
    case 95:
      return s.p95_ns;
    case 99:
      return s.p99_ns;
    default:
      return p == extra ? s.extra_ns : 0;
  }
}

std::string LevelText(const LevelResult& r, LoadMode mode) {
  std::ostringstream out;
  if (mode == LoadMode::kConcurrency) {
    out << static_cast<uint64_t>(r.level);
  } else {
    out << r.level;
  }
  return out.str();
}

}  // namespace

std::string CsvHeader(LoadMode mode, bool server_stats, int percentile) {
  std::string h = mode == LoadMode::kConcurrency ? "Concurrency," : "Request Rate,";
  h += "Inferences/Second,Client Send,";
  if (server_stats) {
    h += "Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,"
         "Server Compute Output,";
  }
  h += "Client Recv";
  for (int p : Percentiles(percentile)) h += fmt::format(",p{} latency", p);
  return h;
}

std::string PerfCsv(const std::vector<LevelResult>& results, const PerfRunInfo& info) {
  std::ostringstream out;
  out << CsvHeader(info.mode, info.server_statistics, info.percentile) << '\n';
  std::vector<const LevelResult*> rows;
  for (const LevelResult& r : results) rows.push_back(&r);
  std::stable_sort(rows.begin(), rows.end(), [](const LevelResult* a, const LevelResult* b) {
    return a->infer_per_sec < b->infer_per_sec;
  });
  for (const LevelResult* r : rows) {
    out << LevelText(*r, info.mode) << ',' << r->infer_per_sec << ',' << Us(r->client_send_ns)
        << ',';
    if (info.server_statistics) {
      const ServerSplit s = SplitOf(*r);
      out << Us(s.network_ns) << ',' << Us(s.queue_ns) << ',' << Us(s.compute_input_ns) << ','
          << Us(s.compute_infer_ns) << ',' << Us(s.compute_output_ns) << ',';
    }
    out << Us(r->client_recv_ns);
    for (int p : Percentiles(info.percentile)) {
      out << ',' << Us(LatencyAt(r->latency, p, info.percentile));
    }
    out << '\n';
  }
  return out.str();
}

std::string TableHeader(const PerfRunInfo& info) {
  std::string h = fmt::format(
      "{} {} over {}{}, batch {}, {} ms windows, stable = 3 windows within {:g}% ({})\n",
      info.model, info.mode == LoadMode::kConcurrency ? "concurrency" : "request rate",
      info.endpoint, info.via_client ? " (client library)" : "",
      info.batch, info.measurement_interval_ms, info.stability * 100,
      info.percentile > 0 ? fmt::format("p{} latency", info.percentile) : "avg latency");
  h += fmt::format("{:>11} {:>12} {:>8} {:>8} {:>8} {:>8} {:>8}",
                   info.mode == LoadMode::kConcurrency ? "concurrency" : "rate/s", "infer/s",
                   "p50 us", "p90 us", "p95 us", "p99 us", "avg us");
  if (info.server_statistics) {
    h += fmt::format(" {:>8} {:>10} {:>9}", "queue us", "compute us", "net+io us");
  }
  if (info.mode == LoadMode::kRequestRate) h += fmt::format(" {:>9} {:>8}", "sent/s", "delayed");
  h += fmt::format(" {:>7}", "windows");
  return h;
}

std::string TableRow(const LevelResult& r, const PerfRunInfo& info) {
  std::string row =
      fmt::format("{:>11} {:>12.1f} {:>8} {:>8} {:>8} {:>8} {:>8}", LevelText(r, info.mode),
                  r.infer_per_sec, Us(r.latency.p50_ns), Us(r.latency.p90_ns), Us(r.latency.p95_ns),
                  Us(r.latency.p99_ns), Us(r.latency.avg_ns));
  if (info.server_statistics) {
    const ServerSplit s = SplitOf(r);
    row += fmt::format(" {:>8} {:>10} {:>9}", Us(s.queue_ns),
                       Us(s.compute_input_ns + s.compute_infer_ns + s.compute_output_ns),
                       Us(s.network_ns));
  }
  if (info.mode == LoadMode::kRequestRate) {
    row += fmt::format(" {:>9.1f} {:>7.1f}%", r.send_rate, r.delayed_fraction * 100);
  }
  row += fmt::format(" {:>7}", fmt::format("{}{}", r.windows, r.stable ? "" : " UNSTABLE"));
  return row;
}

std::string PerfJson(const std::vector<LevelResult>& results, const PerfRunInfo& info) {
  using nlohmann::json;
  json doc = {
      {"model", info.model},
      {"endpoint", info.endpoint},
      {"protocol", info.protocol},
      {"client_library", info.via_client},
      {"mode", info.mode == LoadMode::kConcurrency ? "concurrency" : "request_rate"},
      {"batch_size", info.batch},
      {"measurement_interval_ms", info.measurement_interval_ms},
      {"stability_percentage", info.stability * 100},
      {"shared_memory", info.shared_memory ? "system" : "none"},
      {"shared_memory_used", info.shared_memory_used},
      {"server_statistics", info.server_statistics},
      {"input_data", info.input_data},
      {"client_send_recv_measured", false},
  };
  json rows = json::array();
  for (const LevelResult& r : results) {
    json latency = {{"avg", Us(r.latency.avg_ns)}, {"std", Us(r.latency.std_ns)},
                    {"p50", Us(r.latency.p50_ns)}, {"p90", Us(r.latency.p90_ns)},
                    {"p95", Us(r.latency.p95_ns)}, {"p99", Us(r.latency.p99_ns)}};
    if (info.percentile > 0) {
      latency[fmt::format("p{}", info.percentile)] = Us(r.latency.extra_ns);
    }
    json row = {
        {info.mode == LoadMode::kConcurrency ? "concurrency" : "request_rate",
         info.mode == LoadMode::kConcurrency ? json(static_cast<uint64_t>(r.level))
                                             : json(r.level)},
        {"stable", r.stable},
        {"windows", r.windows},
        {"request_count", r.request_count},
        {"duration_s", r.duration_s},
        {"infer_per_sec", r.infer_per_sec},
        {"send_rate", r.send_rate},
        {"delayed_fraction", r.delayed_fraction},
        {"latency_us", latency},
        {"client_send_us", Us(r.client_send_ns)},
        {"client_recv_us", Us(r.client_recv_ns)},
    };
    if (info.server_statistics) {
      const ServerSplit s = SplitOf(r);
      row["server"] = {
          {"request_count", r.server.success.count},
          {"inference_count", r.server.inference_count},
          {"execution_count", r.server.execution_count},
          {"request_us", Us(AverageNs(r.server.success))},
          {"queue_us", Us(s.queue_ns)},
          {"compute_input_us", Us(s.compute_input_ns)},
          {"compute_infer_us", Us(s.compute_infer_ns)},
          {"compute_output_us", Us(s.compute_output_ns)},
          {"network_server_send_recv_us", Us(s.network_ns)},
      };
    }
    rows.push_back(std::move(row));
  }
  doc["results"] = std::move(rows);
  return doc.dump(2) + "\n";
}

}  // namespace quiver::bench
