#include "gateway/gateway_metrics.h"

#include <string>

#include "frontend/metrics_registry.h"

namespace quiver::gateway {
namespace {

using frontend::EscapeLabelValue;

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Sample(std::string& out, std::string_view name, std::string_view labels, uint64_t value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(std::to_string(value)).append("\n");
}

std::string Label(std::string_view key, std::string_view value) {
  return std::string(key) + "=\"" + EscapeLabelValue(value) + "\"";
}

}  // namespace

void RenderGatewayMetrics(const GatewayMetricsSources& sources, std::string& out) {
  if (!sources.router) return;
  const auto load = sources.router->Load();

  Header(out, "quiver_gateway_requests_total", "counter",
         "Requests that ended at the gateway, by model and outcome.");
  for (const auto& m : load) {
    const std::string model = Label("model", m.model);
    Sample(out, "quiver_gateway_requests_total", model + ",outcome=\"success\"", m.succeeded);
    Sample(out, "quiver_gateway_requests_total", model + ",outcome=\"failure\"", m.failed);
    Sample(out, "quiver_gateway_requests_total", model + ",outcome=\"rejected\"", m.rejected);
  }
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*value)(const ModelLoad&);
  };
  static const Family kFamilies[] = {
      {"quiver_gateway_in_flight", "gauge", "Requests of the model at upstreams now.",
       [](const ModelLoad& m) { return m.in_flight; }},
      {"quiver_gateway_waiting", "gauge",
       "Requests of the model waiting now (no replica yet, or capacity short).",
       [](const ModelLoad& m) { return m.waiting; }},
      {"quiver_gateway_queue_duration_us", "counter",
       "Cumulative microseconds requests waited before an upstream took them.",
       [](const ModelLoad& m) { return m.queue_ns_total / 1000; }},
      {"quiver_gateway_ready_replicas", "gauge", "Upstreams with a version of the model READY.",
       [](const ModelLoad& m) { return m.ready_replicas; }},
      {"quiver_gateway_capacity", "gauge",
       "Ready replicas times the per-upstream in-flight limit (0 = unlimited).",
       [](const ModelLoad& m) { return m.capacity; }},
  };
  for (const Family& f : kFamilies) {
    Header(out, f.name, f.type, f.help);
    for (const auto& m : load) Sample(out, f.name, Label("model", m.model), f.value(m));
  }

  if (sources.desired_replicas) {
    Header(out, "quiver_gateway_desired_replicas", "gauge",
           "The autoscaler's last decision for the model.");
    for (const auto& m : load) {
      if (auto desired = sources.desired_replicas(m.model)) {
        Sample(out, "quiver_gateway_desired_replicas", Label("model", m.model), *desired);
      }
    }
  }

  const auto upstreams = sources.router->Upstreams();
  Header(out, "quiver_gateway_upstream_in_flight", "gauge", "Requests at the upstream now.");
  for (const auto& u : upstreams) {
    Sample(out, "quiver_gateway_upstream_in_flight", Label("upstream", u.url), u.in_flight);
  }
  Header(out, "quiver_gateway_upstream_healthy", "gauge",
         "1 when the upstream gets traffic, 0 when ejected, probing or draining.");
  for (const auto& u : upstreams) {
    Sample(out, "quiver_gateway_upstream_healthy", Label("upstream", u.url),
           u.health == "available" && !u.draining ? 1 : 0);
  }
  Header(out, "quiver_gateway_retries_total", "counter",
         "Attempts sent again to another upstream.");
  Sample(out, "quiver_gateway_retries_total", "", sources.router->retries());

  if (sources.more) sources.more(out);
}

}  // namespace quiver::gateway
