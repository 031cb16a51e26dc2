#pragma once
// TokenBucket: a sustained rate with bursts. The bucket holds up to `burst` tokens, refills
// at `rate` tokens per second and each request takes one; a full bucket lets a client that
// was idle send `burst` requests at once, after which it is held to `rate`.
//
// Pure: time is passed in (the owner reads its injected Clock), so tests need no sleeps.
// Not synchronised: the owner guards it (TenantScheduler does, under its mutex).

#include "core/clock.h"

namespace quiver::gateway {

class TokenBucket {
 public:
  // rate: tokens per second, 0 = unlimited (TryTake always succeeds); burst: bucket size,
  // 0 = max(1, rate). Starts full at `now`.
  TokenBucket(double rate, double burst, Clock::TimePoint now);

  // Refills up to `now`, then takes one token if there is one.
  [[nodiscard]] bool TryTake(Clock::TimePoint now);
  // Tokens available at `now` (refills first).
  double Available(Clock::TimePoint now);

  bool unlimited() const { return rate_ <= 0; }
  double rate() const { return rate_; }
  double burst() const { return burst_; }

 private:
  void Refill(Clock::TimePoint now);

  double rate_;
  double burst_;
  double tokens_;
  Clock::TimePoint last_;
};

}  // namespace quiver::gateway
