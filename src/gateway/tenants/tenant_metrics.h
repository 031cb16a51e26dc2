#pragma once
// The tenants' Prometheus families (docs/gateway-contract.md), rendered from
// RequestScheduler::Stats() and TenantRegistry::unauthenticated(); the gateway appends them
// to its metrics page (GatewayMetricsSources::more).

#include <cstdint>
#include <string>
#include <vector>

#include "gateway/tenants/request_scheduler.h"

namespace quiver::gateway {

// Appends quiver_gateway_tenant_requests_total{tenant,outcome},
// quiver_gateway_tenant_in_flight{tenant} and quiver_gateway_tenant_queued{tenant} to `out`
// in Prometheus text format. `unauthenticated` is sampled with tenant "" (who sent a bad
// token is unknown). Nothing is appended when there are no stats and no unauthenticated
// requests (pass-through, auth off).
void RenderTenantMetrics(const std::vector<TenantStats>& stats, uint64_t unauthenticated,
                         std::string& out);

}  // namespace quiver::gateway
