#pragma once
// Request-rate mode's timetable: when each request is due, and the pacing step that sends
// whatever is due at a given moment. Open loop, as perf_analyzer's request-rate mode:
// requests go out on schedule whether or not earlier ones have completed, so a slow server
// sees its queue grow instead of the load shrinking.
//
// Kept free of threads and real time: the sender thread (perf_load.cc) only calls Pace()
// with the clock's current time and sleeps until the time it returns, so the logic is
// tested with made-up times.

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>

#include "bench/perf_options.h"

namespace quiver::bench {

// Offsets from the start of the schedule, in order. Constant: request i at i / rate
// (computed from i, so no drift accumulates). Poisson: exponentially distributed gaps
// with mean 1 / rate, from a seeded generator (the same seed gives the same schedule).
class RequestSchedule {
 public:
  RequestSchedule(double rate_per_s, Distribution distribution, uint64_t seed);

  // Offset of the next request.
  std::chrono::nanoseconds next() const { return next_; }
  // Moves to the request after it.
  void Advance();
  // Requests advanced past so far.
  uint64_t index() const { return index_; }

 private:
  double rate_;
  Distribution distribution_;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> gap_;
  uint64_t index_ = 0;
  double poisson_offset_s_ = 0;
  std::chrono::nanoseconds next_{0};
};

// What one pacing step did.
struct PaceResult {
  uint64_t sent = 0;
  uint64_t delayed = 0;
  std::chrono::steady_clock::time_point wake_at;  // when the next request is due
};

// Sends (through `send(delayed)`) every request due at or before `now`, advancing the
// schedule, and says when the next one is due. A request counts as delayed when it goes
// out more than `tolerance` after its due time (the sender fell behind).
PaceResult Pace(RequestSchedule& schedule, std::chrono::steady_clock::time_point start,
                std::chrono::steady_clock::time_point now,
                std::chrono::steady_clock::duration tolerance,
                const std::function<void(bool delayed)>& send);

}  // namespace quiver::bench
