#include "gateway/placement/placement_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace quiver::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class PlacementTableTest : public ::testing::Test {
 protected:
  UpstreamSnapshot Snapshot(std::vector<PlacementEntry> entries) {
    return UpstreamSnapshot{clock_->Now(), std::move(entries)};
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  PlacementTable table_{clock_, PlacementOptions{.stale_after = 30s}};
};

TEST_F(PlacementTableTest, ReadyUpstreamsForAnExactVersion) {
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"resnet", "1", true}, {"resnet", "2", true}})));
  ASSERT_TRUE(table_.Apply("b", Snapshot({{"resnet", "1", true}, {"resnet", "2", false}})));
  ASSERT_TRUE(table_.Apply("c", Snapshot({{"bert", "1", true}})));

  EXPECT_THAT(table_.ReadyUpstreams("resnet", "1").value(), ElementsAre("a", "b"));
  EXPECT_THAT(table_.ReadyUpstreams("resnet", "2").value(), ElementsAre("a"));
  EXPECT_THAT(table_.ReadyUpstreams("bert", "1").value(), ElementsAre("c"));
}

TEST_F(PlacementTableTest, EmptyVersionMeansAnyReadyVersion) {
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "1", true}})));
  ASSERT_TRUE(table_.Apply("b", Snapshot({{"m", "2", true}})));
  ASSERT_TRUE(table_.Apply("c", Snapshot({{"m", "3", false}, {"m", "", false}})));
  EXPECT_THAT(table_.ReadyUpstreams("m", "").value(), ElementsAre("a", "b"));
}

TEST_F(PlacementTableTest, ReadyNowhereIsNotFoundNamingTheModel) {
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "1", false}})));
  Result<std::vector<std::string>> r = table_.ReadyUpstreams("m", "1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("model 'm' version '1'"));

  r = table_.ReadyUpstreams("unknown", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("model 'unknown' is not ready"));
}

TEST_F(PlacementTableTest, LatestReadyVersionIsTheHighestNumber) {
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "9", true}, {"m", "11", false}})));
  ASSERT_TRUE(table_.Apply("b", Snapshot({{"m", "10", true}, {"m", "2", true}})));
  EXPECT_EQ(table_.LatestReadyVersion("m").value(), "10");
  EXPECT_EQ(table_.LatestReadyVersion("x").status().code(), StatusCode::kNotFound);
}

TEST_F(PlacementTableTest, ReadyVersionsAndModelsSkipStaleUpstreams) {
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "10", true}, {"m", "9", true}, {"n", "", false}})));
  clock_->Advance(20s);
  ASSERT_TRUE(table_.Apply("b", Snapshot({{"m", "2", true}, {"m", "11", false}, {"k", "1", true}})));
  EXPECT_THAT(table_.ReadyVersions("m"), ElementsAre("2", "9", "10"));
  EXPECT_THAT(table_.Models(), ElementsAre("k", "m", "n"));
  clock_->Advance(15s);  // a is 35 s old: stale
  EXPECT_THAT(table_.ReadyVersions("m"), ElementsAre("2"));
  EXPECT_THAT(table_.Models(), ElementsAre("k", "m"));
}

TEST(CompareVersionsTest, NumbersNumericallyThenNamesAfter) {
  EXPECT_LT(CompareVersions("9", "10"), 0);
  EXPECT_GT(CompareVersions("10", "9"), 0);
  EXPECT_EQ(CompareVersions("007", "7"), 0);
  EXPECT_LT(CompareVersions("99999999999999999999999", "100000000000000000000000"), 0);
  EXPECT_LT(CompareVersions("1000", "beta"), 0);
  EXPECT_LT(CompareVersions("alpha", "beta"), 0);
  EXPECT_EQ(CompareVersions("x", "x"), 0);
}

TEST_F(PlacementTableTest, AnOlderSnapshotIsIgnored) {
  const Clock::TimePoint early = clock_->Now();
  clock_->Advance(1s);
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "1", false}})));  // unloaded, seen later
  // The answer to an earlier poll arrives last: it must not bring the model back.
  EXPECT_FALSE(table_.Apply("a", UpstreamSnapshot{early, {{"m", "1", true}}}));
  EXPECT_FALSE(table_.ReadyUpstreams("m", "1").ok());
  EXPECT_EQ(table_.Info("a")->snapshots, 1u);
}

