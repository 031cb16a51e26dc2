// The Router's request path: admission, attempts, retries, and the one `done` per request.

#include <spdlog/spdlog.h>

#include <algorithm>

#include "gateway/router.h"
#include "gateway/router_internal.h"

namespace quiver::gateway {
namespace {

// Failures that say something about the upstream rather than the request: they count
// towards its ejection. (A model's own INVALID_ARGUMENT or NOT_FOUND does not.)
bool UpstreamFault(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kInternal;
}

}  // namespace

void Router::LogEjection(const std::string& upstream) const {
  spdlog::warn("gateway: upstream {} ejected: {}", upstream,
               EjectionReasonName(health_.LastEjectionReason(upstream)));
}

// Per model, for names some upstream's repository has or the autoscaler knows; any other
// name (a client's typo, a scan) shares one bucket, so clients cannot grow the map and the
// metrics without bound.
Router::ModelCounters& Router::Counters(std::string_view model) {
  {
    std::lock_guard lock(counters_mutex_);
    auto it = counters_.find(model);
    if (it != counters_.end()) return *it->second;
  }
  const bool known = options_.wait_for_models.contains(model) ||
                     !placement_.UpstreamsWithModelInRepository(model).empty();
  std::lock_guard lock(counters_mutex_);
  if (!known) return *unknown_models_;
  auto it = counters_.find(model);
  if (it == counters_.end()) {
    it = counters_.emplace(std::string(model), std::make_unique<ModelCounters>()).first;
  }
  return *it->second;
}

void Router::Infer(InferRequest request, InferCallback done) {
  auto call = std::make_shared<Call>();
  call->counters = &Counters(request.model);  // one shared bucket for unknown names
  call->received = clock_->Now();
  call->request = std::move(request);
  call->done = std::move(done);
  call->counters->waiting.fetch_add(1, std::memory_order_relaxed);
  if (stopping_) {
    Finish(call, Status::Unavailable("the gateway is shutting down"));
    return;
  }
  if (!scheduler_) {
    Admitted(call);
    return;
  }
  const std::string tenant = call->request.tenant;
  const std::string model = call->request.model;
  scheduler_->Submit(
      tenant, model,
      [this, call] {
        call->admitted = true;
        Admitted(call);
      },
      [this, call](Status status) { Finish(call, std::move(status)); });
}

void Router::Admitted(const std::shared_ptr<Call>& call) {
  budget_.RequestStarted();
  call->started = true;
  Attempt(call);
}

void Router::Attempt(const std::shared_ptr<Call>& call) {
  const InferRequest& request = call->request;
  while (true) {
    if (stopping_) {
      Finish(call, Status::Unavailable("the gateway is shutting down"));
      return;
    }
    Result<std::string> chosen = Status::Ok();
    if (cordon_count_.load(std::memory_order_acquire) == 0) {
      chosen = selector_.Choose(request.model, request.version, call->tried);
    } else {  // a rollout: its upstream is skipped as if tried
      std::vector<std::string> skip = Cordoned(request.model);
      skip.insert(skip.end(), call->tried.begin(), call->tried.end());
      chosen = selector_.Choose(request.model, request.version, skip);
    }
    if (!chosen.ok()) {
      if (chosen.status().code() == StatusCode::kNotFound) {
        ReleaseRetrySlot(call);  // waiting for a model must not hold a retry slot
        if (WaitForModel(call)) return;
      }
      // After failed attempts, the client learns what the last upstream said.
      Finish(call, call->last_error.ok() ? chosen.status() : call->last_error);
      return;
    }
    std::shared_ptr<Upstream> upstream = Find(*chosen);
    const bool cordoned = cordon_count_.load(std::memory_order_acquire) > 0 &&
                          std::ranges::count(Cordoned(request.model), *chosen) > 0;
    if (!upstream || upstream->draining || cordoned) {  // removed or cordoned since the choice
      balancer_->Done(*chosen, request.model);
      NotifyDrain();
      call->tried.push_back(std::move(chosen).value());
      continue;
    }
    const Clock::TimePoint now = clock_->Now();
    ModelCounters& counters = *call->counters;
    if (!call->sent) {
      call->sent = true;
      counters.waiting.fetch_sub(1, std::memory_order_relaxed);
      counters.in_flight.fetch_add(1, std::memory_order_relaxed);
      counters.queue_ns_total.fetch_add(
          static_cast<uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(now - call->received).count()),
          std::memory_order_relaxed);
    }
    counters.last_used_ns.store(Nanos(now), std::memory_order_relaxed);
    upstream->service->Infer(
        call->request,  // a copy: the call keeps the request for a retry
        [this, call, url = std::move(chosen).value(), now](Result<InferResponse> result) {
          OnAttemptDone(call, url, now, std::move(result));
        });
    return;
  }
}

