#pragma once
// The gateway's own Prometheus families (docs/gateway-contract.md), appended to the
// Triton-compatible ones the MetricsRegistry renders from the Router's merged statistics.
// Per model, not per server, so that an autoscaler's signal is not diluted by idle models
// and still exists for a model with zero replicas.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/router.h"

namespace quiver::gateway {

struct GatewayMetricsSources {
  const Router* router = nullptr;
  // The autoscaler's last decision for a model (quiver_gateway_desired_replicas); unset or
  // nullopt: no sample.
  std::function<std::optional<size_t>(std::string_view model)> desired_replicas;
  // More families (tenants' own), appended last.
  std::function<void(std::string& out)> more;
};

void RenderGatewayMetrics(const GatewayMetricsSources& sources, std::string& out);

}  // namespace quiver::gateway