TEST_F(PlacementTableTest, AStaleUpstreamIsOfferedForNothingUntilAFreshSnapshot) {
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "1", true}})));
  clock_->Advance(20s);
  ASSERT_TRUE(table_.Apply("b", Snapshot({{"m", "1", true}})));
  clock_->Advance(15s);  // a: 35 s old, b: 15 s
  EXPECT_THAT(table_.ReadyUpstreams("m", "1").value(), ElementsAre("b"));
  EXPECT_TRUE(table_.Info("a")->stale);
  EXPECT_TRUE(table_.ReadyModels("a").empty());
  EXPECT_THAT(table_.UpstreamsWithModelInRepository("m"), ElementsAre("b"));

  clock_->Advance(20s);  // both stale
  EXPECT_EQ(table_.ReadyUpstreams("m", "1").status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "1", true}})));
  EXPECT_THAT(table_.ReadyUpstreams("m", "1").value(), ElementsAre("a"));
  EXPECT_EQ(table_.Info("a")->snapshots, 2u);
}

TEST_F(PlacementTableTest, ZeroStaleAfterNeverGoesStale) {
  PlacementTable table(clock_, PlacementOptions{.stale_after = Clock::Duration::zero()});
  ASSERT_TRUE(table.Apply("a", Snapshot({{"m", "1", true}})));
  clock_->Advance(std::chrono::hours(24 * 365));
  EXPECT_THAT(table.ReadyUpstreams("m", "1").value(), ElementsAre("a"));
}

TEST_F(PlacementTableTest, RepositoryModelsAndTheRoutersOwnLoadsAndUnloads) {
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "", false}, {"n", "1", true}})));
  ASSERT_TRUE(table_.Apply("b", Snapshot({{"m", "1", false}})));
  EXPECT_THAT(table_.UpstreamsWithModelInRepository("m"), ElementsAre("a", "b"));
  EXPECT_FALSE(table_.ReadyUpstreams("m", "").ok());

  const uint64_t g = table_.generation();
  table_.NoteLoaded("a", "m", {"1"});
  EXPECT_GT(table_.generation(), g);
  EXPECT_THAT(table_.ReadyUpstreams("m", "1").value(), ElementsAre("a"));
  EXPECT_THAT(table_.ReadyModels("a"), ElementsAre("m", "n"));
  EXPECT_EQ(table_.Info("a")->ready_versions, 2u);

  table_.NoteUnloaded("a", "m");
  EXPECT_FALSE(table_.ReadyUpstreams("m", "").ok());
  EXPECT_THAT(table_.UpstreamsWithModelInRepository("m"), ElementsAre("a", "b"));

  table_.NoteLoaded("gone", "m", {"1"});  // an upstream removed meanwhile: no effect
  EXPECT_FALSE(table_.Info("gone").has_value());
}

TEST_F(PlacementTableTest, RemoveForgetsTheUpstream) {
  ASSERT_TRUE(table_.Apply("a", Snapshot({{"m", "1", true}})));
  const uint64_t g = table_.generation();
  table_.Remove("a");
  EXPECT_GT(table_.generation(), g);
  EXPECT_FALSE(table_.ReadyUpstreams("m", "1").ok());
  EXPECT_FALSE(table_.Info("a").has_value());
  table_.Remove("a");  // twice: nothing to do
}

TEST_F(PlacementTableTest, ConcurrentSnapshotsAndQueries) {
  constexpr int kRounds = 2000;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (const char* name : {"a", "b"}) {
    writers.emplace_back([&, name] {
      for (int i = 0; i < kRounds; ++i) {
        (void)table_.Apply(name, Snapshot({{"m", "1", true}, {"m", "2", i % 2 == 0}}));
        if (i % 7 == 0) table_.NoteUnloaded(name, "m");
      }
    });
  }
  std::thread reader([&] {
    while (!stop.load()) {
      auto r = table_.ReadyUpstreams("m", "");
      if (r.ok()) {
        EXPECT_LE(r->size(), 2u);
      }
      (void)table_.LatestReadyVersion("m");
      (void)table_.UpstreamsWithModelInRepository("m");
    }
  });
  for (auto& t : writers) t.join();
  stop = true;
  reader.join();
  EXPECT_EQ(table_.Info("a")->snapshots, static_cast<uint64_t>(kRounds));
}

}  // namespace
}  // namespace quiver::gateway
