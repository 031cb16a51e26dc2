#include "gateway/balancer/make_balancer.h"

#include <string>

#include "gateway/balancer/p2c/p2c_balancer.h"

namespace quiver::gateway {

Result<std::unique_ptr<Balancer>> MakeBalancer(std::string_view policy) {
  if (policy.empty() || policy == "p2c" || policy == "least_request") {
    return std::unique_ptr<Balancer>(std::make_unique<P2cBalancer>());
  }
  return Status::InvalidArgument("unknown balancer policy '" + std::string(policy) +
                                 "' (known: p2c, least_request)");
}

}  // namespace quiver::gateway
