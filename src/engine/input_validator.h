#pragma once
// Validation of an inference request against a model's configuration, before any
// backend runs (the error policy: untrusted input gets a clear INVALID_ARGUMENT).

#include <string_view>

#include "service/inference_service.h"

namespace quiver::engine {

// Checks inputs (names, presence, datatype, rank, dims, batch size <= max_batch_size,
// byte size = element count x type size, BYTES framing) and requested output names.
// Returns the request's batch size (dim 0), or 0 when the model has no batch dimension.
// Every error is INVALID_ARGUMENT and names the model, version, tensor, what came and
// what was expected.
Result<int64_t> ValidateInferRequest(const ModelConfig& config, std::string_view version,
                                     const InferRequest& request);

}  // namespace quiver::engine
