#pragma once
// facility.yaml (docs/gateway-contract.md): the gateway's own sections (`gateway:`,
// `upstreams:`) parsed here; `tenants`, `servers`, `prometheus` and `autoscale` kept as
// YAML for their owners' parsers (tenants/, local/, autoscale/), so each section is read
// where it is used. Unknown top-level keys are errors.

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "gateway/router.h"

namespace quiver::gateway {

struct ListenConfig {
  std::string http_address = "127.0.0.1";
  int http_port = 8000;  // 0 = any free port
  std::string grpc_address = "127.0.0.1";
  int grpc_port = 8001;
  std::string metrics_address = "127.0.0.1";
  int metrics_port = 8002;
};

struct FacilityConfig {
  std::filesystem::path file;  // empty when built from flags only
  std::filesystem::path base;  // relative paths in the file are relative to this
  ListenConfig listen;
  RouterOptions router;  // factory, start_poller and wait_for_models are not from YAML
  std::vector<std::string> upstreams;
  YAML::Node tenants, servers, prometheus, autoscale;  // null when absent
};

// `text` is the file's content; `source` names it in errors; `base` is its folder.
Result<FacilityConfig> ParseFacilityConfig(std::string_view text, std::string_view source,
                                           const std::filesystem::path& base);
// Reads and parses `file`; NOT_FOUND when it cannot be read.
Result<FacilityConfig> LoadFacilityConfig(const std::filesystem::path& file);

}  // namespace quiver::gateway
