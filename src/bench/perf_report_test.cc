#include "bench/perf_report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

namespace quiver::bench {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

LevelResult Level(double level, double ips, uint64_t base_ns) {
  LevelResult r;
  r.level = level;
  r.stable = true;
  r.windows = 3;
  r.infer_per_sec = ips;
  r.latency.avg_ns = base_ns;
  r.latency.p50_ns = base_ns;
  r.latency.p90_ns = base_ns * 2;
  r.latency.p95_ns = base_ns * 3;
  r.latency.p99_ns = base_ns * 4;
  r.has_server = true;
  r.server.queue = {10, 10 * 2'000};
  r.server.compute_input = {10, 10 * 1'000};
  r.server.compute_infer = {10, 10 * 5'000};
  r.server.compute_output = {10, 10 * 1'500};
  return r;
}

TEST(PerfCsvTest, HeaderIsPerfAnalyzers) {
  EXPECT_EQ(CsvHeader(LoadMode::kConcurrency, true, -1),
            "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
            "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
            "p50 latency,p90 latency,p95 latency,p99 latency");
  EXPECT_EQ(CsvHeader(LoadMode::kRequestRate, false, -1),
            "Request Rate,Inferences/Second,Client Send,Client Recv,"
            "p50 latency,p90 latency,p95 latency,p99 latency");
  // --percentile adds its column in order.
  EXPECT_EQ(CsvHeader(LoadMode::kConcurrency, false, 85),
            "Concurrency,Inferences/Second,Client Send,Client Recv,"
            "p50 latency,p85 latency,p90 latency,p95 latency,p99 latency");
}

TEST(PerfCsvTest, RowsInMicrosecondsSortedByThroughput) {
  PerfRunInfo info;
  info.mode = LoadMode::kConcurrency;
  info.server_statistics = true;
  const std::vector<LevelResult> results{Level(1, 10702.4, 20'000), Level(2, 10280.6, 40'000)};
  const auto lines = Lines(PerfCsv(results, info));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], CsvHeader(LoadMode::kConcurrency, true, -1));
  // Concurrency 2 has the lower throughput, so it comes first (as perf_analyzer sorts).
  // network = avg 40 - (queue 2 + 1 + 5 + 1.5) = 30.5 us -> 30
  EXPECT_EQ(lines[1], "2,10280.6,0,30,2,1,5,1,0,40,80,120,160");
  EXPECT_EQ(lines[2], "1,10702.4,0,10,2,1,5,1,0,20,40,60,80");
}

TEST(PerfCsvTest, RequestRateLevelsKeepFractions) {
  PerfRunInfo info;
  info.mode = LoadMode::kRequestRate;
  const auto lines = Lines(PerfCsv({Level(12.5, 12.4, 1'000)}, info));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "12.5,12.4,0,0,1,2,3,4");
}

TEST(PerfTableTest, OneLinePerLevelWithUnstableMarked) {
  PerfRunInfo info;
  info.model = "identity_fp32";
  info.endpoint = "grpc://127.0.0.1:8001";
  info.mode = LoadMode::kConcurrency;
  info.server_statistics = true;
  info.stability = 0.1;
  const std::string header = TableHeader(info);
  EXPECT_NE(header.find("identity_fp32"), std::string::npos);
  EXPECT_NE(header.find("infer/s"), std::string::npos);
  EXPECT_NE(header.find("queue us"), std::string::npos);
  LevelResult r = Level(4, 1234.56, 3'000);
  std::string row = TableRow(r, info);
  EXPECT_EQ(row.find('\n'), std::string::npos);
  EXPECT_NE(row.find("1234.6"), std::string::npos);
  EXPECT_EQ(row.find("UNSTABLE"), std::string::npos);
  r.stable = false;
  EXPECT_NE(TableRow(r, info).find("UNSTABLE"), std::string::npos);
}

TEST(PerfJsonTest, CarriesEveryLevel) {
  PerfRunInfo info;
  info.model = "m";
  info.mode = LoadMode::kConcurrency;
  info.server_statistics = true;
  info.percentile = 85;
  LevelResult r = Level(2, 500, 10'000);
  r.latency.extra_ns = 15'000;
  const auto doc = nlohmann::json::parse(PerfJson({r}, info));
  EXPECT_EQ(doc["model"], "m");
  EXPECT_EQ(doc["mode"], "concurrency");
  EXPECT_EQ(doc["client_send_recv_measured"], false);
  ASSERT_EQ(doc["results"].size(), 1u);
  const auto& row = doc["results"][0];
  EXPECT_EQ(row["concurrency"], 2);
  EXPECT_EQ(row["infer_per_sec"], 500.0);
  EXPECT_EQ(row["latency_us"]["p99"], 40);
  EXPECT_EQ(row["latency_us"]["p85"], 15);
  EXPECT_EQ(row["server"]["queue_us"], 2);
  EXPECT_EQ(row["stable"], true);
}

}  // namespace
}  // namespace quiver::bench
