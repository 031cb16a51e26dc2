#include "gateway/autoscale/autoscale_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace quiver::gateway {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using namespace std::chrono_literals;

constexpr auto kTick = 5s;

// Synthetic traces: each tick says what happened since the last one; the counters
// accumulate as the Router's would.
class AutoscalePolicyTest : public ::testing::Test {
 protected:
  static AutoscaleOptions Options() {
    AutoscaleOptions o;
    o.min_replicas = 0;
    o.max_replicas = 8;
    o.target_queue_ms = 50;
    o.target_utilisation = 0.5;
    o.scale_up_window = 15s;
    o.scale_down_window = 60s;
    o.cooldown = 30s;
    return o;
  }
  void Make(AutoscaleOptions o) { policy_ = std::make_unique<AutoscalePolicy>(clock_, o); }

  // One tick: `ended` requests finished with mean queue time `queue_ms`; now `in_flight`
  // at upstreams and `waiting`, with `ready` replicas of `per_replica` slots each.
  AutoscaleDecision Step(uint64_t ended, double queue_ms, uint64_t in_flight, uint64_t waiting,
                         uint64_t ready, uint64_t per_replica = 10) {
    load_.requests_total += ended;
    load_.queue_ns_total += static_cast<uint64_t>(static_cast<double>(ended) * queue_ms * 1e6);
    load_.in_flight = in_flight;
    load_.waiting = waiting;
    load_.ready_replicas = ready;
    load_.capacity = ready * per_replica;
    clock_->Advance(kTick);
    AutoscaleDecision d = policy_->Update(load_, current_);
    current_ = d.desired;  // an obedient provider
    return d;
  }
  // `demand` concurrent requests on the current replicas, no queue time.
  size_t Demand(uint64_t demand, uint64_t per_replica = 10) {
    const uint64_t cap = current_ * per_replica;
    const uint64_t in_flight = std::min(demand, cap);
    return Step(100, 0, in_flight, demand - in_flight, current_, per_replica).desired;
  }
  size_t Idle() { return Step(0, 0, 0, 0, current_).desired; }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::unique_ptr<AutoscalePolicy> policy_ = std::make_unique<AutoscalePolicy>(clock_, Options());
  ModelLoad load_{.model = "m"};
  size_t current_ = 0;
};

TEST_F(AutoscalePolicyTest, SteadyLoadAtTargetKeepsReplicas) {
  current_ = 2;
  std::vector<size_t> out;
  for (int i = 0; i < 10; ++i) out.push_back(Demand(10));  // u = 10/20 = target
  EXPECT_THAT(out, Each(2u));
}

TEST_F(AutoscalePolicyTest, BurstShorterThanUpWindowIsAbsorbed) {
  current_ = 2;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Demand(10), 2u);
  // Three ticks (10 s) at three times the target: the up-window (15 s) still holds a 2.
  EXPECT_EQ(Demand(30), 2u);
  EXPECT_EQ(Demand(30), 2u);
  EXPECT_EQ(Demand(30), 2u);
  EXPECT_EQ(Demand(10), 2u);
  EXPECT_EQ(Demand(10), 2u);
}

TEST_F(AutoscalePolicyTest, SustainedBurstScalesUpOnceItFillsTheUpWindow) {
  current_ = 2;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Demand(10), 2u);
  std::vector<size_t> out;
  for (int i = 0; i < 4; ++i) out.push_back(Demand(30));
  // u = 30/20 = 1.5, ratio 3: ceil(2 x 3) = 6, after the burst has lasted 15 s.
  EXPECT_THAT(out, ElementsAre(2u, 2u, 2u, 6u));
}

TEST_F(AutoscalePolicyTest, RampUpFollowsLoadWithoutOvershoot) {
  AutoscaleOptions o = Options();
  o.scale_up_window = 0s;  // follow each tick; the cooldown paces the steps
  o.cooldown = 10s;
  Make(o);
  current_ = 1;
  std::vector<size_t> out;
  for (uint64_t demand = 5; demand <= 40; demand += 5) out.push_back(Demand(demand));
  // Never above ceil(demand / (10 x 0.5)); ends at the count that serves 40 at 50 %.
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_LE(out[i], (5 * (i + 1) + 4) / 5) << "tick " << i;
    if (i > 0) {
      EXPECT_GE(out[i], out[i - 1]) << "tick " << i;
    }
  }
  for (int i = 0; i < 4; ++i) Demand(40);
  EXPECT_EQ(current_, 8u);
}

