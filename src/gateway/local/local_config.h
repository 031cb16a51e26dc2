#pragma once
// The `quiver up` sections of facility.yaml (docs/gateway-contract.md): `servers:` (local
// `quiver serve` processes) and `prometheus:`. The file itself is read by
// gateway/config; these parse the nodes it keeps for us.

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <vector>

#include "core/status.h"
#include "gateway/local/server_process.h"

namespace quiver::gateway {

// facility.yaml's `prometheus:`.
struct PrometheusConfig {
  bool enabled = false;
  int port = 9090;  // 0 = ephemeral
};

// `servers:` (absent or null = none). Relative model_repository paths are relative to
// `base` (the file's folder); the repository must be a directory. A server without a name
// is called s<index+1>. INVALID_ARGUMENT naming the key path (`servers[1].models: ...`) for
// unknown keys, wrong types, a missing model_repository, duplicate or unusable names.
Result<std::vector<ServerSpec>> ParseLocalServers(const YAML::Node& servers,
                                                  const std::filesystem::path& base);

// `prometheus:` (absent or null = disabled). INVALID_ARGUMENT naming the key path.
Result<PrometheusConfig> ParsePrometheus(const YAML::Node& prometheus);

}  // namespace quiver::gateway
