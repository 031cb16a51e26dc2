#include "bench/perf_schedule.h"

#include <cmath>

namespace quiver::bench {

RequestSchedule::RequestSchedule(double rate_per_s, Distribution distribution, uint64_t seed)
    : rate_(rate_per_s), distribution_(distribution), rng_(seed), gap_(rate_per_s) {
  // The first request goes out at the start in both distributions.
}

void RequestSchedule::Advance() {
  ++index_;
  double offset_s = 0;
  if (distribution_ == Distribution::kConstant) {
    offset_s = static_cast<double>(index_) / rate_;
  } else {
    poisson_offset_s_ += gap_(rng_);
    offset_s = poisson_offset_s_;
  }
  next_ = std::chrono::nanoseconds(static_cast<int64_t>(std::llround(offset_s * 1e9)));
}

PaceResult Pace(RequestSchedule& schedule, std::chrono::steady_clock::time_point start,
                std::chrono::steady_clock::time_point now,
                std::chrono::steady_clock::duration tolerance,
                const std::function<void(bool delayed)>& send) {
  PaceResult r;
  for (;;) {
    const auto due = start + schedule.next();
    if (due > now) {
      r.wake_at = due;
      return r;
    }
    const bool delayed = now - due > tolerance;
    send(delayed);
    ++r.sent;
    if (delayed) ++r.delayed;
    schedule.Advance();
  }
}

}  // namespace quiver::bench
