#pragma once
// What `quiver perf` prints and writes: the compact table, perf_analyzer's CSV (-f), and
// the JSON document (--json).

#include <string>
#include <vector>

#include "bench/perf_options.h"
#include "bench/perf_stats.h"

namespace quiver::bench {

// What the report says about the run besides the levels.
struct PerfRunInfo {
  std::string model;
  std::string endpoint;  // "grpc://127.0.0.1:8001"
  std::string protocol;  // "http" | "grpc" | "local"
  bool via_client = false;  // through client::Client rather than the bare transport
  LoadMode mode = LoadMode::kConcurrency;
  int64_t batch = 1;
  uint64_t measurement_interval_ms = 0;
  double stability = 0;  // fraction
  int percentile = -1;
  bool shared_memory = false;       // asked for
  bool shared_memory_used = false;  // inputs actually went through shm
  bool server_statistics = false;   // the server answered the statistics requests
  std::string input_data;           // "random", "zero" or the file
};

// perf_analyzer's CSV header: "Concurrency" or "Request Rate", "Inferences/Second",
// "Client Send", the five server columns when `server_stats`, "Client Recv", then
// "p50 latency" ... "p99 latency" (and the --percentile one, in order).
std::string CsvHeader(LoadMode mode, bool server_stats, int percentile);
// The whole file: the header and one row per level, sorted by increasing throughput as
// perf_analyzer sorts them; durations in whole microseconds, throughput as C++ streams
// print a double (6 significant digits), as perf_analyzer writes it.
std::string PerfCsv(const std::vector<LevelResult>& results, const PerfRunInfo& info);

// The table: a header line, then one row per level (TableRow); compact, microseconds.
std::string TableHeader(const PerfRunInfo& info);
std::string TableRow(const LevelResult& r, const PerfRunInfo& info);

// The JSON document (pretty-printed) with every number of every level.
std::string PerfJson(const std::vector<LevelResult>& results, const PerfRunInfo& info);

}  // namespace quiver::bench
