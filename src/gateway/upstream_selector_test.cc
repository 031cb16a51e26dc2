#include "gateway/upstream_selector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "gateway/balancer/p2c/p2c_balancer.h"

namespace quiver::gateway {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class UpstreamSelectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* u : {"a", "b", "c"}) {
      ASSERT_TRUE(placement_.Apply(u, {clock_->Now(), {{"m", "1", true}}}));
      health_.Add(u);
    }
    ASSERT_TRUE(placement_.Apply("d", {clock_->Now(), {{"m", "1", false}, {"m", "2", true}}}));
    health_.Add("d");
  }
  void Eject(std::string_view u) {
    for (int i = 0; i < 5; ++i) (void)health_.Report(u, "m", false, 0ms);
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  PlacementTable placement_{clock_};
  OutlierDetector health_{clock_};  // 5 consecutive failures eject
  P2cBalancer balancer_{[gen = std::mt19937_64(1)](uint64_t bound) mutable {
    return std::uniform_int_distribution<uint64_t>(0, bound - 1)(gen);
  }};
  UpstreamSelector selector_{placement_, health_, balancer_};
};

TEST_F(UpstreamSelectorTest, NeverChoosesAnEjectedOrUnreadyUpstream) {
  Eject("b");
  ASSERT_FALSE(health_.Available("b"));
  for (int i = 0; i < 200; ++i) {
    Result<std::string> u = selector_.Choose("m", "1");
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    EXPECT_TRUE(*u == "a" || *u == "c") << *u;  // not b (ejected), not d (1 not READY)
    balancer_.Done(*u, "m");
  }
}

TEST_F(UpstreamSelectorTest, ARetryGoesToAnUpstreamNotTriedYet) {
  std::vector<std::string> tried = {"a", "c"};
  EXPECT_EQ(selector_.Choose("m", "1", tried).value(), "b");
}

TEST_F(UpstreamSelectorTest, ReadyNowhereIsNotFoundAndEverywhereOutIsUnavailable) {
  Result<std::string> r = selector_.Choose("m", "3");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("model 'm' version '3'"));

  Eject("d");  // the only upstream with version 2
  r = selector_.Choose("m", "2");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("model 'm' version '2' is ready on 1"));
}

TEST_F(UpstreamSelectorTest, AnyVersionIncludesEveryUpstreamWithAReadyVersion) {
  std::vector<std::string> tried = {"a", "b", "c"};
  EXPECT_EQ(selector_.Choose("m", "", tried).value(), "d");
}

}  // namespace
}  // namespace quiver::gateway
