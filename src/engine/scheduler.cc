#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <limits>
#include <utility>

#include "engine/batch_tensors.h"
#include "engine/scheduler_internal.h"

namespace quiver::engine {
namespace {

// > 0 while this thread runs a scheduler callback: a request enqueued from a callback is
// queued rather than run inline, so that callbacks that enqueue cannot recurse without
// bound.
thread_local int tls_callback_depth = 0;

Clock::Duration Micros(uint64_t us) {
  constexpr uint64_t kMax =
      static_cast<uint64_t>(std::numeric_limits<Clock::Duration::rep>::max() / 1000000);
  return std::chrono::duration_cast<Clock::Duration>(
      std::chrono::microseconds(static_cast<int64_t>(std::min(us, kMax))));
}

uint64_t Nanos(Clock::Duration d) {
  if (d <= Clock::Duration::zero()) return 0;
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

uint64_t EpochMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Calls a user callback; nothing it throws escapes.
void Invoke(InferCallback& done, Result<InferResponse> result) {
  ++tls_callback_depth;
  try {
    done(std::move(result));
  } catch (...) {  // NOLINT(bugprone-empty-catch): a callback's exception has no owner
  }
  --tls_callback_depth;
}

// Counts its own lifetime in `count` (exceptions included).
class Counted {
 public:
  explicit Counted(std::atomic<int>& count) : count_(count) {
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  ~Counted() { count_.fetch_sub(1, std::memory_order_relaxed); }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;

 private:
  std::atomic<int>& count_;
};

}  // namespace

bool Scheduler::InCallback() { return tls_callback_depth > 0; }

SchedulerOptions SchedulerOptions::FromConfig(const ModelConfig& config, std::string version) {
  SchedulerOptions o;
  o.model_name = config.name();
  o.model_version = std::move(version);
  o.max_batch_size = config.max_batch_size();
  if (config.has_dynamic_batching()) {
    const auto& db = config.dynamic_batching();
    o.dynamic_batching = true;
    o.preferred_batch_sizes.assign(db.preferred_batch_size().begin(),
                                   db.preferred_batch_size().end());
    o.max_queue_delay_us = db.max_queue_delay_microseconds();
    o.preserve_ordering = db.preserve_ordering();
    if (db.has_default_queue_policy()) {
      const auto& q = db.default_queue_policy();
      o.default_timeout_us = q.default_timeout_microseconds();
      o.allow_timeout_override = q.allow_timeout_override();
      o.max_queue_size = q.max_queue_size();
    }
  }
  o.output_names.reserve(static_cast<size_t>(config.output_size()));
  for (const auto& output : config.output()) o.output_names.push_back(output.name());
  return o;
}

Scheduler::Scheduler(SchedulerOptions options,
                     std::vector<std::unique_ptr<BackendInstance>> instances,
                     std::shared_ptr<Clock> clock)
    : options_(std::move(options)),
      clock_(clock ? std::move(clock) : Clock::System()),
      batching_(options_.dynamic_batching && options_.max_batch_size > 0),
      needs_timer_((batching_ && options_.max_queue_delay_us > 0) ||
                   options_.default_timeout_us > 0 || options_.allow_timeout_override ||
                   options_.hold_for_waiters),
      policy_(batching_ ? std::optional<BatchPolicy>(std::in_place, options_.max_batch_size,
                                                     options_.preferred_batch_sizes,
                                                     Micros(options_.max_queue_delay_us))
                        : std::nullopt),
      context_("model '" + options_.model_name + "' version '" + options_.model_version + "'"),
      stats_(options_.model_name, options_.model_version) {
  for (auto& backend : instances) {
    if (!backend) continue;
    auto instance = std::make_unique<Instance>();
    instance->backend = std::move(backend);
    instances_.push_back(std::move(instance));
  }
  if (options_.hold_for_waiters) helper_ = std::make_shared<Helper>(this);
  // Idle instances are taken from the back: instance 0 is preferred.
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) idle_.push_back(it->get());
  for (auto& instance : instances_) {
    instance->thread = std::thread([this, i = instance.get()] { WorkerLoop(*i); });
  }
  if (needs_timer_) timer_ = std::thread([this] { TimerLoop(); });
}

Scheduler::~Scheduler() { Shutdown(); }

std::span<const std::string> Scheduler::OutputsOf(const InferRequest& request) const {
  if (request.requested_outputs.empty()) return options_.output_names;
  return request.requested_outputs;
}

bool Scheduler::Compatible(const Pending& a, const Pending& b) const {
  const auto& ai = a.request.inputs;
  const auto& bi = b.request.inputs;
  if (ai.size() != bi.size() || !std::ranges::equal(OutputsOf(a.request), OutputsOf(b.request))) {
    return false;
  }
  for (size_t k = 0; k < ai.size(); ++k) {
    const Tensor& x = ai[k];
    const Tensor* y = FindInput(b.request, x.name, k);
    if (y == nullptr || y->datatype != x.datatype || y->shape.size() != x.shape.size() ||
        x.shape.empty() || !std::equal(x.shape.begin() + 1, x.shape.end(), y->shape.begin() + 1)) {
      return false;
    }
  }
  return true;
}

void Scheduler::Enqueue(InferRequest request, int64_t batch_size, InferCallback done) {
  const Clock::TimePoint now = clock_->Now();
  std::unique_lock lock(mutex_);
  if (shutting_down_ || instances_.empty()) {
    lock.unlock();
    Invoke(done, Status::Unavailable(
                     context_ + (instances_.empty() ? " has no instances" : " is shutting down")));
    return;
  }
  const bool run_inline =
      queue_.empty() && !idle_.empty() && tls_callback_depth == 0 &&
      (!request.caller_serves_io || ExecutionsAreShort()) &&
      (!batching_ || (!request.queue_for_batching &&
                      (options_.max_queue_delay_us == 0 || policy_->DispatchesAlone(batch_size))));
  if (!run_inline && options_.max_queue_size > 0 && queue_.size() >= options_.max_queue_size) {
    lock.unlock();
    stats_.RecordFailure(0);
    Invoke(done, Status::ResourceExhausted("queue of " + context_ + " is full (" +
                                           std::to_string(options_.max_queue_size) + " requests)"));
    return;
  }
  ++in_flight_;
  uint64_t seq = 0;
  if (options_.preserve_ordering) {
    seq = next_seq_++;
    ordered_.emplace_back();
  }

  if (run_inline) {
    // The hot path: no allocation, no hand-off; the instance is ours until RunBatch
    // releases it.
    Instance* instance = idle_.back();
    idle_.pop_back();
    ++executing_batches_;
    if (waiters_ > 0) idle_cv_.notify_all();
    lock.unlock();
    Pending pending{std::move(request), std::move(done), batch_size, now, seq, 0, {}, false};
    Pending* batch[] = {&pending};
    RunBatch(*instance, batch, /*on_worker=*/false);
    return;
  }

  auto pending = std::make_unique<Pending>();
  pending->request = std::move(request);
  pending->done = std::move(done);
  pending->batch_size = batch_size;
  pending->arrival = now;
  pending->seq = seq;
  if (batching_) {
    pending->shape_class = !queue_.empty() && Compatible(*queue_.back(), *pending)
                               ? queue_.back()->shape_class
                               : next_class_++;
  }
  uint64_t timeout_us = options_.default_timeout_us;
  const uint64_t requested = pending->request.timeout_us;
  if (options_.allow_timeout_override && requested != 0 &&
      (timeout_us == 0 || requested < timeout_us)) {
    timeout_us = requested;
  }
  if (timeout_us > 0) {
    const Clock::TimePoint deadline = SaturatingAdd(now, Micros(timeout_us));
    pending->deadline = deadlines_.emplace(deadline, pending.get());
    WakeTimerLocked(deadline);
  }
  // Held for its waiter if nothing is queued or executing (an instance may still be busy
  // delivering: it is about to be free), or joins requests already held; a request
  // without a waiter ends the hold.
  const std::shared_ptr<WaiterLink>& waiter = pending->request.waiter;
  holding_ = helper_ != nullptr && waiter != nullptr &&
             (holding_ || (queue_.empty() && now >= no_hold_until_ &&
                           executing_now_.load(std::memory_order_relaxed) == 0));
  if (holding_) {
    std::lock_guard link(waiter->mutex);
    if (waiter->helper == nullptr) waiter->helper = helper_;
  }
  queue_.push_back(std::move(pending));
  WakeTimerLocked(DispatchLocked(now));
  lock.unlock();
  WakeAfterUnlock();
}

BatchDecision Scheduler::NextBatchLocked(Clock::TimePoint decide_at) {
  if (!batching_) return {1, {}};
  // Requests have batch size >= 1, so max_batch_size + 1 of them always end a batch.
  const size_t limit = static_cast<size_t>(
      std::min<int64_t>(static_cast<int64_t>(queue_.size()), policy_->max_batch_size() + 1));
  candidates_.clear();
  for (size_t i = 0; i < limit; ++i) {
    const Pending& p = *queue_[i];
    candidates_.push_back({p.batch_size, p.arrival, p.shape_class});
  }
  return policy_->Decide(candidates_, limit < queue_.size(), decide_at);
}

void Scheduler::TakeBatchLocked(size_t count, std::vector<std::unique_ptr<Pending>>& into) {
  for (size_t i = 0; i < count; ++i) {
    std::unique_ptr<Pending>& p = queue_.front();
    if (p->deadline) {
      deadlines_.erase(*p->deadline);
      p->deadline.reset();
    }
    into.push_back(std::move(p));
    queue_.pop_front();
  }
  ++executing_batches_;
  if (queue_.empty()) holding_ = false;
}

Clock::TimePoint Scheduler::DispatchLocked(Clock::TimePoint now) {
  if (holding_ && (queue_.empty() || shutting_down_)) holding_ = false;
  if (holding_) {
    const Clock::TimePoint until =
        SaturatingAdd(queue_.front()->arrival, Micros(options_.hold_for_waiter_us));
    if (now < until) return until;
    // The sender did something else first: it would rather have had them run meanwhile.
    holding_ = false;
    no_hold_until_ = SaturatingAdd(now, Micros(options_.hold_backoff_us));
  }
  // While draining, batches leave without waiting for their delay.
  const Clock::TimePoint decide_at = shutting_down_ ? Clock::TimePoint::max() : now;
  while (!queue_.empty() && !idle_.empty()) {
    const BatchDecision decision = NextBatchLocked(decide_at);
    if (decision.count == 0) return decision.wait_until;
    Instance* instance = idle_.back();
    idle_.pop_back();
    TakeBatchLocked(decision.count, instance->assigned);
    ++assigned_batches_;
    instance->wake.store(true, std::memory_order_release);
  }
  return Clock::TimePoint::max();
}

void Scheduler::WakeTimerLocked(Clock::TimePoint t) {
  // A timer that is not asleep re-plans from scratch before it sleeps again.
  if (!needs_timer_ || t >= timer_wake_) return;
  timer_dirty_ = true;
  timer_notify_.store(true, std::memory_order_release);
}

void Scheduler::WakeAfterUnlock() {
  // The timer checks timer_dirty_ under mutex_ before it waits, so a notification after
  // unlocking cannot be lost; under the lock, the woken timer would preempt this thread on
  // a busy core only to block on mutex_. acq_rel as for `wake` below: the thread that takes
  // the flag notifies for the one that set it.
  if (timer_notify_.exchange(false, std::memory_order_acq_rel)) timer_cv_.notify_one();
  for (auto& instance : instances_) {
    // acq_rel: a thread that takes the flag another set is ordered after that thread's
    // assignment, hence after the worker began waiting; relaxed, a weakly ordered CPU
    // could let its notify miss the waiter, and the batch would never run.
    if (instance->wake.exchange(false, std::memory_order_acq_rel)) instance->cv.notify_one();
  }
}

void Scheduler::ReleaseInstance(Instance& instance) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(&instance);
    if (queue_.empty()) return;
    WakeTimerLocked(DispatchLocked(clock_->Now()));
  }
  WakeAfterUnlock();
}

