#pragma once
// Scheduler: runs the requests of one model version on its backend instances, with
// Triton-style dynamic batching, queue policy (bounded queue, timeouts), optional
// in-order responses, and statistics.
//
// Threads: one worker per instance, plus one timer thread when the model can have
// batching delays or queue timeouts (it expires timed-out requests and flushes batches
// whose delay ran out, independently of busy instances). A request that finds an idle
// instance, an empty queue and nothing to wait for runs inline on the caller's thread
// (for a frontend's I/O thread, only while the model's executions are short). A request
// whose sender will wait for it, sent while every instance is idle, may be held for that
// sender, which runs it when it comes to wait (hold_for_waiters).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "engine/backend.h"
#include "engine/batch_policy.h"
#include "engine/model_stats.h"
#include "service/inference_service.h"

namespace quiver::engine {

// How one model version is scheduled; see proto/model_config.proto for the meaning.
struct SchedulerOptions {
  std::string model_name;
  std::string model_version;   // as a string, e.g. "1"
  int64_t max_batch_size = 0;  // 0: the model has no batch dimension
  bool dynamic_batching = false;
  std::vector<int64_t> preferred_batch_sizes;
  uint64_t max_queue_delay_us = 0;
  bool preserve_ordering = false;
  uint64_t default_timeout_us = 0;  // 0: no timeout
  bool allow_timeout_override = false;
  uint32_t max_queue_size = 0;            // 0: unbounded
  std::vector<std::string> output_names;  // all outputs of the model, config order
  // A request from a frontend's I/O thread (InferRequest::caller_serves_io) runs inline only
  // while the recent mean execution time is at most this; before the first execution it is
  // unknown and counts as long. Below it a hand-off to the instance's worker (two wake-ups,
  // ~10-20 us) would be a visible share of the request; above it, it is not, and an I/O
  // thread that serves other connections is never held longer.
  uint64_t inline_limit_us = 1000;
  // Hold a request that carries a waiter (InferRequest::waiter), sent while every instance
  // is idle and nothing is queued, for the waiting thread to run, instead of waking a
  // worker: for one call or a pair in flight (Python's infer_async, then result()) the
  // hand-off to a worker on another core and back costs two cross-core wake-ups, more than
  // a small batch (docs/benchmarks.md, "Held for the waiter"). Set where the process may use
  // several CPUs (on one CPU it measured slower). Held requests go to the workers when the
  // waiter cannot run them, on QueueHelper::Release, when a request without a waiter comes,
  // and hold_for_waiter_us after the oldest was sent: a sender that does other work before
  // it waits loses at most that much overlap, and no request is held for
  // hold_backoff_us after that happened.
  bool hold_for_waiters = false;
  uint64_t hold_for_waiter_us = 200;
  uint64_t hold_backoff_us = 100000;
  // From a normalized config (dynamic_batching + default_queue_policy + outputs).
  // timeout_action DELAY, priorities and per-priority policies are not supported and
  // are ignored (REJECT semantics).
  static SchedulerOptions FromConfig(const ModelConfig& config, std::string version);
};

// Thread-safe: every method may be called concurrently from any thread, except as noted.
// Destroy it only once every Enqueue call has returned: Enqueue may still touch the
// scheduler after the request's callback ran (ModelVersion guarantees this).
class Scheduler {
 public:
  // Takes ownership of the instances and starts one worker thread per instance (with
  // no instance, every request fails with UNAVAILABLE).
  Scheduler(SchedulerOptions options, std::vector<std::unique_ptr<BackendInstance>> instances,
            std::shared_ptr<Clock> clock = Clock::System());
  ~Scheduler();  // calls Shutdown()

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `request`, already validated against the config; `batch_size` is its dim 0 (0 if
  // the model has no batch dimension). `done` is called exactly once, on any thread
  // (possibly inline, before Enqueue returns), with InferResponse{model_name,
  // model_version, request.id, outputs} or an error: RESOURCE_EXHAUSTED when the queue is
  // full (never blocks), UNAVAILABLE after Shutdown began or when the request's queue
  // timeout expired, or the backend's error. Callbacks may call Enqueue.
  void Enqueue(InferRequest request, int64_t batch_size, InferCallback done);

  // Stops accepting requests, lets every queued and executing request finish (their
  // callbacks have returned when Shutdown returns) and joins the threads. Queued requests
  // are dispatched without waiting for batching delays. Idempotent; concurrent callers
  // all wait for completion. Must not be called from inside a callback.
  void Shutdown();

  // Triton's statistics extension fields for this model version.
  ModelStatistics Statistics() const;
  // Requests accepted whose callback has not yet returned (queued + executing).
  size_t PendingCount() const;

  // Test hook: blocks until the scheduler is quiescent at the clock's current time: no
  // batch can be dispatched or request expired before some future time, and exactly
  // `executing_batches` batches are executing (taken by an instance and not yet handed
  // to their callbacks). Hangs if that never happens (e.g. executions that stay blocked).
  void WaitIdleForTest(size_t executing_batches = 0);

 private:
  struct Pending;
  struct Instance;
  class Helper;
  friend class Helper;
  using DeadlineMap = std::multimap<Clock::TimePoint, Pending*>;

  void WorkerLoop(Instance& instance);
  void TimerLoop();
  // Executes `batch` on `instance` (owned by the caller until it returns), releases the
  // instance, records statistics and delivers the responses. `on_worker`: the caller is
  // the instance's own worker thread, which releases the instance only after delivering:
  // it could not start the next batch any sooner itself, and requests that callbacks send
  // meanwhile (a client's next calls) then join one batch instead of the first leaving
  // alone. The price: a request arriving during the delivery cannot run inline on another
  // thread (the frontends' callbacks only post or serialise, so deliveries are short), and
  // a callback must not wait for another request to this model. An inline caller releases
  // the instance before delivering, so that the worker can start.
  void RunBatch(Instance& instance, std::span<Pending* const> batch, bool on_worker);
  // The batch the policy would take from the head of the queue now (count 1 without
  // batching); call with a non-empty queue.
  BatchDecision NextBatchLocked(Clock::TimePoint decide_at);
  // Moves the first `count` queued requests into `into` and counts them as executing.
  void TakeBatchLocked(size_t count, std::vector<std::unique_ptr<Pending>>& into);
  // Hands ready batches to idle instances; returns when a waiting batch must be
  // reconsidered (TimePoint::max() when none waits).
  Clock::TimePoint DispatchLocked(Clock::TimePoint now);
  // Notifies the workers that DispatchLocked assigned a batch to, and the timer when
  // WakeTimerLocked asked for it. Call it after mutex_ is released, after every section
  // that dispatched or called WakeTimerLocked (a spurious notification is harmless).
  void WakeAfterUnlock();
  // Makes the timer thread re-plan if `t` is earlier than the time it sleeps until; the
  // notification is sent by the next WakeAfterUnlock, after mutex_ is released.
  void WakeTimerLocked(Clock::TimePoint t);
  void ReleaseInstance(Instance& instance);
  // Helper's RunQueued and Release (QueueHelper): run one held batch on this thread, or
  // end the hold so that the workers take the queue.
  bool RunHeld();
  void ReleaseHeld();
  // Whether this thread is inside a callback of some scheduler.
  static bool InCallback();
  // Ends the hold and dispatches; call with mutex_ held (then WakeAfterUnlock after it).
  void EndHoldLocked(Clock::TimePoint now);
  // Whether the recent executions were short enough for an I/O thread (inline_limit_us).
  bool ExecutionsAreShort() const;
  void RecordExecutionTime(Clock::Duration duration);
  // Removes timed-out requests from the queue into `expired`; returns the earliest
  // deadline still pending.
  Clock::TimePoint ExpireLocked(Clock::TimePoint now,
                                std::vector<std::unique_ptr<Pending>>& expired);
  bool Compatible(const Pending& a, const Pending& b) const;
  std::span<const std::string> OutputsOf(const InferRequest& request) const;
  // Calls the callback of `pending` with `result`, or under preserve_ordering parks it
  // until every earlier response was delivered and delivers what became deliverable.
  // Returns how many requests it did not account for (Finish must subtract them).
  size_t Deliver(Pending& pending, Result<InferResponse> result);
  // Accounting after callbacks returned: `requests` fewer in flight, `batches` fewer
  // executing. Takes the mutex: the last touch of `this` by a thread that Shutdown does
  // not join (an inline caller).
  void Finish(size_t requests, size_t batches);
  bool QuiescentLocked(size_t executing_batches) const;

  const SchedulerOptions options_;
  const std::shared_ptr<Clock> clock_;
  const bool batching_;     // dynamic batching with a batch dimension
  const bool needs_timer_;  // delays or timeouts possible
  const std::optional<BatchPolicy> policy_;
  const std::string context_;  // "model 'm' version 'v'"
  ModelStats stats_;

  std::vector<std::unique_ptr<Instance>> instances_;  // fixed after construction

  mutable std::mutex mutex_;
  std::condition_variable timer_cv_;            // the timer thread waits here
  std::condition_variable idle_cv_;             // Shutdown and WaitIdleForTest wait here
  std::deque<std::unique_ptr<Pending>> queue_;  // guarded by mutex_
  DeadlineMap deadlines_;                       // guarded by mutex_; queued requests only
  std::vector<Instance*> idle_;                 // guarded by mutex_
  std::vector<BatchCandidate> candidates_;      // guarded by mutex_; scratch
  size_t assigned_batches_ = 0;  // guarded by mutex_; handed to a worker, not yet taken
  uint64_t next_class_ = 0;      // guarded by mutex_
  bool shutting_down_ = false;   // guarded by mutex_
  bool stop_threads_ = false;    // guarded by mutex_
  bool timer_sleeping_ = false;  // guarded by mutex_
  bool timer_dirty_ = false;     // guarded by mutex_
  Clock::TimePoint timer_wake_ = Clock::TimePoint::max();  // guarded by mutex_
  std::atomic<bool> timer_notify_{false};  // set under mutex_, taken by WakeAfterUnlock
  // preserve_ordering: a response waiting for the earlier ones to be delivered.
  struct Ordered {
    std::optional<Result<InferResponse>> result;  // empty until the request completed
    InferCallback done;
  };
  std::deque<Ordered> ordered_;  // guarded by mutex_; indexed by seq - ordered_base_
  uint64_t ordered_base_ = 0;    // guarded by mutex_
  uint64_t next_seq_ = 0;        // guarded by mutex_
  bool delivering_ = false;      // guarded by mutex_
  // The queued requests are held for their waiters (hold_for_waiters); false whenever the
  // queue is empty.
  bool holding_ = false;  // guarded by mutex_
  // Instances inside BackendInstance::Execute (not queued, not delivering).
  std::atomic<int> executing_now_{0};
  // No request is held before this (a waiter did not come in time: hold_backoff_us).
  Clock::TimePoint no_hold_until_ = Clock::TimePoint::min();  // guarded by mutex_
  // Given to the requests it holds; detached (and waited for) by Shutdown.
  std::shared_ptr<Helper> helper_;

  size_t in_flight_ = 0;  // guarded by mutex_; accepted, callback not returned
  // Moving mean of a batch's execution time in ns (-1: none yet); see inline_limit_us.
  // Updated by every execution without a lock: a lost update only delays the mean.
  std::atomic<int64_t> recent_execution_ns_{-1};
  size_t executing_batches_ = 0;  // guarded by mutex_; dispatched, not yet delivered
  int waiters_ = 0;               // guarded by mutex_; threads waiting on idle_cv_

  std::once_flag shutdown_once_;
  std::thread timer_;
};

}  // namespace quiver::engine
