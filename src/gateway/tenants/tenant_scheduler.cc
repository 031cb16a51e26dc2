#include "gateway/tenants/tenant_scheduler.h"

#include <fmt/format.h>

#include <cassert>
#include <chrono>
#include <iterator>
#include <utility>

namespace quiver::gateway {
namespace {

std::string Who(std::string_view tenant) {
  return tenant.empty() ? std::string("anonymous tenant") : fmt::format("tenant '{}'", tenant);
}

Status TooManyRequests(std::string message) {
  return Status(StatusCode::kTooManyRequests, std::move(message));
}

// The scheduler whose callbacks this thread is running, and where nested calls queue theirs.
thread_local const void* t_running = nullptr;
thread_local std::deque<std::function<void()>>* t_pending = nullptr;

class PassThroughScheduler final : public RequestScheduler {
 public:
  void Submit(std::string_view, std::string_view, std::function<void()> start,
              std::function<void(Status)>) override {
    start();
  }
  void Finished(std::string_view) override {}
  void SetCapacity(size_t) override {}
  void RejectAll(const Status&) override {}
};

}  // namespace

TenantScheduler::Tenant::Tenant(const TenantOptions& o, Clock::TimePoint now)
    : weight(o.weight > 0 ? o.weight : 1.0),
      max_in_flight(o.max_in_flight),
      bucket(o.rate, o.burst, now) {
  stats.tenant = o.name;
}

TenantScheduler::TenantScheduler(const std::vector<TenantOptions>& tenants,
                                 std::shared_ptr<Clock> clock, TenantSchedulerOptions options)
    : clock_(std::move(clock)), options_(options) {
  const auto now = clock_->Now();
  for (const auto& t : tenants) tenants_.try_emplace(t.name, t, now);
}

TenantScheduler::Tenant& TenantScheduler::TenantLocked(std::string_view name) {
  auto it = tenants_.find(name);
  if (it != tenants_.end()) return it->second;
  TenantOptions defaults;
  defaults.name = std::string(name);
  return tenants_.try_emplace(defaults.name, defaults, Clock::TimePoint{}).first->second;
}

void TenantScheduler::Submit(std::string_view tenant, std::string_view /*model*/,
                             std::function<void()> start, std::function<void(Status)> reject) {
  Actions actions;
  {
    std::lock_guard lock(mutex_);
    Tenant& t = TenantLocked(tenant);
    Status refusal;
    if (t.max_in_flight > 0 && t.in_flight + t.queue.size() >= t.max_in_flight) {
      ++t.stats.in_flight_limited;
      refusal = TooManyRequests(
          fmt::format("{} is at its limit of {} requests in flight", Who(tenant), t.max_in_flight));
    } else if (!t.bucket.unlimited() && !t.bucket.TryTake(clock_->Now())) {
      ++t.stats.rate_limited;
      refusal = TooManyRequests(
          fmt::format("{} is over its rate limit of {} requests/s", Who(tenant), t.bucket.rate()));
    } else if (capacity_ == 0 || in_flight_ < capacity_) {
      assert(queued_ == 0 && "requests queued while capacity is free");
      ++t.stats.admitted;
      ++t.in_flight;
      ++in_flight_;
      actions.push_back(std::move(start));
    } else if (t.queue.size() >= options_.max_queued_per_tenant) {
      ++t.stats.queue_rejected;
      refusal = TooManyRequests(fmt::format("{}: queue full ({} requests waiting for capacity)",
                                            Who(tenant), t.queue.size()));
    } else {
      ++t.stats.admitted;
      const double begin = std::max(virtual_time_, t.last_finish);
      t.last_finish = begin + 1.0 / t.weight;
      t.queue.push_back(
          {std::move(start), std::move(reject), t.last_finish, seq_++, clock_->Now()});
      ++queued_;
    }
    if (!refusal.ok()) {
      actions.push_back(
          [reject = std::move(reject), refusal = std::move(refusal)] { reject(refusal); });
    }
  }
  Run(std::move(actions));
}

void TenantScheduler::Finished(std::string_view tenant) {
  Actions actions;
  {
    std::lock_guard lock(mutex_);
    auto it = tenants_.find(tenant);
    assert(it != tenants_.end() && it->second.in_flight > 0 && "Finished without a start");
    if (it == tenants_.end() || it->second.in_flight == 0) return;
    --it->second.in_flight;
    --in_flight_;
    DispatchLocked(actions);
  }
  Run(std::move(actions));
}

void TenantScheduler::SetCapacity(size_t max_in_flight) {
  Actions actions;
  {
    std::lock_guard lock(mutex_);
    capacity_ = max_in_flight;
    DispatchLocked(actions);
  }
  Run(std::move(actions));
}

void TenantScheduler::DispatchLocked(Actions& out) {
  if (queued_ == 0) return;
  const auto now = clock_->Now();
  while (queued_ > 0 && (capacity_ == 0 || in_flight_ < capacity_)) {
    Tenant* best = nullptr;
    for (auto& [name, t] : tenants_) {
      if (t.queue.empty()) continue;
      const Pending& head = t.queue.front();
      if (best == nullptr || head.finish < best->queue.front().finish ||
          (head.finish == best->queue.front().finish && head.seq < best->queue.front().seq)) {
        best = &t;
      }
    }
    Pending p = std::move(best->queue.front());
    best->queue.pop_front();
    --queued_;
    virtual_time_ = p.finish;
    best->stats.queue_ns_total += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - p.enqueued).count());
    ++best->in_flight;
    ++in_flight_;
    out.push_back(std::move(p.start));
  }
  if (queued_ == 0) {
    // Every finish time is now <= V: restarting the virtual clock at 0 changes no order
    // and keeps the numbers small.
    virtual_time_ = 0;
    for (auto& [name, t] : tenants_) t.last_finish = 0;
  }
}