Clock::TimePoint Scheduler::ExpireLocked(Clock::TimePoint now,
                                         std::vector<std::unique_ptr<Pending>>& expired) {
  bool any = false;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Pending* p = deadlines_.begin()->second;
    p->deadline.reset();
    p->expired = true;
    deadlines_.erase(deadlines_.begin());
    any = true;
  }
  if (any) {
    size_t kept = 0;
    for (size_t i = 0; i < queue_.size(); ++i) {
      if (queue_[i]->expired) {
        expired.push_back(std::move(queue_[i]));
      } else {
        if (kept != i) queue_[kept] = std::move(queue_[i]);
        ++kept;
      }
    }
    queue_.resize(kept);
    // Requests that became neighbours may now share a batch: re-label runs.
    if (batching_) {
      for (size_t i = 1; i < queue_.size(); ++i) {
        if (queue_[i]->shape_class != queue_[i - 1]->shape_class &&
            Compatible(*queue_[i - 1], *queue_[i])) {
          queue_[i]->shape_class = queue_[i - 1]->shape_class;
        }
      }
    }
  }
  return deadlines_.empty() ? Clock::TimePoint::max() : deadlines_.begin()->first;
}

void Scheduler::TimerLoop() {
  std::vector<std::unique_ptr<Pending>> expired;
  std::unique_lock lock(mutex_);
  while (!stop_threads_) {
    timer_dirty_ = false;
    const Clock::TimePoint now = clock_->Now();
    const Clock::TimePoint next_deadline = ExpireLocked(now, expired);
    if (!expired.empty()) {
      lock.unlock();
      size_t unaccounted = 0;
      for (auto& p : expired) {
        stats_.RecordFailure(Nanos(now - p->arrival));
        unaccounted += Deliver(*p, Status::Unavailable("request timeout expired"));
      }
      expired.clear();
      Finish(unaccounted, 0);
      lock.lock();
      continue;  // re-plan: time and state moved on while unlocked
    }
    const size_t assigned_before = assigned_batches_;
    const Clock::TimePoint wake = std::min(next_deadline, DispatchLocked(now));
    if (assigned_batches_ != assigned_before) {
      // A delay ran out. The workers are woken unlocked (under mutex_, a woken worker
      // preempts this thread on a busy core only to block on it), then the timer re-plans.
      lock.unlock();
      WakeAfterUnlock();
      lock.lock();
      continue;
    }
    timer_wake_ = wake;
    timer_sleeping_ = true;
    if (waiters_ > 0) idle_cv_.notify_all();
    while (!timer_dirty_ && !stop_threads_ && clock_->Now() < wake) {
      clock_->WaitUntil(timer_cv_, lock, wake);
    }
    timer_sleeping_ = false;
  }
}

