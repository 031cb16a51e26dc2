#pragma once
// IdentityBackend ("identity"): output i of the config is input i of the config, returned
// zero-copy. It has no model file and does no work, so it measures the server around it.

#include <memory>

#include "engine/backend.h"

namespace quiver::engine {

// Pairs config outputs with config inputs by position. Stateless and thread-safe.
class IdentityBackend final : public Backend {
 public:
  // INVALID_ARGUMENT unless the config has as many outputs as inputs and each output has
  // the data_type of the input at the same position.
  Status ValidateConfig(const ModelConfig& config) const override;
  // An instance that shares each input's Buffer with the matching output. Errors as
  // ValidateConfig. Works for every data type, BYTES included, and on any device kind
  // (the data never leaves host memory).
  Result<std::unique_ptr<BackendInstance>> CreateInstance(
      const InstanceContext& context) const override;
};

}  // namespace quiver::engine
