#pragma once
// facility.yaml's `autoscale:` section (docs/gateway-contract.md), parsed into the
// controller's options. Every key is optional; unknown keys and wrong types are errors.

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"
#include "gateway/autoscale/autoscale_controller.h"
#include "gateway/autoscale/autoscale_policy.h"

namespace YAML {
class Node;
}

namespace quiver::gateway {

// Who acts on the decisions: nobody, `quiver up`'s local server pool, or Kubernetes
// (KEDA / HPA from deploy/k8s/, the controller at most advisory).
enum class AutoscaleProviderKind { kNone, kLocal, kKubernetes };
std::string_view AutoscaleProviderName(AutoscaleProviderKind kind);

struct AutoscaleConfig {
  AutoscaleProviderKind provider = AutoscaleProviderKind::kNone;
  Clock::Duration interval = std::chrono::milliseconds(5000);  // interval_ms
  // Where the local provider's replicas load models from; relative paths are resolved
  // against `base`. Empty when not given (then required for provider local).
  std::filesystem::path model_repository;
  std::map<std::string, AutoscaleOptions, std::less<>> models;

  // The controller's options from this config.
  AutoscaleControllerOptions ControllerOptions() const { return {interval, models}; }
};

// Parses `node` (the value of `autoscale:`; undefined or null = all defaults). `base` is
// the folder of the file, for relative paths. INVALID_ARGUMENT names the key path, e.g.
// "autoscale.models.emj_gnn.max_replicas: expected an integer >= 1".
Result<AutoscaleConfig> ParseAutoscaleConfig(const YAML::Node& node,
                                             const std::filesystem::path& base);

}  // namespace quiver::gateway
