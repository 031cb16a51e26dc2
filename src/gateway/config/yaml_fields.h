#pragma once
// Reading facility.yaml's sections strictly: every error names the key path
// ("gateway.outlier.latency_factor: expected a number >= 0") and unknown keys are errors,
// because a misspelt option silently ignored is a facility misconfigured.

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace quiver::gateway::yaml {

// "parent.key" (or "key" at the top).
std::string Join(std::string_view parent, std::string_view key);
// `node` must be a map (or null/absent: fine) whose keys are all in `allowed`.
Status CheckMap(const YAML::Node& node, std::string_view path,
                std::initializer_list<std::string_view> allowed);

// Each reads `node[key]` into `out` when present (leaving the default otherwise).
Status ReadString(const YAML::Node& node, std::string_view key, std::string_view path,
                  std::string& out);
Status ReadBool(const YAML::Node& node, std::string_view key, std::string_view path, bool& out);
Status ReadNumber(const YAML::Node& node, std::string_view key, std::string_view path, double min,
                  double& out);
Status ReadCount(const YAML::Node& node, std::string_view key, std::string_view path, size_t& out);
Status ReadPort(const YAML::Node& node, std::string_view key, std::string_view path, int& out);
// Milliseconds (`..._ms` keys) into a duration.
template <typename Duration>
Status ReadMillis(const YAML::Node& node, std::string_view key, std::string_view path,
                  Duration& out) {
  double ms = std::chrono::duration<double, std::milli>(out).count();
  if (Status s = ReadNumber(node, key, path, 0, ms); !s.ok()) return s;
  out = std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(ms));
  return Status::Ok();
}
Status ReadStrings(const YAML::Node& node, std::string_view key, std::string_view path,
                   std::vector<std::string>& out);

}  // namespace quiver::gateway::yaml
