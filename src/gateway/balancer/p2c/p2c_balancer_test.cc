#include "gateway/balancer/p2c/p2c_balancer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <thread>
#include <vector>

namespace quiver::gateway {
namespace {

using ::testing::HasSubstr;

// Returns the scripted draws in order (each taken modulo its bound), then fails the test.
class ScriptedRng {
 public:
  explicit ScriptedRng(std::deque<uint64_t> draws) : draws_(std::move(draws)) {}
  P2cBalancer::Rng Fn() {
    return [this](uint64_t bound) {
      EXPECT_FALSE(draws_.empty()) << "more draws than scripted";
      if (draws_.empty()) return uint64_t{0};
      uint64_t v = draws_.front();
      draws_.pop_front();
      return v % bound;
    };
  }
  size_t left() const { return draws_.size(); }

 private:
  std::deque<uint64_t> draws_;
};

// A seeded generator: deterministic, and random enough for distributions.
P2cBalancer::Rng Seeded(uint64_t seed) {
  return [gen = std::mt19937_64(seed)](uint64_t bound) mutable {
    return std::uniform_int_distribution<uint64_t>(0, bound - 1)(gen);
  };
}

TEST(P2cBalancerTest, NoCandidateIsUnavailableNamingTheModel) {
  P2cBalancer b(Seeded(1));
  Result<std::string> r = b.Choose("resnet", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("'resnet'"));
}

TEST(P2cBalancerTest, ASingleCandidateIsChosenWithoutDrawing) {
  ScriptedRng rng({});
  P2cBalancer b(rng.Fn());
  std::vector<std::string> one = {"a"};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.Choose("m", one).value(), "a");
  EXPECT_EQ(b.InFlight("a", "m"), 3u);
}

TEST(P2cBalancerTest, TheLessLoadedOfTheTwoSamplesWins) {
  // Draws: (i, j') pairs; j' indexes the n-1 others (j = j' + 1 when j' >= i).
  ScriptedRng rng({0, 0,    // a vs b
                   0, 0,    // a vs b
                   2, 0});  // c vs a
  P2cBalancer b(rng.Fn());
  std::vector<std::string> c = {"a", "b", "c"};
  EXPECT_EQ(b.Choose("m", c).value(), "a");  // a vs b, both idle: the first sample
  EXPECT_EQ(b.Choose("m", c).value(), "b");  // a (1) vs b (0)
  EXPECT_EQ(b.Choose("m", c).value(), "c");  // c (0) vs a (1)
  EXPECT_EQ(rng.left(), 0u);
  b.Done("a", "m");
  EXPECT_EQ(b.InFlight("a", "m"), 0u);
  EXPECT_EQ(b.InFlight("b", "m"), 1u);
}

TEST(P2cBalancerTest, TheTwoSamplesAreDistinct) {
  // With n = 2 every draw pair names both candidates, so the busy one never wins.
  P2cBalancer b(Seeded(7));
  std::vector<std::string> c = {"a", "b"};
  ASSERT_TRUE(b.Choose("m", std::vector<std::string>{"a"}).ok());  // a has one in flight
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(b.Choose("m", c).value(), "b");
    b.Done("b", "m");
  }
}

TEST(P2cBalancerTest, LoadIsPerModelWithTheUpstreamTotalAsTieBreak) {
  P2cBalancer b(Seeded(3));
  std::vector<std::string> both = {"a", "b"};
  // a is busy with model x; for model m both are idle, so the total decides: b.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.Choose("x", std::vector<std::string>{"a"}).ok());
  EXPECT_EQ(b.InFlight("a", ""), 5u);
  EXPECT_EQ(b.InFlight("a", "m"), 0u);
  EXPECT_EQ(b.Choose("m", both).value(), "b");
  // Now m: a 0, b 1. Per model wins over the total: a, although a has 5 x in flight.
  EXPECT_EQ(b.Choose("m", both).value(), "a");
}

