#include "bench/perf_stats.h"

#include <gtest/gtest.h>

#include <numeric>

namespace quiver::bench {
namespace {

std::vector<uint64_t> OneTo(uint64_t n) {
  std::vector<uint64_t> v(n);
  std::iota(v.begin(), v.end(), 1);
  return v;
}

TEST(PerfPercentileTest, PerfAnalyzersIndexRule) {
  // index = floor(p/100 * (n - 1) + 0.5)
  const auto v = OneTo(100);            // 1..100
  EXPECT_EQ(PercentileNs(v, 50), 51u);  // 49.5 + 0.5 = 50 -> v[50]
  EXPECT_EQ(PercentileNs(v, 90), 90u);  // 89.1 + 0.5 -> 89
  EXPECT_EQ(PercentileNs(v, 95), 95u);  // 94.05 + 0.5 -> 94
  EXPECT_EQ(PercentileNs(v, 99), 99u);  // 98.01 + 0.5 -> 98
  const std::vector<uint64_t> one{7};
  EXPECT_EQ(PercentileNs(one, 99), 7u);
  EXPECT_EQ(PercentileNs({}, 50), 0u);
  const std::vector<uint64_t> two{10, 20};
  EXPECT_EQ(PercentileNs(two, 50), 20u);  // 0.5 + 0.5 -> 1
  EXPECT_EQ(PercentileNs(two, 40), 10u);
}

TEST(PerfPercentileTest, SummaryHasMeanStdAndExtra) {
  const std::vector<uint64_t> v{2, 4, 4, 4, 5, 5, 7, 9};
  const LatencySummary s = SummarizeLatencies(v, 85);
  EXPECT_EQ(s.count, 8u);
  EXPECT_EQ(s.avg_ns, 5u);
  EXPECT_EQ(s.std_ns, 2u);    // sample std: sqrt(32 / 7) = 2.14
  EXPECT_EQ(s.p50_ns, 5u);    // 3.5 + 0.5 -> 4
  EXPECT_EQ(s.extra_ns, 7u);  // 5.95 + 0.5 -> 6
  EXPECT_EQ(s.p99_ns, 9u);
}

TEST(PerfWindowTest, RecordsBelongToTheWindowTheyEndIn) {
  std::vector<RequestRecord> records{
      {0, 50, false},     // ended before the window: dropped
      {90, 110, false},   // sent before, ended inside: counts, latency 20
      {120, 150, true},   // inside, delayed
      {190, 200, false},  // ends exactly at the end: counts
      {195, 260, false},  // ends after: kept for the next window
  };
  Window w;
  w.start_ns = 100;
  w.end_ns = 200;
  AssignRecords(records, w);
  EXPECT_EQ(w.latencies_ns, (std::vector<uint64_t>{10, 20, 30}));
  EXPECT_EQ(w.delayed, 1u);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].end_ns, 260);
}

TEST(PerfWindowTest, ThroughputCountsBatchElements) {
  EXPECT_DOUBLE_EQ(InferPerSec(100, 64, 0.5), 12800.0);
  EXPECT_DOUBLE_EQ(InferPerSec(100, 1, 0.0), 0.0);
  Window w;
  w.start_ns = 0;
  w.end_ns = 1'000'000'000;
  w.latencies_ns = {100, 200, 300, 400};
  const WindowPoint p = PointOf(w, 2, -1);
  EXPECT_DOUBLE_EQ(p.infer_per_sec, 8.0);
  EXPECT_DOUBLE_EQ(p.latency_ns, 250.0);
  EXPECT_DOUBLE_EQ(PointOf(w, 2, 99).latency_ns, 400.0);
}

TEST(PerfStabilityTest, NeedsThreeWindowsWithinThreshold) {
  std::vector<WindowPoint> p{{1000, 100}, {1050, 104}};
  EXPECT_FALSE(IsStable(p, 0.10));  // only two
  p.push_back({1095, 108});
  EXPECT_TRUE(IsStable(p, 0.10));  // 1095/1000 and 108/100 within 10 %
  EXPECT_FALSE(IsStable(p, 0.05));
}

TEST(PerfStabilityTest, OnlyTheLastThreeCount) {
  const std::vector<WindowPoint> p{{10, 1000}, {1000, 100}, {1000, 100}, {1000, 100}};
  EXPECT_TRUE(IsStable(p, 0.10));
}