void Scheduler::WorkerLoop(Instance& instance) {
  std::vector<std::unique_ptr<Pending>> batch;
  std::vector<Pending*> view;
  std::unique_lock lock(mutex_);
  while (true) {
    while (instance.assigned.empty() && !stop_threads_) instance.cv.wait(lock);
    if (instance.assigned.empty()) return;
    batch.swap(instance.assigned);
    --assigned_batches_;
    if (waiters_ > 0) idle_cv_.notify_all();
    lock.unlock();
    view.clear();
    for (auto& p : batch) view.push_back(p.get());
    RunBatch(instance, view, /*on_worker=*/true);
    batch.clear();
    lock.lock();
  }
}

namespace {

// DeliveryBatch for the responses of one batch: the work callbacks hand over, run after
// the last of them.
class DeferredWork final : public DeliveryBatch {
 public:
  void AfterDelivery(std::function<void()> work) override { work_.push_back(std::move(work)); }
  void Run() {
    ++tls_callback_depth;  // as a callback: a request it sends is never run inline here
    for (auto& work : work_) {
      try {
        work();
      } catch (...) {  // NOLINT(bugprone-empty-catch): as Invoke
      }
    }
    --tls_callback_depth;
    work_.clear();
  }

 private:
  std::vector<std::function<void()>> work_;
};

}  // namespace