TEST(P2cBalancerTest, SkewedLoadSendsNothingToTheSlowUpstream) {
  // "slow" holds 50 requests that do not finish; the others answer at once.
  P2cBalancer b(Seeded(11));
  std::vector<std::string> c = {"a", "b", "c", "slow"};
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(b.Choose("m", std::vector<std::string>{"slow"}).ok());
  std::map<std::string, int> picks;
  for (int i = 0; i < 3000; ++i) {
    std::string u = b.Choose("m", c).value();
    ++picks[u];
    b.Done(u, "m");
  }
  EXPECT_EQ(picks["slow"], 0);
  for (const char* u : {"a", "b", "c"}) {
    EXPECT_GT(picks[u], 700) << u;  // each about 1000
  }
}

TEST(P2cBalancerTest, HeldRequestsStayEvenlySpread) {
  // Requests that stay in flight: P2C keeps the spread between the busiest and the idlest
  // upstream small, where uniform random choice would drift apart by ~sqrt(n).
  P2cBalancer b(Seeded(5));
  std::vector<std::string> c = {"a", "b", "c", "d", "e", "f", "g", "h"};
  for (int i = 0; i < 4000; ++i) ASSERT_TRUE(b.Choose("m", c).ok());
  size_t lo = SIZE_MAX, hi = 0;
  for (const std::string& u : c) {
    lo = std::min(lo, b.InFlight(u, "m"));
    hi = std::max(hi, b.InFlight(u, "m"));
  }
  EXPECT_LE(hi - lo, 4u) << "lo " << lo << " hi " << hi;

  // The same number of uniformly random choices, for comparison: a far wider spread.
  P2cBalancer::Rng rng = Seeded(5);
  std::vector<size_t> random(c.size(), 0);
  for (int i = 0; i < 4000; ++i) ++random[rng(c.size())];
  auto [rlo, rhi] = std::minmax_element(random.begin(), random.end());
  EXPECT_GT(*rhi - *rlo, 4 * (hi - lo + 1)) << "random lo " << *rlo << " hi " << *rhi;
}

TEST(P2cBalancerTest, NeverChoosesOutsideTheCandidates) {
  // The Router leaves ejected and unready upstreams out of the candidates; the idlest
  // upstream of all ("ejected", nothing in flight) must never be chosen.
  P2cBalancer b(Seeded(9));
  std::vector<std::string> c = {"a", "b", "c"};
  for (int i = 0; i < 1000; ++i) {
    std::string u = b.Choose("m", c).value();
    EXPECT_NE(u, "ejected");
    EXPECT_TRUE(u == "a" || u == "b" || u == "c");
  }
  EXPECT_EQ(b.InFlight("ejected", ""), 0u);
}

TEST(P2cBalancerTest, ForgetDropsAnUpstreamOnceItsLastRequestIsDone) {
  P2cBalancer b(Seeded(2));
  std::vector<std::string> a = {"a"};
  ASSERT_TRUE(b.Choose("m", a).ok());
  ASSERT_TRUE(b.Choose("m", a).ok());
  b.Forget("a");
  EXPECT_EQ(b.InFlight("a", "m"), 2u);  // still counted while in flight
  b.Done("a", "m");
  b.Done("a", "m");
  EXPECT_EQ(b.InFlight("a", ""), 0u);
  b.Forget("never-seen");
  // Chosen again after a Forget (re-added): counted as usual.
  ASSERT_TRUE(b.Choose("m", a).ok());
  EXPECT_EQ(b.InFlight("a", "m"), 1u);
}

TEST(P2cBalancerTest, ConcurrentChooseAndDoneBalanceToZero) {
  P2cBalancer b;  // the random_device-seeded default
  std::vector<std::string> c = {"a", "b", "c"};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string model = t % 2 == 0 ? "m" : "n";
      for (int i = 0; i < 2000; ++i) {
        std::string u = b.Choose(model, c).value();
        b.Done(u, model);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& u : c) EXPECT_EQ(b.InFlight(u, ""), 0u);
}

}  // namespace
}  // namespace quiver::gateway
