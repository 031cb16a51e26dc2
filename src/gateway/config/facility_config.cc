#include "gateway/config/facility_config.h"

#include <fstream>
#include <sstream>

#include "gateway/config/yaml_fields.h"

namespace quiver::gateway {
namespace {

using namespace yaml;

Status ParseOutlier(const YAML::Node& node, std::string_view path, OutlierOptions& o) {
  if (Status s = CheckMap(
          node, path,
          {"consecutive_failures", "latency_factor", "min_samples", "min_peers", "latency_floor_ms",
           "base_ejection_ms", "max_ejection_ms", "max_ejected_fraction"});
      !s.ok())
    return s;
  if (!node) return Status::Ok();
  for (Status s : {ReadCount(node, "consecutive_failures", path, o.consecutive_failures),
                   ReadNumber(node, "latency_factor", path, 0, o.latency_factor),
                   ReadCount(node, "min_samples", path, o.min_samples),
                   ReadCount(node, "min_peers", path, o.min_peers),
                   ReadMillis(node, "latency_floor_ms", path, o.latency_floor),
                   ReadMillis(node, "base_ejection_ms", path, o.base_ejection),
                   ReadMillis(node, "max_ejection_ms", path, o.max_ejection),
                   ReadNumber(node, "max_ejected_fraction", path, 0, o.max_ejected_fraction)}) {
    if (!s.ok()) return s;
  }
  if (o.max_ejected_fraction > 1) {
    return Status::InvalidArgument(Join(path, "max_ejected_fraction") + ": expected 0..1");
  }
  return Status::Ok();
}

Status ParseRetryBudget(const YAML::Node& node, std::string_view path, RetryBudgetOptions& o) {
  if (Status s = CheckMap(node, path, {"budget_fraction", "min_retry_concurrency"}); !s.ok())
    return s;
  if (!node) return Status::Ok();
  if (Status s = ReadNumber(node, "budget_fraction", path, 0, o.budget_fraction); !s.ok()) return s;
  return ReadCount(node, "min_retry_concurrency", path, o.min_retry_concurrency);
}

Status ParseGateway(const YAML::Node& node, FacilityConfig& c) {
  const std::string path = "gateway";
  if (Status s =
          CheckMap(node, path,
                   {"http_address", "http_port", "grpc_address", "grpc_port", "metrics_address",
                    "metrics_port", "balancer", "poll_interval_ms", "stale_after_ms",
                    "upstream_max_in_flight", "max_loaded_models_per_upstream", "load_wait_ms",
                    "drain_timeout_ms", "upstream_timeout_ms", "upstream_connections", "outlier",
                    "retry_budget"});
      !s.ok())
    return s;
  if (!node) return Status::Ok();
  ListenConfig& l = c.listen;
  RouterOptions& r = c.router;
  for (Status s :
       {ReadString(node, "http_address", path, l.http_address),
        ReadPort(node, "http_port", path, l.http_port),
        ReadString(node, "grpc_address", path, l.grpc_address),
        ReadPort(node, "grpc_port", path, l.grpc_port),
        ReadString(node, "metrics_address", path, l.metrics_address),
        ReadPort(node, "metrics_port", path, l.metrics_port),
        ReadString(node, "balancer", path, r.balancer),
        ReadMillis(node, "poll_interval_ms", path, r.poll_interval),
        ReadMillis(node, "stale_after_ms", path, r.placement.stale_after),
        ReadCount(node, "upstream_max_in_flight", path, r.upstream_max_in_flight),
        ReadCount(node, "max_loaded_models_per_upstream", path, r.max_loaded_models_per_upstream),
        ReadMillis(node, "load_wait_ms", path, r.load_wait),
        ReadMillis(node, "drain_timeout_ms", path, r.drain_timeout),
        ReadMillis(node, "upstream_timeout_ms", path, r.upstream_timeout),
        ReadCount(node, "upstream_connections", path, r.upstream_connections),
        ParseOutlier(node["outlier"], Join(path, "outlier"), r.outlier),
        ParseRetryBudget(node["retry_budget"], Join(path, "retry_budget"), r.retry_budget)}) {
    if (!s.ok()) return s;
  }
  if (r.poll_interval <= Clock::Duration::zero()) {
    return Status::InvalidArgument("gateway.poll_interval_ms: expected a number > 0");
  }
  if (r.upstream_connections == 0) {
    return Status::InvalidArgument("gateway.upstream_connections: expected a number > 0");
  }
  return Status::Ok();
}

Status ParseUpstreams(const YAML::Node& node, FacilityConfig& c) {
  if (!node || node.IsNull()) return Status::Ok();
  if (!node.IsSequence()) {
    return Status::InvalidArgument("upstreams: expected a list of {url: ...}");
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string path = "upstreams[" + std::to_string(i) + "]";
    if (node[i].IsScalar()) {  // a bare URL is accepted too
      c.upstreams.push_back(node[i].as<std::string>());
      continue;
    }
    if (Status s = CheckMap(node[i], path, {"url"}); !s.ok()) return s;
    std::string url;
    if (Status s = ReadString(node[i], "url", path, url); !s.ok()) return s;
    if (url.empty()) return Status::InvalidArgument(path + ".url: required");
    c.upstreams.push_back(std::move(url));
  }
  return Status::Ok();
}

}  // namespace

Result<FacilityConfig> ParseFacilityConfig(std::string_view text, std::string_view source,
                                           const std::filesystem::path& base) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string(source) + ": not valid YAML: " + e.what());
  }
  FacilityConfig c;
  c.base = base;
  Status s =
      CheckMap(root, "", {"gateway", "upstreams", "tenants", "servers", "prometheus", "autoscale"});
  if (s.ok() && root && !root.IsNull()) {
    s = ParseGateway(root["gateway"], c);
    if (s.ok()) s = ParseUpstreams(root["upstreams"], c);
    c.tenants = root["tenants"];
    c.servers = root["servers"];
    c.prometheus = root["prometheus"];
    c.autoscale = root["autoscale"];
  }
  if (!s.ok()) return s.WithContext(source);
  return c;
}

Result<FacilityConfig> LoadFacilityConfig(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return Status::NotFound("cannot read the facility file " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = ParseFacilityConfig(text.str(), file.string(), file.parent_path());
  if (parsed.ok()) parsed->file = file;
  return parsed;
}

}  // namespace quiver::gateway