bool Scheduler::ExecutionsAreShort() const {
  const int64_t mean = recent_execution_ns_.load(std::memory_order_relaxed);
  return mean >= 0 && static_cast<uint64_t>(mean) <= options_.inline_limit_us * 1000;
}

void Scheduler::RecordExecutionTime(Clock::Duration duration) {
  const auto ns = static_cast<int64_t>(Nanos(duration));
  const int64_t mean = recent_execution_ns_.load(std::memory_order_relaxed);
  // Weight 1/8: a model that turns slow stops running inline after a few executions.
  recent_execution_ns_.store(mean < 0 ? ns : mean + (ns - mean) / 8, std::memory_order_relaxed);
}

void Scheduler::RunBatch(Instance& instance, std::span<Pending* const> batch, bool on_worker) {
  const size_t n = batch.size();
  const Clock::TimePoint start = clock_->Now();
  const InferRequest& head = batch.front()->request;
  const std::span<const std::string> requested = OutputsOf(head);
  int64_t total = 0;
  for (const Pending* p : batch) total += p->batch_size;

  Clock::TimePoint exec_start = start;
  std::vector<Tensor> outputs;
  ComputeTimes times;
  Status status;
  try {
    std::vector<Tensor> merged;
    std::span<const Tensor> inputs = head.inputs;
    if (n > 1) {
      std::vector<const InferRequest*> requests;
      requests.reserve(n);
      for (const Pending* p : batch) requests.push_back(&p->request);
      status = ConcatInputs(requests, total, merged);
      inputs = merged;
      exec_start = clock_->Now();
    }
    if (status.ok()) {
      const BackendBatch backend_batch{inputs, requested, options_.max_batch_size > 0 ? total : 0};
      const Counted executing(executing_now_);
      status = instance.backend->Execute(backend_batch, outputs, times);
    }
  } catch (const std::exception& e) {
    status = Status::Internal(std::string("backend threw: ") + e.what());
  } catch (...) {
    status = Status::Internal("backend threw a non-standard exception");
  }
  const Clock::TimePoint exec_end = clock_->Now();
  // A failure may return at once: only successful executions tell how long the model takes.
  if (status.ok()) RecordExecutionTime(exec_end - start);
  if (!on_worker) ReleaseInstance(instance);

  if (!status.ok()) {
    status = status.WithContext(context_);
  } else if (outputs.size() != requested.size()) {
    status = Status::Internal(context_ + ": backend returned " + std::to_string(outputs.size()) +
                              " outputs for " + std::to_string(requested.size()) + " requested");
  } else if (options_.max_batch_size > 0) {
    for (const Tensor& out : outputs) {
      if (out.shape.empty() || out.shape[0] != total) {
        status = Status::Internal(
            context_ + ": output '" + out.name + "' has batch dimension " +
            (out.shape.empty() ? std::string("none") : std::to_string(out.shape[0])) +
            " but the batch has " + std::to_string(total));
        break;
      }
    }
  }

  std::vector<std::vector<Tensor>> split;
  if (status.ok() && n > 1) {
    try {
      std::vector<int64_t> sizes;
      sizes.reserve(n);
      for (const Pending* p : batch) sizes.push_back(p->batch_size);
      status = SplitOutputs(outputs, sizes, split);
      if (!status.ok()) status = status.WithContext(context_);
    } catch (const std::exception& e) {
      status = Status::Internal(context_ + ": splitting outputs failed: " + e.what());
    }
  }
  const Clock::TimePoint end = n > 1 ? clock_->Now() : exec_end;

  if (status.ok()) {
    const bool reported = times.input_ns != 0 || times.infer_ns != 0 || times.output_ns != 0;
    const ComputeDurations compute{Nanos(exec_start - start) + times.input_ns,
                                   reported ? times.infer_ns : Nanos(exec_end - exec_start),
                                   times.output_ns + Nanos(end - exec_end)};
    RequestTiming one;
    std::vector<RequestTiming> many;
    std::span<const RequestTiming> timings;
    if (n == 1) {
      one = {Nanos(end - batch[0]->arrival), Nanos(start - batch[0]->arrival)};
      timings = {&one, 1};
    } else {
      many.reserve(n);
      for (const Pending* p : batch)
        many.push_back({Nanos(end - p->arrival), Nanos(start - p->arrival)});
      timings = many;
    }
    stats_.RecordBatch(options_.max_batch_size > 0 ? static_cast<uint64_t>(total) : 1, compute,
                       timings, EpochMs());
  } else {
    for (const Pending* p : batch) stats_.RecordFailure(Nanos(end - p->arrival));
  }

  // Responses delivered in a row on this thread carry it (not under preserve_ordering:
  // those may be delivered later, by another thread).
  DeferredWork after_delivery;
  DeliveryBatch* const delivery_batch =
      n > 1 && !options_.preserve_ordering ? &after_delivery : nullptr;
  size_t unaccounted = 0;
  for (size_t i = 0; i < n; ++i) {
    Pending& p = *batch[i];
    if (!status.ok()) {
      unaccounted += Deliver(p, status);
      continue;
    }
    InferResponse response{options_.model_name, options_.model_version, std::move(p.request.id),
                           n == 1 ? std::move(outputs) : std::move(split[i]), delivery_batch};
    unaccounted += Deliver(p, std::move(response));
  }
  after_delivery.Run();
  if (on_worker) ReleaseInstance(instance);
  Finish(unaccounted, 1);
}