TEST(PerfStabilityTest, ThroughputAndLatencyBothChecked) {
  EXPECT_FALSE(IsStable(std::vector<WindowPoint>{{1000, 100}, {1000, 100}, {1200, 100}}, 0.10));
  EXPECT_FALSE(IsStable(std::vector<WindowPoint>{{1000, 100}, {1000, 120}, {1000, 100}}, 0.10));
  // Exactly at the threshold is stable (max/min <= 1 + t).
  EXPECT_TRUE(IsStable(std::vector<WindowPoint>{{1000, 100}, {1100, 100}, {1000, 110}}, 0.10));
}

TEST(PerfStabilityTest, ZeroThroughputIsNeverStable) {
  EXPECT_FALSE(IsStable(std::vector<WindowPoint>{{0, 0}, {0, 0}, {0, 0}}, 0.10));
  EXPECT_FALSE(IsStable(std::vector<WindowPoint>{{1000, 10}, {0, 0}, {1000, 10}}, 10.0));
}

TEST(PerfMergeTest, PoolsLatenciesAndSumsCountsAndDurations) {
  std::vector<Window> w(2);
  w[0].start_ns = 0;
  w[0].end_ns = 1'000'000'000;
  w[0].latencies_ns = {1000, 3000};
  w[0].sent = 2;
  w[0].has_server = true;
  w[0].server.success = {2, 1000};
  w[0].server.queue = {2, 400};
  w[1].start_ns = 1'000'000'000;
  w[1].end_ns = 2'000'000'000;
  w[1].latencies_ns = {2000};
  w[1].delayed = 1;
  w[1].sent = 1;
  w[1].has_server = true;
  w[1].server.success = {1, 500};
  w[1].server.queue = {1, 200};
  const LevelResult r = MergeWindows(w, 3, 4, -1);
  EXPECT_EQ(r.level, 3);
  EXPECT_EQ(r.request_count, 3u);
  EXPECT_DOUBLE_EQ(r.duration_s, 2.0);
  EXPECT_DOUBLE_EQ(r.infer_per_sec, 6.0);  // 3 requests x batch 4 / 2 s
  EXPECT_DOUBLE_EQ(r.send_rate, 1.5);
  EXPECT_NEAR(r.delayed_fraction, 1.0 / 3, 1e-12);
  EXPECT_EQ(r.latency.avg_ns, 2000u);
  EXPECT_EQ(r.latency.p50_ns, 2000u);
  EXPECT_TRUE(r.has_server);
  EXPECT_EQ(r.server.success.count, 3u);
  EXPECT_EQ(AverageNs(r.server.queue), 200u);
}

TEST(PerfMergeTest, ServerStatsOnlyWhenEveryWindowHasThem) {
  std::vector<Window> w(2);
  w[0].has_server = true;
  w[0].server.queue = {1, 100};
  const LevelResult r = MergeWindows(w, 1, 1, -1);
  EXPECT_FALSE(r.has_server);
  EXPECT_EQ(r.server.queue.count, 0u);
}

TEST(PerfServerTest, DeltaAndSumOverVersions) {
  std::vector<ModelStatistics> start(2), end(2);
  start[0].success = {10, 1000};
  end[0].success = {15, 1600};
  start[1].success = {1, 100};
  end[1].success = {3, 300};
  end[1].compute_infer = {2, 80};
  const ServerCounters d = Delta(SumStatistics(end), SumStatistics(start));
  EXPECT_EQ(d.success.count, 7u);
  EXPECT_EQ(d.success.ns, 800u);
  EXPECT_EQ(d.compute_infer.count, 2u);
  // A counter that went backwards (model reloaded) gives 0, not a huge number.
  EXPECT_EQ(Delta(SumStatistics(start), SumStatistics(end)).success.count, 0u);
}

TEST(PerfServerTest, SplitIsPerfAnalyzersColumns) {
  LevelResult r;
  r.has_server = true;
  r.latency.avg_ns = 10'000;
  r.server.queue = {2, 4'000};          // 2 us each
  r.server.compute_input = {2, 2'000};  // 1 us
  r.server.compute_infer = {2, 6'000};  // 3 us
  r.server.compute_output = {2, 0};
  const ServerSplit s = SplitOf(r);
  EXPECT_EQ(s.queue_ns, 2'000u);
  EXPECT_EQ(s.compute_input_ns, 1'000u);
  EXPECT_EQ(s.compute_infer_ns, 3'000u);
  EXPECT_EQ(s.compute_output_ns, 0u);
  EXPECT_EQ(s.network_ns, 4'000u);  // 10 - (2 + 1 + 3 + 0)
  r.latency.avg_ns = 1'000;         // server time above the client's: floored at 0
  EXPECT_EQ(SplitOf(r).network_ns, 0u);
  r.has_server = false;
  EXPECT_EQ(SplitOf(r).queue_ns, 0u);
}

}  // namespace
}  // namespace quiver::bench
