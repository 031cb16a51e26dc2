#pragma once
// The registry of balancing policies: the configuration names one (`balancer: p2c`), the
// Router asks here. Adding a policy = its folder under balancer/ plus one line in
// make_balancer.cc.

#include <memory>
#include <string_view>

#include "core/status.h"
#include "gateway/balancer/balancer.h"

namespace quiver::gateway {

// "p2c" (alias "least_request", Envoy's name for it); "" means "p2c". INVALID_ARGUMENT
// naming the policy and the known ones otherwise.
Result<std::unique_ptr<Balancer>> MakeBalancer(std::string_view policy);

}  // namespace quiver::gateway
