// The hold for waiters (SchedulerOptions::hold_for_waiters): what a held request's waiter
// calls, and how the scheduler runs or releases the requests it holds.

#include <memory>
#include <mutex>
#include <vector>

#include "engine/scheduler.h"
#include "engine/scheduler_internal.h"

namespace quiver::engine {

bool Scheduler::Helper::RunQueued() {
  Entry entry(*this);
  return entry.scheduler != nullptr && entry.scheduler->RunHeld();
}

void Scheduler::Helper::Release() {
  Entry entry(*this);
  if (entry.scheduler != nullptr) entry.scheduler->ReleaseHeld();
}

bool Scheduler::RunHeld() {
  std::unique_lock lock(mutex_);
  if (!holding_) return false;  // the workers have the queue
  const Clock::TimePoint now = clock_->Now();
  // Not from inside a callback (a done-callback waiting for another call): runs would nest.
  const size_t count =
      idle_.empty() || queue_.empty() || InCallback() ? 0 : NextBatchLocked(now).count;
  if (count == 0) {  // every instance busy, the batch waits for its delay, or nested
    EndHoldLocked(now);
    lock.unlock();
    WakeAfterUnlock();
    return false;
  }
  Instance* instance = idle_.back();
  idle_.pop_back();
  std::vector<std::unique_ptr<Pending>> batch;
  batch.reserve(count);
  TakeBatchLocked(count, batch);
  // What is left goes to the workers: at once to another idle instance, else when this
  // batch releases its instance; it runs there while this thread delivers.
  holding_ = false;
  WakeTimerLocked(DispatchLocked(now));
  if (waiters_ > 0) idle_cv_.notify_all();
  lock.unlock();
  WakeAfterUnlock();
  std::vector<Pending*> view;
  view.reserve(count);
  for (auto& p : batch) view.push_back(p.get());
  RunBatch(*instance, view, /*on_worker=*/false);
  return true;
}

void Scheduler::ReleaseHeld() {
  {
    std::lock_guard lock(mutex_);
    if (!holding_) return;
    EndHoldLocked(clock_->Now());
  }
  WakeAfterUnlock();
}

void Scheduler::EndHoldLocked(Clock::TimePoint now) {
  holding_ = false;
  WakeTimerLocked(DispatchLocked(now));
}

}  // namespace quiver::engine
