#pragma once
// One tenant of the gateway, as configured in facility.yaml's `tenants:` list
// (docs/gateway-contract.md). Plain data; parsed by gateway/config.

#include <cstddef>
#include <string>

namespace quiver::gateway {

struct TenantOptions {
  std::string name;
  // The bearer token. Never logged; compared in constant time.
  std::string token;
  double weight = 1.0;         // share of upstream capacity when it is short (WFQ)
  size_t max_in_flight = 0;    // requests admitted and not finished; 0 = no limit
  double rate = 0;             // sustained requests per second (token bucket); 0 = no limit
  double burst = 0;            // bucket size in requests; 0 = max(1, rate)
};

}  // namespace quiver::gateway
