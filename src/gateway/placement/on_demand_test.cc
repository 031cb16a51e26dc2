#include "gateway/placement/on_demand.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quiver::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// last_used at `t` seconds after the epoch of the steady clock.
LoadedModel Loaded(std::string model, int t, size_t in_flight = 0) {
  return LoadedModel{std::move(model), Clock::TimePoint{} + std::chrono::seconds(t), in_flight};
}

TEST(DecidePlacementTest, PicksTheLeastLoadedUpstream) {
  std::vector<PlacementCandidate> c = {
      {"a", {Loaded("x", 1, 5)}},
      {"b", {Loaded("y", 1, 1), Loaded("z", 2, 1)}},
      {"c", {Loaded("w", 1, 9)}},
  };
  Result<PlacementDecision> d = DecidePlacement("m", c, 4);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->upstream, "b");
  EXPECT_TRUE(d->unload_first.empty());
}

TEST(DecidePlacementTest, UnderTheCapNothingIsUnloaded) {
  Result<PlacementDecision> d = DecidePlacement("m", {{"a", {Loaded("x", 1)}}}, 2);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->unload_first.empty());
  // No cap at all.
  d = DecidePlacement("m", {{"a", {Loaded("x", 1), Loaded("y", 2), Loaded("z", 3)}}}, 0);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->unload_first.empty());
}

TEST(DecidePlacementTest, AtTheCapTheLeastRecentlyUsedIdleModelsGoFirst) {
  // Cap 3 with 4 loaded (the cap was lowered): two must go to make room for one.
  std::vector<PlacementCandidate> c = {
      {"a",
       {Loaded("new", 40), Loaded("old", 10, /*in_flight=*/2), Loaded("older", 5),
        Loaded("mid", 20)}},
  };
  Result<PlacementDecision> d = DecidePlacement("m", c, 3);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->upstream, "a");
  // "old" is busy, so it stays although it is older than "mid".
  EXPECT_THAT(d->unload_first, ElementsAre("older", "mid"));
}

TEST(DecidePlacementTest, AtEqualLoadFewerUnloadsWin) {
  std::vector<PlacementCandidate> c = {
      {"a", {Loaded("x", 1), Loaded("y", 2)}},  // full at cap 2
      {"b", {Loaded("z", 3)}},
  };
  Result<PlacementDecision> d = DecidePlacement("m", c, 2);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->upstream, "b");
  EXPECT_TRUE(d->unload_first.empty());
}

TEST(DecidePlacementTest, LoadComesBeforeUnloads) {
  std::vector<PlacementCandidate> c = {
      {"busy", {Loaded("x", 1, 10)}},              // room, but 10 requests in flight
      {"idle", {Loaded("y", 1), Loaded("z", 2)}},  // full, idle
  };
  Result<PlacementDecision> d = DecidePlacement("m", c, 2);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->upstream, "idle");
  EXPECT_THAT(d->unload_first, ElementsAre("y"));
}

TEST(DecidePlacementTest, AnUpstreamFullOfBusyModelsIsSkipped) {
  std::vector<PlacementCandidate> c = {
      {"a", {Loaded("x", 1, 1), Loaded("y", 2, 1)}},
      {"b", {Loaded("z", 1, 7), Loaded("w", 2)}},
  };
  Result<PlacementDecision> d = DecidePlacement("m", c, 2);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->upstream, "b");
  EXPECT_THAT(d->unload_first, ElementsAre("w"));
}

TEST(DecidePlacementTest, EveryUpstreamFullAndBusyIsResourceExhausted) {
  Result<PlacementDecision> d = DecidePlacement("m", {{"a", {Loaded("x", 1, 1)}}}, 1);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(d.status().message(), HasSubstr("'m'"));
}

TEST(DecidePlacementTest, NoCandidateIsNotFoundNamingTheModel) {
  Result<PlacementDecision> d = DecidePlacement("m", {}, 1);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(d.status().message(), HasSubstr("model 'm'"));
}

TEST(DecidePlacementTest, AlreadyLoadedIsTheCallersMistake) {
  Result<PlacementDecision> d = DecidePlacement("m", {{"a", {Loaded("m", 1)}}}, 2);
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
}

TEST(DecidePlacementTest, FullTiesAreBrokenByTheIdDeterministically) {
  std::vector<PlacementCandidate> c = {{"c", {}}, {"a", {}}, {"b", {}}};
  EXPECT_EQ(DecidePlacement("m", c, 1)->upstream, "a");
}

}  // namespace
}  // namespace quiver::gateway
