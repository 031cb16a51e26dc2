#pragma once
// RequestScheduler: the Router's admission seam. Every inference request passes through it
// before an upstream is chosen; the tenants implementation (per-tenant rate and in-flight
// limits, weighted fair queueing when upstream capacity is short) lives behind it, so the
// Router knows nothing of tenants. Without tenants the Router uses a pass-through.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace quiver::gateway {

// One tenant's counters, for the per-tenant metrics (quiver_gateway_tenant_*).
struct TenantStats {
  std::string tenant;
  uint64_t admitted = 0;           // accepted by Submit (started now or queued)
  uint64_t rate_limited = 0;       // rejected: over the token-bucket rate
  uint64_t in_flight_limited = 0;  // rejected: at max_in_flight
  uint64_t queue_rejected = 0;     // rejected: its queue was full
  size_t in_flight = 0;            // started and not finished, now
  size_t queued = 0;               // admitted and waiting for capacity, now
  uint64_t queue_ns_total = 0;     // summed wait of the requests started after queueing
};

class RequestScheduler {
 public:
  virtual ~RequestScheduler() = default;

  // One request of `tenant` ("" = anonymous) for `model`. Exactly one of `start` and
  // `reject` is called, exactly once: `start` when the request may go to an upstream (now,
  // inline, or later from the thread that calls Finished or SetCapacity); `reject` with
  // TOO_MANY_REQUESTS (over the tenant's rate or in-flight limit, or its queue is full)
  // naming the tenant and the limit. Neither is called while a lock of the scheduler is held.
  virtual void Submit(std::string_view tenant, std::string_view model,
                      std::function<void()> start, std::function<void(Status)> reject) = 0;
  // The request started by `start` has ended (once per `start`): frees its capacity.
  virtual void Finished(std::string_view tenant) = 0;
  // Requests the upstreams can take at once (healthy upstreams x per-upstream limit);
  // 0 = unbounded. Raising it may start queued requests on the calling thread.
  virtual void SetCapacity(size_t max_in_flight) = 0;
  // Fails every queued request with `status` (shutdown).
  virtual void RejectAll(const Status& status) = 0;
  // Per-tenant counters, one entry per tenant seen or configured; empty when the
  // implementation keeps none (pass-through). Thread-safe.
  virtual std::vector<TenantStats> Stats() const { return {}; }
};

}  // namespace quiver::gateway