TEST_F(AutoscalePolicyTest, RampDownWaitsForTheDownWindow) {
  AutoscaleOptions o = Options();
  o.scale_up_window = 0s;
  o.cooldown = 0s;
  Make(o);
  current_ = 6;
  ASSERT_EQ(Demand(30), 6u);  // baseline
  ASSERT_EQ(Demand(30), 6u);  // at target: u = 30/60
  // Load drops to 6: r = ceil(6 x 0.2) = 2, but the last 6 stays in the 60 s down-window.
  std::vector<size_t> out;
  for (int i = 0; i < 13; ++i) out.push_back(Demand(6));
  EXPECT_THAT(std::vector<size_t>(out.begin(), out.begin() + 12), Each(6u));
  EXPECT_EQ(out.back(), 2u);  // 65 s after the last high recommendation
}

TEST_F(AutoscalePolicyTest, IdleForTheDownWindowGoesToMinReplicas) {
  AutoscaleOptions o = Options();
  o.min_replicas = 1;
  Make(o);
  current_ = 3;
  ASSERT_EQ(Demand(15), 3u);  // baseline
  ASSERT_EQ(Demand(15), 3u);
  std::vector<size_t> out;
  for (int i = 0; i < 13; ++i) out.push_back(Idle());
  EXPECT_EQ(out[11], 3u);  // 60 s: the busy tick is still in the window
  EXPECT_EQ(out[12], 1u);  // min_replicas, not 0
  EXPECT_EQ(Idle(), 1u);   // and stays there
}

TEST_F(AutoscalePolicyTest, IdleWithMinZeroScalesToZero) {
  current_ = 2;
  ASSERT_EQ(Demand(10), 2u);  // baseline
  ASSERT_EQ(Demand(10), 2u);
  for (int i = 0; i < 12; ++i) ASSERT_EQ(Idle(), 2u) << "tick " << i;
  EXPECT_EQ(Idle(), 0u);
}

TEST_F(AutoscalePolicyTest, LightTrafficIsNotIdle) {
  current_ = 1;
  // Requests end every tick but none is in flight at the sample: still needs a replica.
  for (int i = 0; i < 30; ++i) ASSERT_EQ(Step(3, 0, 0, 0, 1).desired, 1u) << "tick " << i;
}

TEST_F(AutoscalePolicyTest, ScaleFromZeroAtOnceEvenInCooldown) {
  AutoscaleOptions o = Options();
  o.scale_down_window = 0s;
  o.cooldown = 600s;
  Make(o);
  current_ = 2;
  ASSERT_EQ(Idle(), 2u);  // baseline: keeps the current count
  ASSERT_EQ(Idle(), 0u);  // idle, no down-window: to zero; the cooldown starts
  ASSERT_EQ(Idle(), 0u);
  // One request waits with no replica: one at once (windows and cooldown skipped).
  const AutoscaleDecision d = Step(0, 0, 0, 1, 0);
  EXPECT_EQ(d.desired, 1u);
  EXPECT_FALSE(d.idle);
}

TEST_F(AutoscalePolicyTest, ScaleFromZeroSizesByDemandOnceCapacityIsKnown) {
  AutoscaleOptions o = Options();
  o.scale_down_window = 0s;
  o.cooldown = 0s;
  Make(o);
  current_ = 2;
  ASSERT_EQ(Demand(10), 2u);  // learns 10 slots per replica
  ASSERT_EQ(Idle(), 0u);
  // 30 waiting, 10 slots at 50 %: ceil(30 / 5) = 6.
  EXPECT_EQ(Step(0, 0, 0, 30, 0).desired, 6u);
}

TEST_F(AutoscalePolicyTest, ScaleFromZeroWithoutKnownCapacityStartsOne) {
  EXPECT_EQ(Step(0, 0, 0, 1, 0).desired, 1u);
}

