#pragma once
// RetryBudget: bounds retries so that they cannot amplify an overload (Envoy's
// retry_budget). A retry is allowed while the retries in flight are fewer than
// budget_fraction of the requests in flight, or than min_retry_concurrency, whichever is
// larger.
//
// Why a budget and not "retry each request up to N times": when upstreams fail because
// they are overloaded, per-request retries multiply the offered load by up to N+1 exactly
// when capacity is short (a retry storm). A budget tied to concurrency lets isolated
// failures (one upstream down, a connection reset) be retried in full, since they are a
// small fraction of the traffic, while a failure of a large fraction of the traffic gets at
// most budget_fraction extra load. The minimum keeps retries possible at low traffic, where
// a fraction of a few requests would round down to zero. It needs no clock: it recovers as
// soon as retries finish or traffic grows.
//
// Counting: RequestStarted/RequestFinished bracket each client request once (from arrival
// to its final answer, whatever the number of attempts); TryStartRetry/RetryFinished
// bracket each retry attempt. Thread-safe (one mutex; a few integer operations per call).

#include <cstddef>
#include <mutex>

namespace quiver::gateway {

struct RetryBudgetOptions {
  double budget_fraction = 0.2;      // of the requests in flight
  size_t min_retry_concurrency = 3;  // retries always allowed in flight at once
};

class RetryBudget {
 public:
  explicit RetryBudget(RetryBudgetOptions options = {});

  void RequestStarted();
  void RequestFinished();
  // True when a retry may be sent now, and then counts it as in flight: call RetryFinished
  // when that attempt ends. False: answer the client with the error the last attempt got.
  [[nodiscard]] bool TryStartRetry();
  void RetryFinished();

  size_t requests_in_flight() const;
  size_t retries_in_flight() const;
  // Retries allowed in flight at once right now.
  size_t limit() const;
  // TryStartRetry calls refused so far (for a metric).
  size_t refused() const;

 private:
  size_t LimitLocked() const;  // requires mutex_

  const RetryBudgetOptions options_;
  mutable std::mutex mutex_;
  size_t requests_ = 0;  // guarded by mutex_
  size_t retries_ = 0;   // guarded by mutex_
  size_t refused_ = 0;   // guarded by mutex_
};

}  // namespace quiver::gateway
