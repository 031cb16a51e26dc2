#include "gateway/tenants/tenant_metrics.h"

#include <string_view>

namespace quiver::gateway {
namespace {

// Prometheus label-value escaping: backslash, double quote and newline.
std::string TenantLabel(std::string_view tenant) {
  std::string out = "tenant=\"";
  for (char c : tenant) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Sample(std::string& out, std::string_view name, const std::string& labels, uint64_t value) {
  out.append(name).append("{").append(labels).append("} ").append(std::to_string(value));
  out.append("\n");
}

}  // namespace

void RenderTenantMetrics(const std::vector<TenantStats>& stats, uint64_t unauthenticated,
                         std::string& out) {
  if (stats.empty() && unauthenticated == 0) return;
  constexpr std::string_view kRequests = "quiver_gateway_tenant_requests_total";
  Header(out, kRequests, "counter", "Inference requests per tenant, by admission outcome.");
  bool anonymous_seen = false;
  for (const auto& s : stats) {
    const std::string tenant = TenantLabel(s.tenant);
    Sample(out, kRequests, tenant + ",outcome=\"admitted\"", s.admitted);
    Sample(out, kRequests, tenant + ",outcome=\"rate_limited\"", s.rate_limited);
    Sample(out, kRequests, tenant + ",outcome=\"in_flight_limited\"", s.in_flight_limited);
    Sample(out, kRequests, tenant + ",outcome=\"queue_full\"", s.queue_rejected);
    if (s.tenant.empty()) {
      anonymous_seen = true;
      Sample(out, kRequests, tenant + ",outcome=\"unauthenticated\"", unauthenticated);
    }
  }
  if (!anonymous_seen) {
    Sample(out, kRequests, TenantLabel("") + ",outcome=\"unauthenticated\"", unauthenticated);
  }
  constexpr std::string_view kInFlight = "quiver_gateway_tenant_in_flight";
  Header(out, kInFlight, "gauge", "Requests of the tenant at upstreams now.");
  for (const auto& s : stats) Sample(out, kInFlight, TenantLabel(s.tenant), s.in_flight);
  constexpr std::string_view kQueued = "quiver_gateway_tenant_queued";
  Header(out, kQueued, "gauge", "Requests of the tenant waiting for upstream capacity now.");
  for (const auto& s : stats) Sample(out, kQueued, TenantLabel(s.tenant), s.queued);
}

}  // namespace quiver::gateway
