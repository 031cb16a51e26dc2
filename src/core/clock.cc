#include "core/clock.h"

#include <algorithm>

namespace quiver {
namespace {

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) override {
    if (deadline == TimePoint::max()) {
      cv.wait(lock);
    } else {
      cv.wait_until(lock, deadline);
    }
  }
};

}  // namespace

std::shared_ptr<Clock> Clock::System() {
  static const std::shared_ptr<Clock> clock = std::make_shared<SystemClock>();
  return clock;
}

Clock::TimePoint ManualClock::Now() const {
  std::lock_guard guard(mutex_);
  return now_;
}

void ManualClock::WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                            TimePoint deadline) {
  {
    std::lock_guard guard(mutex_);
    // Checked after registering-time ordering: an Advance that happened before this
    // point is visible here, one after it will find us in waiters_.
    if (now_ >= deadline) return;
    waiters_.push_back({&cv, lock.mutex()});
  }
  cv.wait(lock);
  std::lock_guard guard(mutex_);
  auto it = std::find_if(waiters_.begin(), waiters_.end(),
                         [&](const Waiter& w) { return w.cv == &cv; });
  if (it != waiters_.end()) waiters_.erase(it);
}

void ManualClock::Advance(Duration d) {
  std::vector<Waiter> to_wake;
  {
    std::lock_guard guard(mutex_);
    now_ += d;
    to_wake = waiters_;
  }
  for (const Waiter& w : to_wake) {
    // Taking the waiter's mutex guarantees it is inside cv.wait (or has not yet
    // registered and will see the new time), so the notify cannot be lost.
    std::lock_guard guard(*w.mutex);
    w.cv->notify_all();
  }
}

}  // namespace quiver