size_t Scheduler::Deliver(Pending& pending, Result<InferResponse> result) {
  // The inputs are no longer needed: released before the callback, so that their owner
  // (e.g. Python's numpy arrays) can release them on its own thread.
  pending.request.inputs.clear();
  if (!options_.preserve_ordering) {
    Invoke(pending.done, std::move(result));
    return 1;
  }
  std::unique_lock lock(mutex_);
  Ordered& slot = ordered_[pending.seq - ordered_base_];
  slot.result.emplace(std::move(result));
  slot.done = std::move(pending.done);
  if (delivering_) return 0;  // the thread delivering now will deliver this one too
  delivering_ = true;
  while (!ordered_.empty() && ordered_.front().result.has_value()) {
    Ordered next = std::move(ordered_.front());
    ordered_.pop_front();
    ++ordered_base_;
    lock.unlock();
    Invoke(next.done, std::move(*next.result));
    lock.lock();
    --in_flight_;
    if (waiters_ > 0) idle_cv_.notify_all();
  }
  delivering_ = false;
  return 0;
}

void Scheduler::Finish(size_t requests, size_t batches) {
  std::lock_guard lock(mutex_);
  in_flight_ -= requests;
  executing_batches_ -= batches;
  if (waiters_ > 0) idle_cv_.notify_all();
}

