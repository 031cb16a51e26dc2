#pragma once
// Balancer: chooses, per request, which of the upstreams able to serve it gets it. The
// Router passes only eligible candidates (model version READY there, not ejected, not
// already tried by this request); the balancer only weighs load. Implementations live in one
// folder each (balancer/p2c/, ...), opening with why their policy works.
//
// Contract: Choose counts the request as started on the upstream it returns, in the same
// step (so concurrent Choose calls see each other's picks); the caller calls Done exactly
// once for every successful Choose, with the same upstream and model, when the request
// ends (answered, failed or cancelled). Thread-safe: every method may be called
// concurrently from any thread.

#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quiver::gateway {

class Balancer {
 public:
  virtual ~Balancer() = default;
  // One of `candidates` for a request of `model`; UNAVAILABLE naming the model when
  // `candidates` is empty. Never returns an upstream outside `candidates`.
  virtual Result<std::string> Choose(std::string_view model,
                                     std::span<const std::string> candidates) = 0;
  // The request Choose sent to `upstream` for `model` has ended.
  virtual void Done(std::string_view upstream, std::string_view model) = 0;
  // Requests in flight on `upstream` for `model` ("" = over all its models).
  virtual size_t InFlight(std::string_view upstream, std::string_view model) const = 0;
  // `upstream` has left the pool: its state goes once its last request is Done.
  virtual void Forget(std::string_view upstream) = 0;
};

}  // namespace quiver::gateway