void Router::OnAttemptDone(const std::shared_ptr<Call>& call, const std::string& upstream,
                           Clock::TimePoint sent, Result<InferResponse> result) {
  balancer_->Done(upstream, call->request.model);
  NotifyDrain();
  ReleaseRetrySlot(call);
  if (result.ok()) {
    if (health_.Report(upstream, call->request.model, true, clock_->Now() - sent)) {
      LogEjection(upstream);
    }
    Finish(call, std::move(result));
    return;
  }
  const Status& status = result.status();
  if (UpstreamFault(status.code()) &&
      health_.Report(upstream, call->request.model, false, Clock::Duration::zero())) {
    LogEjection(upstream);
  }
  // CANCELLED by an upstream being removed is the gateway's doing, not the client's.
  const bool removed = status.code() == StatusCode::kCancelled && !Find(upstream);
  const bool retryable = status.code() == StatusCode::kUnavailable || removed;
  const bool in_time = std::chrono::steady_clock::now() < call->request.deadline;
  if (retryable && in_time && !stopping_) {
    call->tried.push_back(upstream);
    call->last_error = status;
    Retry(call);
    return;
  }
  Finish(call, std::move(result));
}

void Router::NotifyDrain() {
  if (draining_count_.load(std::memory_order_acquire) > 0) {
    // RemoveUpstream or a rollout may be waiting for this upstream's last request.
    std::lock_guard lock(upstreams_mutex_);
    drained_cv_.notify_all();
  }
}

void Router::ReleaseRetrySlot(const std::shared_ptr<Call>& call) {
  if (!call->in_retry) return;
  call->in_retry = false;
  budget_.RetryFinished();
  RetrySlotFreed();
}

// A retry beyond the budget waits for a slot rather than failing: the budget bounds how
// many retries run at once (no amplification), and a request is never lost to it. Only
// when no retry runs at all (so none will free a slot: a budget configured to 0) does the
// client get the error at once.
void Router::Retry(const std::shared_ptr<Call>& call) {
  {
    std::lock_guard lock(retry_mutex_);
    const bool refused = stopping_ || !budget_.TryStartRetry();
    if (refused && !stopping_ && budget_.retries_in_flight() > 0) {
      retry_queue_.push_back(call);
      return;
    }
    if (refused)
      call->in_retry = false;  // (it holds no slot: finished below, unlocked)
    else
      call->in_retry = true;
  }
  if (!call->in_retry) {  // outside the lock: Finish may start other requests inline
    Finish(call, call->last_error);
    return;
  }
  retries_.fetch_add(1, std::memory_order_relaxed);
  Attempt(call);
}

void Router::RetrySlotFreed() {
  std::shared_ptr<Call> next;
  {
    std::lock_guard lock(retry_mutex_);
    if (retry_queue_.empty() || !budget_.TryStartRetry()) return;
    next = std::move(retry_queue_.front());
    retry_queue_.erase(retry_queue_.begin());
  }
  next->in_retry = true;
  retries_.fetch_add(1, std::memory_order_relaxed);
  Attempt(next);
}

void Router::Finish(const std::shared_ptr<Call>& call, Result<InferResponse> result) {
  ModelCounters& counters = *call->counters;
  if (call->sent) {
    counters.in_flight.fetch_sub(1, std::memory_order_relaxed);
  } else {
    counters.waiting.fetch_sub(1, std::memory_order_relaxed);
  }
  // Never started: refused by admission (or the gateway was stopping).
  (!call->started ? counters.rejected
   : result.ok()  ? counters.success
                  : counters.failure)
      .fetch_add(1, std::memory_order_relaxed);
  ReleaseRetrySlot(call);  // ended without an attempt (e.g. nothing left to try)
  if (call->started) budget_.RequestFinished();
  InferCallback done = std::move(call->done);
  if (call->admitted && scheduler_) scheduler_->Finished(call->request.tenant);
  done(std::move(result));
}

}  // namespace quiver::gateway
