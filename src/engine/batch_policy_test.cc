#include "engine/batch_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace quiver::engine {
namespace {

using std::chrono::microseconds;
using TimePoint = Clock::TimePoint;

const TimePoint kT0 = TimePoint() + std::chrono::seconds(10);

// A queue of requests that all arrived at kT0 with shape class 0.
std::vector<BatchCandidate> Queue(std::vector<int64_t> sizes) {
  std::vector<BatchCandidate> q;
  for (int64_t s : sizes) q.push_back({s, kT0, 0});
  return q;
}

TEST(BatchPolicyTest, EmptyQueueWaitsForever) {
  BatchPolicy policy(8, {}, microseconds(100));
  BatchDecision d = policy.Decide({}, false, kT0);
  EXPECT_EQ(d.count, 0u);
  EXPECT_EQ(d.wait_until, TimePoint::max());
}

TEST(BatchPolicyTest, WaitsForDelayWhileBatchCanGrow) {
  BatchPolicy policy(8, {}, microseconds(100));
  BatchDecision d = policy.Decide(Queue({1, 2}), false, kT0 + microseconds(50));
  EXPECT_EQ(d.count, 0u);
  EXPECT_EQ(d.wait_until, kT0 + microseconds(100));
}

TEST(BatchPolicyTest, FlushesEverythingWhenDelayExpires) {
  BatchPolicy policy(8, {}, microseconds(100));
  EXPECT_EQ(policy.Decide(Queue({1, 2}), false, kT0 + microseconds(100)).count, 2u);
  EXPECT_EQ(policy.Decide(Queue({1, 2}), false, kT0 + microseconds(500)).count, 2u);
}

TEST(BatchPolicyTest, DelayCountsFromOldestRequest) {
  BatchPolicy policy(8, {}, microseconds(100));
  std::vector<BatchCandidate> q = {{1, kT0, 0}, {1, kT0 + microseconds(90), 0}};
  EXPECT_EQ(policy.Decide(q, false, kT0 + microseconds(99)).count, 0u);
  EXPECT_EQ(policy.Decide(q, false, kT0 + microseconds(100)).count, 2u);
}

TEST(BatchPolicyTest, ZeroDelayDispatchesImmediately) {
  BatchPolicy policy(8, {}, microseconds(0));
  EXPECT_EQ(policy.Decide(Queue({1}), false, kT0).count, 1u);
}

TEST(BatchPolicyTest, DispatchesLargestPreferredPrefix) {
  BatchPolicy policy(8, {4, 2}, microseconds(1000));
  // Prefix sums 1, 2, 3, 4, 5: both 2 and 4 are preferred; 4 (four requests) wins.
  EXPECT_EQ(policy.Decide(Queue({1, 1, 1, 1, 1}), false, kT0).count, 4u);
  // Prefix sums 2, 3: only 2 is preferred.
  EXPECT_EQ(policy.Decide(Queue({2, 1}), false, kT0).count, 1u);
}

TEST(BatchPolicyTest, RequestLargerThanPreferredWaitsForDelay) {
  BatchPolicy policy(8, {2}, microseconds(100));
  BatchDecision d = policy.Decide(Queue({3}), false, kT0);
  EXPECT_EQ(d.count, 0u);
  EXPECT_EQ(d.wait_until, kT0 + microseconds(100));
  EXPECT_EQ(policy.Decide(Queue({3}), false, kT0 + microseconds(100)).count, 1u);
}

TEST(BatchPolicyTest, FullMaxBatchSizeDispatchesImmediately) {
  BatchPolicy policy(4, {}, microseconds(1000));
  EXPECT_EQ(policy.Decide(Queue({2, 2, 1}), false, kT0).count, 2u);
}

TEST(BatchPolicyTest, NoPreferredSizesTargetsMaxBatchSize) {
  BatchPolicy policy(4, {}, microseconds(1000));
  EXPECT_EQ(policy.Decide(Queue({1, 1, 1}), false, kT0).count, 0u);
  EXPECT_EQ(policy.Decide(Queue({1, 1, 1, 1}), false, kT0).count, 4u);
}

TEST(BatchPolicyTest, OverflowingNextRequestEndsBatch) {
  BatchPolicy policy(4, {}, microseconds(1000));
  EXPECT_EQ(policy.Decide(Queue({3, 2}), false, kT0).count, 1u);
}

TEST(BatchPolicyTest, IncompatibleNextRequestEndsBatch) {
  BatchPolicy policy(8, {}, microseconds(1000));
  std::vector<BatchCandidate> q = {{1, kT0, 7}, {1, kT0, 7}, {1, kT0, 9}, {1, kT0, 7}};
  EXPECT_EQ(policy.Decide(q, false, kT0).count, 2u);
}

TEST(BatchPolicyTest, PreferredSizeBeatsIncompatibleEnd) {
  BatchPolicy policy(8, {2}, microseconds(1000));
  std::vector<BatchCandidate> q = {{1, kT0, 0}, {1, kT0, 0}, {1, kT0, 0}, {1, kT0, 1}};
  EXPECT_EQ(policy.Decide(q, false, kT0).count, 2u);
}

TEST(BatchPolicyTest, TruncatedViewCannotGrow) {
  BatchPolicy policy(8, {}, microseconds(1000));
  EXPECT_EQ(policy.Decide(Queue({1, 1}), true, kT0).count, 2u);
  EXPECT_EQ(policy.Decide(Queue({1, 1}), false, kT0).count, 0u);
}

TEST(BatchPolicyTest, OversizedHeadLeavesAlone) {
  BatchPolicy policy(4, {}, microseconds(1000));
  EXPECT_EQ(policy.Decide(Queue({5, 1}), false, kT0).count, 1u);
}

TEST(BatchPolicyTest, IgnoresPreferredSizesOutOfRange) {
  BatchPolicy policy(4, {0, -3, 16}, microseconds(1000));
  EXPECT_EQ(policy.Decide(Queue({1, 1}), false, kT0).count, 0u);
  EXPECT_EQ(policy.Decide(Queue({2, 2}), false, kT0).count, 2u);
}

TEST(BatchPolicyTest, HugeDelayDoesNotOverflow) {
  BatchPolicy policy(8, {}, Clock::Duration::max());
  BatchDecision d = policy.Decide(Queue({1}), false, kT0);
  EXPECT_EQ(d.count, 0u);
  EXPECT_EQ(d.wait_until, TimePoint::max());
  EXPECT_EQ(policy.Decide(Queue({1}), false, TimePoint::max()).count, 1u);
}

TEST(BatchPolicyTest, SaturatingAdd) {
  EXPECT_EQ(SaturatingAdd(kT0, microseconds(5)), kT0 + microseconds(5));
  EXPECT_EQ(SaturatingAdd(kT0, Clock::Duration::max()), TimePoint::max());
  EXPECT_EQ(SaturatingAdd(TimePoint::max(), microseconds(1)), TimePoint::max());
  EXPECT_EQ(SaturatingAdd(kT0, microseconds(-1)), kT0);
}

}  // namespace
}  // namespace quiver::engine

namespace quiver::engine {
namespace {

TEST(BatchPolicyTest, DispatchesAloneAtPreferredOrMaxSize) {
  BatchPolicy policy(16, {4, 8}, std::chrono::microseconds(100));
  EXPECT_TRUE(policy.DispatchesAlone(4));
  EXPECT_TRUE(policy.DispatchesAlone(8));
  EXPECT_TRUE(policy.DispatchesAlone(16));
  EXPECT_FALSE(policy.DispatchesAlone(5));
  EXPECT_FALSE(policy.DispatchesAlone(1));
}

}  // namespace
}  // namespace quiver::engine
