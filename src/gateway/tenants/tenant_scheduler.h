#pragma once
// TenantScheduler: the tenants' RequestScheduler. Admission per tenant (max_in_flight, then
// a token-bucket rate), and, when the upstreams' capacity is short, weighted fair queueing.
//
// Why WFQ: with one FIFO queue a tenant's share of a saturated pool is its share of the
// arrivals, so a tenant sending 10x more gets 10x more and a polite one is starved. Here
// each tenant queues apart, and each queued request gets a virtual finish time
//   finish = max(V, tenant's previous finish) + 1 / weight
// where V is the finish time of the request started last (self-clocked fair queueing,
// Golestani 1994). Requests start in increasing finish time, so every backlogged tenant is
// served in proportion to its weight however fast it sends; the max() keeps an idle tenant
// from banking credit, and a tenant sending less than its share never waits behind a
// greedy one for more than one turn. The greedy tenant's excess fills its own bounded
// queue and is refused there.
//
// Thread-safe: one mutex, held for a few counter updates and an O(tenants) scan per queued
// start; never held while `start`/`reject` run. Callbacks that call back into the scheduler
// on the same thread (a start that fails at once and calls Finished) are run by the
// outermost call in a loop, not recursively, so the stack stays flat; their own effects
// (a nested Submit's start) therefore happen after the current callback returns.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "gateway/tenants/request_scheduler.h"
#include "gateway/tenants/tenant_options.h"
#include "gateway/tenants/token_bucket.h"

namespace quiver::gateway {

struct TenantSchedulerOptions {
  // Requests one tenant may have waiting for capacity; more are refused ("queue full").
  size_t max_queued_per_tenant = 1024;
};

class TenantScheduler final : public RequestScheduler {
 public:
  // A tenant name not in `tenants` (auth off: "") is served as a tenant of weight 1 with no
  // limits, created on first use.
  TenantScheduler(const std::vector<TenantOptions>& tenants, std::shared_ptr<Clock> clock,
                  TenantSchedulerOptions options = {});

  void Submit(std::string_view tenant, std::string_view model, std::function<void()> start,
              std::function<void(Status)> reject) override;
  void Finished(std::string_view tenant) override;
  void SetCapacity(size_t max_in_flight) override;
  void RejectAll(const Status& status) override;
  std::vector<TenantStats> Stats() const override;

 private:
  struct Pending {
    std::function<void()> start;
    std::function<void(Status)> reject;
    double finish;  // virtual finish time
    uint64_t seq;   // arrival order, breaks ties between equal finish times
    Clock::TimePoint enqueued;
  };
  struct Tenant {
    Tenant(const TenantOptions& o, Clock::TimePoint now);
    double weight;
    size_t max_in_flight;
    TokenBucket bucket;
    std::deque<Pending> queue;
    double last_finish = 0;
    size_t in_flight = 0;
    TenantStats stats;  // counters; in_flight and queued are filled in by Stats()
  };
  using Actions = std::vector<std::function<void()>>;

  Tenant& TenantLocked(std::string_view name);  // requires mutex_
  void DispatchLocked(Actions& out);            // requires mutex_
  // Runs callbacks outside the lock; flattens re-entrant calls on this thread.
  void Run(Actions actions);

  const std::shared_ptr<Clock> clock_;
  const TenantSchedulerOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Tenant, std::less<>> tenants_;  // guarded by mutex_
  size_t capacity_ = 0;                                 // guarded by mutex_; 0 = unbounded
  size_t in_flight_ = 0;                                // guarded by mutex_
  size_t queued_ = 0;                                   // guarded by mutex_
  double virtual_time_ = 0;                             // guarded by mutex_
  uint64_t seq_ = 0;                                    // guarded by mutex_
};

// The tenants' scheduler (docs/tenants.md). `clock` drives the token buckets and queue times.
std::unique_ptr<RequestScheduler> MakeTenantScheduler(
    std::vector<TenantOptions> tenants, std::shared_ptr<Clock> clock = Clock::System(),
    TenantSchedulerOptions options = {});

// Admits everything at once: no limits, no queue, capacity ignored (auth off, no tenants).
std::unique_ptr<RequestScheduler> MakePassThroughScheduler();

}  // namespace quiver::gateway
