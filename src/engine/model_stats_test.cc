#include "engine/model_stats.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace quiver::engine {
namespace {

void ExpectDuration(const StatisticDuration& d, uint64_t count, uint64_t ns) {
  EXPECT_EQ(d.count, count);
  EXPECT_EQ(d.ns, ns);
}

TEST(ModelStatsTest, StartsEmptyWithNames) {
  ModelStats stats("m", "3");
  ModelStatistics s = stats.Snapshot();
  EXPECT_EQ(s.name, "m");
  EXPECT_EQ(s.version, "3");
  EXPECT_EQ(s.execution_count, 0u);
  EXPECT_EQ(s.inference_count, 0u);
  EXPECT_EQ(s.last_inference_ms, 0u);
  ExpectDuration(s.success, 0, 0);
  EXPECT_TRUE(s.batch_stats.empty());
  for (const HistogramSnapshot* h :
       {&s.request_histogram, &s.queue_histogram, &s.compute_infer_histogram}) {
    EXPECT_FALSE(h->empty());
    EXPECT_EQ(h->Count(), 0u);
    EXPECT_EQ(h->sum, 0u);
  }
}

TEST(ModelStatsTest, HistogramsPerRequestAndPerExecution) {
  ModelStats stats("m", "1");
  // Two requests of one execution: 70 us and 3 ms end to end, queued 10 us and 2 ms;
  // the execution's infer phase took 600 us.
  const RequestTiming requests[] = {{70'000, 10'000}, {3'000'000, 2'000'000}};
  stats.RecordBatch(2, {1'000, 600'000, 1'000}, requests, 1);
  stats.RecordFailure(20'000'000'000);  // failures stay out of the histograms
  ModelStatistics s = stats.Snapshot();

  const HistogramSnapshot& r = s.request_histogram;
  EXPECT_EQ(r.bounds, std::vector<uint64_t>(LatencyBucketsNs().begin(), LatencyBucketsNs().end()));
  EXPECT_EQ(r.Count(), s.success.count);
  EXPECT_EQ(r.sum, s.success.ns);
  Histogram probe;
  EXPECT_EQ(r.counts[probe.BucketIndex(70'000)], 1u);     // le=100 us
  EXPECT_EQ(r.counts[probe.BucketIndex(3'000'000)], 1u);  // le=5 ms

  EXPECT_EQ(s.queue_histogram.Count(), 2u);
  EXPECT_EQ(s.queue_histogram.sum, s.queue.ns);
  EXPECT_EQ(s.queue_histogram.counts[0], 1u);  // 10 us <= 50 us

  // One value per execution, while the Triton counter charges each request.
  EXPECT_EQ(s.compute_infer_histogram.Count(), s.execution_count);
  EXPECT_EQ(s.compute_infer_histogram.sum, 600'000u);
  EXPECT_EQ(s.compute_infer_histogram.counts[probe.BucketIndex(600'000)], 1u);
  ExpectDuration(s.compute_infer, 2, 1'200'000);
}

TEST(ModelStatsTest, ChargesBatchComputeToEveryRequest) {
  ModelStats stats("m", "1");
  const RequestTiming requests[] = {{500, 100}, {700, 300}};
  stats.RecordBatch(4, {10, 20, 30}, requests, 1234);
  ModelStatistics s = stats.Snapshot();
  EXPECT_EQ(s.last_inference_ms, 1234u);
  EXPECT_EQ(s.execution_count, 1u);
  EXPECT_EQ(s.inference_count, 4u);
  ExpectDuration(s.success, 2, 1200);
  ExpectDuration(s.queue, 2, 400);
  ExpectDuration(s.compute_input, 2, 20);
  ExpectDuration(s.compute_infer, 2, 40);
  ExpectDuration(s.compute_output, 2, 60);
  ExpectDuration(s.fail, 0, 0);
  ASSERT_EQ(s.batch_stats.size(), 1u);
  EXPECT_EQ(s.batch_stats[0].batch_size, 4u);
  ExpectDuration(s.batch_stats[0].compute_input, 1, 10);
  ExpectDuration(s.batch_stats[0].compute_infer, 1, 20);
  ExpectDuration(s.batch_stats[0].compute_output, 1, 30);
}

TEST(ModelStatsTest, BatchStatsSortedBySize) {
  ModelStats stats("m", "1");
  const RequestTiming one[] = {{1, 1}};
  stats.RecordBatch(8, {1, 1, 1}, one, 1);
  stats.RecordBatch(2, {1, 1, 1}, one, 2);
  stats.RecordBatch(8, {2, 2, 2}, one, 3);
  ModelStatistics s = stats.Snapshot();
  ASSERT_EQ(s.batch_stats.size(), 2u);
  EXPECT_EQ(s.batch_stats[0].batch_size, 2u);
  EXPECT_EQ(s.batch_stats[1].batch_size, 8u);
  ExpectDuration(s.batch_stats[1].compute_infer, 2, 3);
  EXPECT_EQ(s.execution_count, 3u);
  EXPECT_EQ(s.inference_count, 18u);
  EXPECT_EQ(s.last_inference_ms, 3u);
}

TEST(ModelStatsTest, RecordsFailures) {
  ModelStats stats("m", "1");
  stats.RecordFailure(100);
  stats.RecordFailure(50);
  ModelStatistics s = stats.Snapshot();
  ExpectDuration(s.fail, 2, 150);
  ExpectDuration(s.success, 0, 0);
  EXPECT_EQ(s.execution_count, 0u);
}

TEST(ModelStatsTest, ConcurrentRecordingLosesNothing) {
  ModelStats stats("m", "1");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      const RequestTiming one[] = {{2, 1}};
      for (int i = 0; i < 1000; ++i) {
        stats.RecordBatch(1, {1, 1, 1}, one, 1);
        stats.RecordFailure(3);
        (void)stats.Snapshot();
      }
    });
  }
  for (auto& t : threads) t.join();
  ModelStatistics s = stats.Snapshot();
  ExpectDuration(s.success, 4000, 8000);
  ExpectDuration(s.fail, 4000, 12000);
  EXPECT_EQ(s.execution_count, 4000u);
  EXPECT_EQ(s.request_histogram.Count(), 4000u);
  EXPECT_EQ(s.request_histogram.sum, 8000u);
  EXPECT_EQ(s.queue_histogram.Count(), 4000u);
  EXPECT_EQ(s.compute_infer_histogram.Count(), 4000u);
}

}  // namespace
}  // namespace quiver::engine
