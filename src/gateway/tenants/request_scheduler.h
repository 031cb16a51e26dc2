#pragma once
// RequestScheduler: the Router's admission seam. Every inference request passes through it
// before an upstream is chosen; the tenants implementation (per-tenant rate and in-flight
// limits, weighted fair queueing when upstream capacity is short) lives behind it, so the
// Router knows nothing of tenants. Without tenants the Router uses a pass-through.

#include <cstddef>
#include <functional>
#include <string_view>

#include "core/status.h"

namespace quiver::gateway {

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
};

}  // namespace quiver::gateway
