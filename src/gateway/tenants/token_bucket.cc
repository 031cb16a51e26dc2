#include "gateway/tenants/token_bucket.h"

#include <algorithm>
#include <chrono>

namespace quiver::gateway {

TokenBucket::TokenBucket(double rate, double burst, Clock::TimePoint now)
    : rate_(std::max(rate, 0.0)),
      burst_(burst > 0 ? burst : std::max(1.0, rate_)),
      tokens_(burst_),
      last_(now) {}

void TokenBucket::Refill(Clock::TimePoint now) {
  if (now <= last_) return;  // the clock is steady; equal or earlier adds nothing
  const double seconds = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + seconds * rate_);
  last_ = now;
}

bool TokenBucket::TryTake(Clock::TimePoint now) {
  if (unlimited()) return true;
  Refill(now);
  if (tokens_ < 1.0 - 1e-9) return false;  // tolerate rounding in many small refills
  tokens_ -= 1.0;
  return true;
}

double TokenBucket::Available(Clock::TimePoint now) {
  Refill(now);
  return tokens_;
}

}  // namespace quiver::gateway
