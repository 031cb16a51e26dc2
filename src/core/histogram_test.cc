#include "core/histogram.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

namespace quiver {
namespace {

TEST(HistogramTest, LatencyBucketsSpan50UsTo10sAscending) {
  const auto b = LatencyBucketsNs();
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b.front(), 50'000u);         // 50 us
  EXPECT_EQ(b.back(), 10'000'000'000u);  // 10 s
  for (size_t i = 1; i < b.size(); ++i) {
    EXPECT_GT(b[i], b[i - 1]);
    EXPECT_LE(b[i] * 2, b[i - 1] * 5) << "neighbours more than 2.5x apart at " << i;
    EXPECT_EQ(b[i] % 1000, 0u) << "bounds are whole microseconds";
  }
}

TEST(HistogramTest, BoundsAreUpperInclusive) {
  const uint64_t bounds[] = {10, 20, 50};
  Histogram h(bounds);
  EXPECT_EQ(h.BucketIndex(0), 0u);
  EXPECT_EQ(h.BucketIndex(10), 0u);  // le="10" includes 10
  EXPECT_EQ(h.BucketIndex(11), 1u);
  EXPECT_EQ(h.BucketIndex(20), 1u);
  EXPECT_EQ(h.BucketIndex(21), 2u);
  EXPECT_EQ(h.BucketIndex(50), 2u);
  EXPECT_EQ(h.BucketIndex(51), 3u);  // overflow (+Inf)
  EXPECT_EQ(h.BucketIndex(UINT64_MAX), 3u);
}

TEST(HistogramTest, StartsEmpty) {
  Histogram h;
  const HistogramSnapshot s = h.Snapshot();
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.bounds.size(), LatencyBucketsNs().size());
  EXPECT_EQ(s.counts.size(), s.bounds.size() + 1);
  EXPECT_EQ(s.Count(), 0u);
  EXPECT_EQ(s.sum, 0u);
  EXPECT_TRUE(HistogramSnapshot{}.empty());
  EXPECT_TRUE(HistogramSnapshot{}.Cumulative().empty());
}

TEST(HistogramTest, CountsSumAndCumulativeCounts) {
  const uint64_t bounds[] = {10, 20, 50};
  Histogram h(bounds);
  for (uint64_t v : {1, 10, 15, 20, 20, 49, 1000}) h.Record(v);
  const HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.bounds, (std::vector<uint64_t>{10, 20, 50}));
  EXPECT_EQ(s.counts, (std::vector<uint64_t>{2, 3, 1, 1}));
  EXPECT_EQ(s.Cumulative(), (std::vector<uint64_t>{2, 5, 6, 7}));
  EXPECT_EQ(s.Count(), 7u);
  EXPECT_EQ(s.sum, 1u + 10 + 15 + 20 + 20 + 49 + 1000);
}

TEST(HistogramTest, LatencyValuesLandInTheirBuckets) {
  Histogram h;
  h.Record(1'000);           // 1 us: first bucket (<= 50 us)
  h.Record(50'000);          // exactly 50 us: first bucket
  h.Record(50'001);          // just above: second (<= 100 us)
  h.Record(7'000'000);       // 7 ms: le=10 ms
  h.Record(60'000'000'000);  // 60 s: overflow
  const HistogramSnapshot s = h.Snapshot();
  const auto b = LatencyBucketsNs();
  EXPECT_EQ(s.counts[0], 2u);
  EXPECT_EQ(s.counts[1], 1u);
  EXPECT_EQ(s.counts[h.BucketIndex(7'000'000)], 1u);
  EXPECT_EQ(b[h.BucketIndex(7'000'000)], 10'000'000u);
  EXPECT_EQ(s.counts.back(), 1u);
  EXPECT_EQ(s.Cumulative().back(), 5u);
}

TEST(HistogramTest, ConcurrentRecordingLosesNothing) {
  Histogram h;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) {
        h.Record(static_cast<uint64_t>(t) * 1'000'000 + 1);
        if (i % 1000 == 0) {
          const HistogramSnapshot s = h.Snapshot();
          const auto c = s.Cumulative();
          for (size_t k = 1; k < c.size(); ++k) EXPECT_LE(c[k - 1], c[k]);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.Count(), uint64_t{kThreads} * kPerThread);
  uint64_t sum = 0;
  for (int t = 0; t < kThreads; ++t) sum += (static_cast<uint64_t>(t) * 1'000'000 + 1) * kPerThread;
  EXPECT_EQ(s.sum, sum);
}

}  // namespace
}  // namespace quiver
