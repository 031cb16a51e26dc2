#include "gateway/autoscale/autoscale_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace quiver::gateway {
namespace {

Status Invalid(const std::string& path, std::string_view what) {
  return Status::InvalidArgument(path + ": " + std::string(what));
}

// Every key of map `node` must be one of `allowed`.
Status CheckKeys(const YAML::Node& node, const std::string& path,
                 std::initializer_list<std::string_view> allowed) {
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) return Invalid(path + "." + key, "unknown key");
  }
  return Status::Ok();
}

Status ReadInt(const YAML::Node& node, const std::string& path, int64_t min, int64_t& out) {
  int64_t v = 0;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, v) || v < min) {
    return Invalid(path, "expected an integer >= " + std::to_string(min));
  }
  out = v;
  return Status::Ok();
}

Status ReadNumber(const YAML::Node& node, const std::string& path, double min, double max,
                  std::string_view range, double& out) {
  double v = 0;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, v) || !std::isfinite(v) || v < min ||
      v > max) {
    return Invalid(path, "expected a number " + std::string(range));
  }
  out = v;
  return Status::Ok();
}

Status ReadSeconds(const YAML::Node& node, const std::string& path, Clock::Duration& out) {
  double s = 0;
  QUIVER_RETURN_IF_ERROR(ReadNumber(node, path, 0, 1e7, ">= 0 (seconds)", s));
  out = std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(s));
  return Status::Ok();
}

Result<AutoscaleOptions> ParseModel(const YAML::Node& node, const std::string& path) {
  AutoscaleOptions o;
  if (node.IsNull()) return o;
  if (!node.IsMap()) return Invalid(path, "expected a map of autoscaling options");
  QUIVER_RETURN_IF_ERROR(
      CheckKeys(node, path,
                {"min_replicas", "max_replicas", "target_queue_ms", "target_utilisation",
                 "scale_up_window_s", "scale_down_window_s", "cooldown_s"}));
  int64_t n = 0;
  if (node["min_replicas"]) {
    QUIVER_RETURN_IF_ERROR(ReadInt(node["min_replicas"], path + ".min_replicas", 0, n));
    o.min_replicas = static_cast<size_t>(n);
  }
  if (node["max_replicas"]) {
    QUIVER_RETURN_IF_ERROR(ReadInt(node["max_replicas"], path + ".max_replicas", 1, n));
    o.max_replicas = static_cast<size_t>(n);
  }
  if (o.min_replicas > o.max_replicas) {
    return Invalid(path + ".min_replicas",
                   "must be <= max_replicas (" + std::to_string(o.max_replicas) + ")");
  }
  if (node["target_queue_ms"]) {
    QUIVER_RETURN_IF_ERROR(ReadNumber(node["target_queue_ms"], path + ".target_queue_ms", 0, 1e9,
                                      ">= 0", o.target_queue_ms));
  }
  if (node["target_utilisation"]) {
    QUIVER_RETURN_IF_ERROR(ReadNumber(node["target_utilisation"], path + ".target_utilisation", 0,
                                      1, "in [0, 1]", o.target_utilisation));
  }
  if (o.target_queue_ms == 0 && o.target_utilisation == 0) {
    return Invalid(path, "target_queue_ms and target_utilisation are both 0 (no signal)");
  }
  if (node["scale_up_window_s"]) {
    QUIVER_RETURN_IF_ERROR(
        ReadSeconds(node["scale_up_window_s"], path + ".scale_up_window_s", o.scale_up_window));
  }
  if (node["scale_down_window_s"]) {
    QUIVER_RETURN_IF_ERROR(ReadSeconds(node["scale_down_window_s"], path + ".scale_down_window_s",
                                       o.scale_down_window));
  }
  if (node["cooldown_s"]) {
    QUIVER_RETURN_IF_ERROR(ReadSeconds(node["cooldown_s"], path + ".cooldown_s", o.cooldown));
  }
  return o;
}

}  // namespace

std::string_view AutoscaleProviderName(AutoscaleProviderKind kind) {
  switch (kind) {
    case AutoscaleProviderKind::kNone:
      return "none";
    case AutoscaleProviderKind::kLocal:
      return "local";
    case AutoscaleProviderKind::kKubernetes:
      return "kubernetes";
  }
  return "none";
}

Result<AutoscaleConfig> ParseAutoscaleConfig(const YAML::Node& node,
                                             const std::filesystem::path& base) {
  AutoscaleConfig config;
  const std::string path = "autoscale";
  if (!node.IsDefined() || node.IsNull()) return config;
  if (!node.IsMap()) return Invalid(path, "expected a map");
  QUIVER_RETURN_IF_ERROR(
      CheckKeys(node, path, {"provider", "interval_ms", "model_repository", "models"}));

  if (const YAML::Node p = node["provider"]) {
    const std::string name = p.IsScalar() ? p.Scalar() : "";
    if (name == "none") {
      config.provider = AutoscaleProviderKind::kNone;
    } else if (name == "local") {
      config.provider = AutoscaleProviderKind::kLocal;
    } else if (name == "kubernetes") {
      config.provider = AutoscaleProviderKind::kKubernetes;
    } else {
      return Invalid(path + ".provider", "expected none, local or kubernetes");
    }
  }
  if (const YAML::Node i = node["interval_ms"]) {
    int64_t ms = 0;
    QUIVER_RETURN_IF_ERROR(ReadInt(i, path + ".interval_ms", 1, ms));
    config.interval = std::chrono::milliseconds(ms);
  }
  if (const YAML::Node r = node["model_repository"]) {
    if (!r.IsScalar() || r.Scalar().empty()) {
      return Invalid(path + ".model_repository", "expected a path");
    }
    std::filesystem::path repo(r.Scalar());
    config.model_repository = repo.is_absolute() ? repo : (base / repo).lexically_normal();
  }
  if (const YAML::Node models = node["models"]; models && !models.IsNull()) {
    if (!models.IsMap()) return Invalid(path + ".models", "expected a map of model names");
    for (const auto& kv : models) {
      const std::string name = kv.first.Scalar();
      if (name.empty()) return Invalid(path + ".models", "empty model name");
      Result<AutoscaleOptions> o = ParseModel(kv.second, path + ".models." + name);
      if (!o.ok()) return o.status();
      if (!config.models.emplace(name, *o).second) {
        return Invalid(path + ".models." + name, "duplicate model");
      }
    }
  }
  if (config.provider == AutoscaleProviderKind::kLocal && config.model_repository.empty()) {
    return Invalid(path + ".model_repository", "required when provider is local");
  }
  return config;
}

}  // namespace quiver::gateway
