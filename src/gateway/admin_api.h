#pragma once
// The gateway's admin API, transport-free: the HTTP frontend hands it requests under
// /v2/gateway/ (after authentication) and sends back what it returns.
//   GET    /v2/gateway/upstreams                  -> {"upstreams": [{url, health, draining,
//                                                     stale, in_flight, ready_models}]}
//   POST   /v2/gateway/upstreams  {"url": U}      -> adds U (400 bad URL, 400 exists)
//   DELETE /v2/gateway/upstreams?url=U            -> drains and removes U (404 unknown)
//   GET    /v2/gateway/models                     -> {"models": [ModelLoad as JSON]}
//   POST   /v2/gateway/models/<model>/rollout     -> {"model": m, "steps": ["url: ..."]}
// Errors: {"error": message} with the status of the error's kind.

#include <string>
#include <string_view>

#include "gateway/router.h"

namespace quiver::gateway {

inline constexpr std::string_view kAdminPrefix = "/v2/gateway/";

struct AdminReply {
  int status = 200;
  std::string json;
};

// `method` is "GET", "POST" or "DELETE"; `target` the request target (path and query).
// Blocks while an upstream drains or a rollout runs: call it off the I/O threads.
AdminReply HandleAdmin(Router& router, std::string_view method, std::string_view target,
                       std::string_view body);

}  // namespace quiver::gateway
