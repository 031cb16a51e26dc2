#pragma once
// The scheduler's per-request and per-instance state, shared by its translation units
// (scheduler.cc, scheduler_hold.cc); nothing else includes this.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
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
  // released (WakeAssigned), so that on a busy core it does not wake only to block on it.
  std::atomic<bool> wake{false};
  std::thread thread;
};

}  // namespace quiver::engine
