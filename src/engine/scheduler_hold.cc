// The hold for waiters (SchedulerOptions::hold_for_waiters): what a held request's waiter
// calls, and how the scheduler runs or releases the requests it holds.

#include <memory>
#include <mutex>
#include <vector>

#include "engine/scheduler.h"
#include "engine/scheduler_internal.h"

namespace quiver::engine {

// What a held request's waiter calls (InferRequest::waiter). A caller may keep it past the
// scheduler's end: Shutdown detaches it, and from then on it does nothing.
class Scheduler::Helper final : public QueueHelper {
 public:
  explicit Helper(Scheduler* scheduler) : scheduler_(scheduler) {}

  bool RunQueued() override {
    Entry entry(*this);
    return entry.scheduler != nullptr && entry.scheduler->RunHeld();
  }
  void Release() override {
    Entry entry(*this);
    if (entry.scheduler != nullptr) entry.scheduler->ReleaseHeld();
  }
  // Returns once no call is inside the scheduler; none enters it afterwards.
  void Detach() {
    std::unique_lock lock(mutex_);
    scheduler_ = nullptr;
    left_.wait(lock, [this] { return inside_ == 0; });
  }

 private:
  // The scheduler for the duration of one call (null once detached).
  struct Entry {
    explicit Entry(Helper& h) : helper(h) {
      std::lock_guard lock(helper.mutex_);
      scheduler = helper.scheduler_;
      if (scheduler != nullptr) ++helper.inside_;
    }
    ~Entry() {
      if (scheduler == nullptr) return;
      std::lock_guard lock(helper.mutex_);
      if (--helper.inside_ == 0) helper.left_.notify_all();
    }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    Helper& helper;
    Scheduler* scheduler = nullptr;
  };

  std::mutex mutex_;
  std::condition_variable left_;
  Scheduler* scheduler_;  // guarded by mutex_
  int inside_ = 0;        // guarded by mutex_
};

std::shared_ptr<QueueHelper> Scheduler::MakeHelper() { return std::make_shared<Helper>(this); }

void Scheduler::DetachHelper() {
  if (helper_) static_cast<Helper&>(*helper_).Detach();
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
    WakeAssigned();
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
  WakeAssigned();
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
  WakeAssigned();
}

void Scheduler::EndHoldLocked(Clock::TimePoint now) {
  holding_ = false;
  WakeTimerLocked(DispatchLocked(now));
}

}  // namespace quiver::engine
