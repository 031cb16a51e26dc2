#pragma once
// The scheduler's per-request and per-instance state, shared by its translation units
// (scheduler.cc, scheduler_hold.cc); nothing else includes this.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/scheduler.h"

namespace quiver::engine {

// A queued or executing request.
struct Scheduler::Pending {
  InferRequest request;
  InferCallback done;
  int64_t batch_size = 0;
  Clock::TimePoint arrival;
  uint64_t seq = 0;          // arrival order, under preserve_ordering
  uint64_t shape_class = 0;  // equal for adjacent queued requests that can share a batch
  std::optional<DeadlineMap::iterator> deadline;  // set while queued with a timeout
  bool expired = false;
};

// One backend instance and the worker thread that drives it.
struct Scheduler::Instance {
  std::unique_ptr<BackendInstance> backend;
  std::condition_variable cv;                      // the worker waits here, with mutex_
  std::vector<std::unique_ptr<Pending>> assigned;  // guarded by mutex_; the next batch
  // Set under mutex_ when a batch was assigned; the worker is notified once mutex_ is
  // released (WakeAfterUnlock), so that on a busy core it does not wake only to block on it.
  std::atomic<bool> wake{false};
  std::thread thread;
};

// What a held request's waiter calls (InferRequest::waiter). A caller may keep it past the
// scheduler's end: Shutdown detaches it, and from then on it does nothing.
class Scheduler::Helper final : public QueueHelper {
 public:
  explicit Helper(Scheduler* scheduler) : scheduler_(scheduler) {}

  bool RunQueued() override;  // scheduler_hold.cc
  void Release() override;    // scheduler_hold.cc
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

}  // namespace quiver::engine
