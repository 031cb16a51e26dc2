#include "gateway/tenants/token_bucket.h"

#include <gtest/gtest.h>

#include <chrono>

namespace quiver::gateway {
namespace {

using std::chrono::milliseconds;

TEST(TokenBucketTest, StartsFullAndAllowsABurst) {
  const Clock::TimePoint t0{};
  TokenBucket bucket(/*rate=*/10, /*burst=*/3, t0);
  EXPECT_TRUE(bucket.TryTake(t0));
  EXPECT_TRUE(bucket.TryTake(t0));
  EXPECT_TRUE(bucket.TryTake(t0));
  EXPECT_FALSE(bucket.TryTake(t0));
}

TEST(TokenBucketTest, RefillsAtTheRate) {
  const Clock::TimePoint t0{};
  TokenBucket bucket(10, 1, t0);
  ASSERT_TRUE(bucket.TryTake(t0));
  EXPECT_FALSE(bucket.TryTake(t0 + milliseconds(99)));
  EXPECT_TRUE(bucket.TryTake(t0 + milliseconds(100)));  // 10/s: one token per 100 ms
  EXPECT_FALSE(bucket.TryTake(t0 + milliseconds(150)));
  // Many small refills add up to a whole token despite rounding.
  Clock::TimePoint t = t0 + milliseconds(150);
  for (int i = 0; i < 4; ++i) {  // 160..190 ms
    t += milliseconds(10);
    EXPECT_FALSE(bucket.TryTake(t)) << i;
  }
  EXPECT_TRUE(bucket.TryTake(t0 + milliseconds(200)));
}

TEST(TokenBucketTest, NeverHoldsMoreThanTheBurst) {
  const Clock::TimePoint t0{};
  TokenBucket bucket(100, 5, t0);
  EXPECT_DOUBLE_EQ(bucket.Available(t0 + std::chrono::hours(1)), 5.0);
  int taken = 0;
  while (bucket.TryTake(t0 + std::chrono::hours(1))) ++taken;
  EXPECT_EQ(taken, 5);
}

TEST(TokenBucketTest, ZeroRateIsUnlimitedAndZeroBurstDefaultsToTheRate) {
  const Clock::TimePoint t0{};
  TokenBucket unlimited(0, 0, t0);
  EXPECT_TRUE(unlimited.unlimited());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(unlimited.TryTake(t0));

  EXPECT_DOUBLE_EQ(TokenBucket(20, 0, t0).burst(), 20.0);
  TokenBucket slow(0.5, 0, t0);  // burst max(1, 0.5) = 1
  EXPECT_DOUBLE_EQ(slow.burst(), 1.0);
  EXPECT_TRUE(slow.TryTake(t0));
  EXPECT_FALSE(slow.TryTake(t0 + std::chrono::milliseconds(1999)));
  EXPECT_TRUE(slow.TryTake(t0 + std::chrono::milliseconds(2000)));
}

}  // namespace
}  // namespace quiver::gateway
