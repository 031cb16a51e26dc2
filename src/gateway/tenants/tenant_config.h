#pragma once
// ParseTenants: facility.yaml's `tenants:` list (docs/gateway-contract.md) into
// TenantOptions. Config errors fail fast: INVALID_ARGUMENT naming the key path
// (`tenants[1].rate: expected a number >= 0`), never quoting a token.

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <vector>

#include "core/status.h"
#include "gateway/tenants/tenant_options.h"

namespace quiver::gateway {

// `node` is the value of `tenants:` (absent or null: no tenants, auth off). Each entry has
// `name` and exactly one of `token` / `token_file` (its first line; relative paths are
// relative to `base`, the config file's folder), and optionally `weight` (> 0),
// `max_in_flight`, `rate`, `burst` (>= 0). Unknown keys, duplicate names and duplicate
// tokens are errors.
Result<std::vector<TenantOptions>> ParseTenants(const YAML::Node& node,
                                                const std::filesystem::path& base);

}  // namespace quiver::gateway
