#pragma once
// ReplicaProvider: what the autoscaler acts through. `local` starts and stops
// `quiver serve` processes on this machine (each serving the model); on Kubernetes the
// scaling is done by KEDA or an HPA from the gateway's metrics (deploy/), so there is no
// in-process provider there.

#include <cstddef>
#include <string_view>

#include "core/status.h"

namespace quiver::gateway {

class ReplicaProvider {
 public:
  virtual ~ReplicaProvider() = default;
  // Replicas of `model` that are starting or running.
  virtual size_t Replicas(std::string_view model) const = 0;
  // Starts or stops replicas so that `model` will have `n`. Returns at once; progress shows
  // in Replicas() and, once a replica is ready, in the gateway's placement.
  virtual Status ScaleTo(std::string_view model, size_t n) = 0;
};

}  // namespace quiver::gateway