void Scheduler::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (helper_) helper_->Detach();  // waiters' calls in progress end first
    {
      std::unique_lock lock(mutex_);
      shutting_down_ = true;
      // Flush batches that wait for their delay; busy instances flush the rest as they
      // finish (DispatchLocked ignores delays from now on).
      if (!queue_.empty()) DispatchLocked(clock_->Now());
      WakeAfterUnlock();
      ++waiters_;
      idle_cv_.wait(lock, [this] { return in_flight_ == 0 && executing_batches_ == 0; });
      --waiters_;
      stop_threads_ = true;
      for (auto& instance : instances_) instance->cv.notify_all();
      timer_dirty_ = true;
      timer_cv_.notify_all();
    }
    for (auto& instance : instances_) {
      if (instance->thread.joinable()) instance->thread.join();
    }
    if (timer_.joinable()) timer_.join();
  });
}

ModelStatistics Scheduler::Statistics() const { return stats_.Snapshot(); }

size_t Scheduler::PendingCount() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

bool Scheduler::QuiescentLocked(size_t executing_batches) const {
  if (assigned_batches_ != 0 || executing_batches_ != executing_batches) return false;
  if (!needs_timer_) return true;
  return timer_sleeping_ && !timer_dirty_ && timer_wake_ > clock_->Now();
}

void Scheduler::WaitIdleForTest(size_t executing_batches) {
  std::unique_lock lock(mutex_);
  ++waiters_;
  idle_cv_.wait(lock, [&] { return QuiescentLocked(executing_batches); });
  --waiters_;
}

}  // namespace quiver::engine
