#pragma once
// The local replicas of a gateway (`quiver up`'s servers, the autoscaler's `local`
// provider): a ServerPool whose servers become the Router's upstreams when ready and are
// drained from it before they stop or when they die.

#include <functional>
#include <memory>

#include "gateway/local/server_pool.h"
#include "gateway/router.h"

namespace quiver::cli {

// A server pool whose servers are `router`'s upstreams: added once ready, removed (drained)
// before a scale-down stops one or after one dies; `on_change` (optional) runs after each.
// `quiver up`'s pool, and the autoscaler's `local` provider for `quiver gateway` (with
// options.model_repository = autoscale.model_repository). The callbacks of `options` are
// replaced. The router must outlive the pool's StopAll.
std::shared_ptr<gateway::ServerPool> MakeUpstreamServerPool(gateway::Router& router,
                                                            gateway::ServerPoolOptions options,
                                                            std::function<void()> on_change = {});

}  // namespace quiver::cli
