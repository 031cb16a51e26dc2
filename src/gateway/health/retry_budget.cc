#include "gateway/health/retry_budget.h"

#include <algorithm>
#include <cassert>

namespace quiver::gateway {

RetryBudget::RetryBudget(RetryBudgetOptions options) : options_(options) {}

size_t RetryBudget::LimitLocked() const {
  const auto share = static_cast<size_t>(options_.budget_fraction * static_cast<double>(requests_));
  return std::max(options_.min_retry_concurrency, share);
}

void RetryBudget::RequestStarted() {
  std::lock_guard lock(mutex_);
  ++requests_;
}

void RetryBudget::RequestFinished() {
  std::lock_guard lock(mutex_);
  assert(requests_ > 0 && "RetryBudget::RequestFinished without RequestStarted");
  if (requests_ > 0) --requests_;
}

bool RetryBudget::TryStartRetry() {
  std::lock_guard lock(mutex_);
  if (retries_ >= LimitLocked()) {
    ++refused_;
    return false;
  }
  ++retries_;
  return true;
}

void RetryBudget::RetryFinished() {
  std::lock_guard lock(mutex_);
  assert(retries_ > 0 && "RetryBudget::RetryFinished without TryStartRetry");
  if (retries_ > 0) --retries_;
}

size_t RetryBudget::requests_in_flight() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

size_t RetryBudget::retries_in_flight() const {
  std::lock_guard lock(mutex_);
  return retries_;
}

size_t RetryBudget::limit() const {
  std::lock_guard lock(mutex_);
  return LimitLocked();
}

size_t RetryBudget::refused() const {
  std::lock_guard lock(mutex_);
  return refused_;
}

}  // namespace quiver::gateway