TEST_F(AutoscalePolicyTest, QueueTimeAboveTargetScalesByItsRatio) {
  AutoscaleOptions o = Options();
  o.scale_up_window = 0s;
  Make(o);
  current_ = 2;
  ASSERT_EQ(Step(100, 10, 2, 0, 2).desired, 2u);  // baseline
  // 150 ms mean queue time against 50 ms: ratio 3 -> 6, though utilisation is low.
  const AutoscaleDecision d = Step(100, 150, 2, 0, 2);
  EXPECT_DOUBLE_EQ(d.queue_ms, 150);
  EXPECT_EQ(d.desired, 6u);
}

TEST_F(AutoscalePolicyTest, ToleranceIgnoresSmallDeviations) {
  AutoscaleOptions o = Options();
  o.scale_up_window = 0s;
  o.cooldown = 0s;
  Make(o);
  current_ = 2;
  ASSERT_EQ(Demand(100, 100), 2u);  // baseline
  EXPECT_EQ(Demand(105, 100), 2u);  // ratio 1.05: within 10 %
  EXPECT_EQ(Demand(130, 100), 3u);  // ratio 1.3: ceil(2.6)
}

TEST_F(AutoscalePolicyTest, AlternatingLoadDoesNotFlap) {
  current_ = 4;
  std::vector<size_t> out;
  for (int i = 0; i < 40; ++i) out.push_back(Demand(i % 2 == 0 ? 4 : 60));
  // r alternates 1 and 12: the up-window's min (1) and down-window's max (12) hold 4;
  // without windows (and cooldown) it would jump between 1 and 12.
  EXPECT_THAT(out, Each(4u));
}

TEST_F(AutoscalePolicyTest, CooldownLimitsChangesWithoutWindows) {
  AutoscaleOptions o = Options();
  o.scale_up_window = 0s;
  o.scale_down_window = 0s;
  o.cooldown = 30s;
  Make(o);
  current_ = 2;
  size_t changes = 0;
  size_t last = current_;
  for (int i = 0; i < 24; ++i) {  // 120 s, alternating every tick
    const size_t d = Demand(i % 2 == 0 ? 2 : 40);
    if (d != last) ++changes;
    last = d;
  }
  // At most one change per 30 s: 4 over 120 s; without the cooldown nearly every tick.
  EXPECT_LE(changes, 5u);
  EXPECT_GE(changes, 2u);
}

TEST_F(AutoscalePolicyTest, CooldownReassertsTheDecisionWhenAReplicaDies) {
  AutoscaleOptions o = Options();
  o.scale_up_window = 0s;
  Make(o);
  current_ = 2;
  ASSERT_EQ(Demand(10), 2u);  // baseline
  ASSERT_EQ(Demand(30), 6u);  // change: cooldown runs
  current_ = 5;               // one replica died
  EXPECT_EQ(Demand(30), 6u);  // the provider is asked for 6 again
}

TEST_F(AutoscalePolicyTest, ClampsToMaxReplicas) {
  AutoscaleOptions o = Options();
  o.scale_up_window = 0s;
  Make(o);
  current_ = 2;
  ASSERT_EQ(Demand(10), 2u);  // baseline
  EXPECT_EQ(Demand(10000), 8u);
  // From zero too.
  o.scale_down_window = 0s;
  o.cooldown = 0s;
  Make(o);
  current_ = 2;
  ASSERT_EQ(Demand(10), 2u);  // learns 10 slots per replica
  ASSERT_EQ(Idle(), 0u);
  EXPECT_EQ(Step(0, 0, 0, 10000, 0).desired, 8u);
}

TEST_F(AutoscalePolicyTest, CounterResetDoesNotLookLikeAFlood) {
  AutoscaleOptions o = Options();
  o.scale_up_window = 0s;
  Make(o);
  current_ = 2;
  ASSERT_EQ(Step(1000000, 10, 10, 0, 2).desired, 2u);
  ASSERT_EQ(Step(100, 10, 10, 0, 2).desired, 2u);
  // The gateway restarted: counters start again from a small number.
  load_.requests_total = 0;
  load_.queue_ns_total = 0;
  const AutoscaleDecision d = Step(100, 10, 10, 0, 2);
  EXPECT_DOUBLE_EQ(d.queue_ms, 10);
  EXPECT_EQ(d.desired, 2u);
}

}  // namespace
}  // namespace quiver::gateway
