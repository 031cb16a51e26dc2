#include "gateway/merge_statistics.h"

#include <gtest/gtest.h>

namespace quiver::gateway {
namespace {

ModelStatistics Stats(std::string name, std::string version, uint64_t ok, uint64_t last_ms) {
  ModelStatistics s;
  s.name = std::move(name);
  s.version = std::move(version);
  s.success = {ok, ok * 1000};
  s.inference_count = ok;
  s.last_inference_ms = last_ms;
  s.batch_stats = {{1, {ok, 10}, {ok, 20}, {ok, 30}}};
  s.request_histogram = {{100, 200}, {ok, 0, 0}, ok * 50};
  return s;
}

TEST(MergeStatisticsTest, SumsPerModelVersion) {
  auto a = Stats("m", "1", 3, 100);
  auto b = Stats("m", "1", 4, 200);
  b.request_histogram.counts = {1, 2, 1};
  auto merged = MergeStatistics({{a, Stats("n", "2", 1, 5)}, {b}});
  ASSERT_EQ(merged.size(), 2u);
  const ModelStatistics& m = merged[0];
  EXPECT_EQ(m.name, "m");
  EXPECT_EQ(m.success.count, 7u);
  EXPECT_EQ(m.success.ns, 7000u);
  EXPECT_EQ(m.inference_count, 7u);
  EXPECT_EQ(m.last_inference_ms, 200u);
  ASSERT_EQ(m.batch_stats.size(), 1u);
  EXPECT_EQ(m.batch_stats[0].compute_infer.count, 7u);
  EXPECT_EQ(m.request_histogram.counts, (std::vector<uint64_t>{4, 2, 1}));
  EXPECT_EQ(merged[1].name, "n");
}

TEST(MergeStatisticsTest, HistogramsWithOtherBucketsAreDropped) {
  auto a = Stats("m", "1", 3, 1);
  auto b = Stats("m", "1", 3, 1);
  b.request_histogram.bounds = {100, 500};
  auto merged = MergeStatistics({{a}, {b}});
  ASSERT_EQ(merged.size(), 1u);
  EXPECT_TRUE(merged[0].request_histogram.empty());
  EXPECT_EQ(merged[0].success.count, 6u);
}

TEST(MergeIndexesTest, ReadyWinsAndVersionlessRowsOnlyWhenNothingElse) {
  RepositoryIndex a = {{"m", "1", "UNAVAILABLE", "unloaded"}, {"x", "", "", ""}};
  RepositoryIndex b = {{"m", "1", "READY", ""}, {"m", "", "", ""}, {"y", "", "", ""}};
  auto merged = MergeIndexes({a, b});
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[0].name, "m");
  EXPECT_EQ(merged[0].version, "1");
  EXPECT_EQ(merged[0].state, "READY");
  EXPECT_EQ(merged[1].name, "x");
  EXPECT_EQ(merged[2].name, "y");
}

}  // namespace
}  // namespace quiver::gateway
