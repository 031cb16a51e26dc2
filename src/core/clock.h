#pragma once
// An injectable clock so that time-driven code (batcher delays, queue timeouts) can be
// tested deterministically with ManualClock instead of sleeps.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace quiver {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // Blocks on `cv` (with `lock` held on entry and exit) until notified, spuriously woken,
  // or Now() >= deadline. Callers re-check their condition in a loop, as with any cv.
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         TimePoint deadline) = 0;

  // The process-wide steady clock.
  static std::shared_ptr<Clock> System();
};

// A clock that only moves when told to. Advance() wakes every thread blocked in
// WaitUntil so that it re-evaluates its deadlines. Thread-safe. Waiters must not be
// destroyed while an Advance() call runs.
class ManualClock : public Clock {
 public:
  ManualClock() = default;
  TimePoint Now() const override;
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) override;
  void Advance(Duration d);

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mutex;
  };
  mutable std::mutex mutex_;
  TimePoint now_{};               // guarded by mutex_
  std::vector<Waiter> waiters_;   // guarded by mutex_
};

}  // namespace quiver