void TenantScheduler::RejectAll(const Status& status) {
  Actions actions;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, t] : tenants_) {
      for (auto& p : t.queue) {
        actions.push_back([reject = std::move(p.reject), status] { reject(status); });
      }
      t.queue.clear();
      t.last_finish = 0;
    }
    queued_ = 0;
    virtual_time_ = 0;
  }
  Run(std::move(actions));
}

std::vector<TenantStats> TenantScheduler::Stats() const {
  std::lock_guard lock(mutex_);
  std::vector<TenantStats> out;
  out.reserve(tenants_.size());
  for (const auto& [name, t] : tenants_) {
    out.push_back(t.stats);
    out.back().in_flight = t.in_flight;
    out.back().queued = t.queue.size();
  }
  return out;
}

void TenantScheduler::Run(Actions actions) {
  if (actions.empty()) return;
  if (t_running == this) {  // called from one of our callbacks: the outer loop runs these
    std::move(actions.begin(), actions.end(), std::back_inserter(*t_pending));
    return;
  }
  std::deque<std::function<void()>> pending(std::make_move_iterator(actions.begin()),
                                            std::make_move_iterator(actions.end()));
  struct Scope {  // restores the outer scheduler's loop (callbacks may use another scheduler)
    const void* running = t_running;
    std::deque<std::function<void()>>* queue = t_pending;
    ~Scope() {
      t_running = running;
      t_pending = queue;
    }
  } scope;
  t_running = this;
  t_pending = &pending;
  while (!pending.empty()) {
    auto fn = std::move(pending.front());
    pending.pop_front();
    fn();
  }
}

std::unique_ptr<RequestScheduler> MakeTenantScheduler(std::vector<TenantOptions> tenants,
                                                      std::shared_ptr<Clock> clock,
                                                      TenantSchedulerOptions options) {
  return std::make_unique<TenantScheduler>(tenants, std::move(clock), options);
}

std::unique_ptr<RequestScheduler> MakePassThroughScheduler() {
  return std::make_unique<PassThroughScheduler>();
}

}  // namespace quiver::gateway
