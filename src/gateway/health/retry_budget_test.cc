#include "gateway/health/retry_budget.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace quiver::gateway {
namespace {

TEST(RetryBudgetTest, TheMinimumAllowsRetriesAtLowTraffic) {
  RetryBudget budget({.budget_fraction = 0.2, .min_retry_concurrency = 3});
  budget.RequestStarted();  // 20 % of 1 rounds down to 0: the minimum applies
  EXPECT_EQ(budget.limit(), 3u);
  EXPECT_TRUE(budget.TryStartRetry());
  EXPECT_TRUE(budget.TryStartRetry());
  EXPECT_TRUE(budget.TryStartRetry());
  EXPECT_FALSE(budget.TryStartRetry());
  EXPECT_EQ(budget.retries_in_flight(), 3u);
  EXPECT_EQ(budget.refused(), 1u);
}

TEST(RetryBudgetTest, AtHighTrafficRetriesAreAFractionOfTheRequests) {
  RetryBudget budget({.budget_fraction = 0.2, .min_retry_concurrency = 3});
  for (int i = 0; i < 100; ++i) budget.RequestStarted();
  EXPECT_EQ(budget.limit(), 20u);
  // An overload: every request fails and wants a retry; 20 get one, 80 do not.
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += budget.TryStartRetry() ? 1 : 0;
  EXPECT_EQ(allowed, 20);
  EXPECT_EQ(budget.refused(), 80u);
}

TEST(RetryBudgetTest, ExhaustedBudgetRecoversWhenRetriesFinishOrTrafficGrows) {
  RetryBudget budget({.budget_fraction = 0.5, .min_retry_concurrency = 1});
  budget.RequestStarted();
  budget.RequestStarted();
  ASSERT_TRUE(budget.TryStartRetry());
  EXPECT_FALSE(budget.TryStartRetry());  // exhausted: 1 of max(1, 50 % of 2)

  budget.RetryFinished();  // recovery: the retry ended
  EXPECT_TRUE(budget.TryStartRetry());
  EXPECT_FALSE(budget.TryStartRetry());

  for (int i = 0; i < 4; ++i) budget.RequestStarted();  // recovery: 6 requests, limit 3
  EXPECT_TRUE(budget.TryStartRetry());
  EXPECT_TRUE(budget.TryStartRetry());
  EXPECT_FALSE(budget.TryStartRetry());

  // Traffic falls back: the budget shrinks; retries in flight are not cut, new ones wait.
  for (int i = 0; i < 6; ++i) budget.RequestFinished();
  EXPECT_EQ(budget.limit(), 1u);
  EXPECT_FALSE(budget.TryStartRetry());
  for (int i = 0; i < 3; ++i) budget.RetryFinished();
  EXPECT_TRUE(budget.TryStartRetry());
}

TEST(RetryBudgetTest, ZeroMinimumAndNoTrafficAllowsNothing) {
  RetryBudget budget({.budget_fraction = 0.2, .min_retry_concurrency = 0});
  EXPECT_FALSE(budget.TryStartRetry());
}

TEST(RetryBudgetTest, ConcurrentUseNeverExceedsTheLimit) {
  RetryBudget budget({.budget_fraction = 0.1, .min_retry_concurrency = 2});
  std::vector<std::thread> threads;
  std::atomic<size_t> over{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        budget.RequestStarted();
        if (budget.TryStartRetry()) {
          // At most 2 + 10 % of 4 requests in flight = 2 retries at once.
          if (budget.retries_in_flight() > 2) ++over;
          budget.RetryFinished();
        }
        budget.RequestFinished();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(over.load(), 0u);
  EXPECT_EQ(budget.requests_in_flight(), 0u);
  EXPECT_EQ(budget.retries_in_flight(), 0u);
}

}  // namespace
}  // namespace quiver::gateway
