#pragma once
// The tensors of a batch (internal to the scheduler): requests' inputs joined along the
// batch dimension, and the batch's outputs split back into per-request views.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "service/types.h"

namespace quiver::engine {

// The input of `request` named `name`; `hint` is where it usually is. Null if absent.
const Tensor* FindInput(const InferRequest& request, const std::string& name, size_t hint);

// Concatenates each input of the batch along dim 0 into one new buffer; `total` is the
// sum of the requests' batch sizes. The first request's inputs give names and order.
Status ConcatInputs(std::span<const InferRequest* const> requests, int64_t total,
                    std::vector<Tensor>& merged);

// Splits each output along dim 0 into per-request views of the same buffer (`sizes`: the
// requests' batch sizes, in order); fails on an output whose size does not match its shape.
Status SplitOutputs(std::vector<Tensor>& outputs, std::span<const int64_t> sizes,
                    std::vector<std::vector<Tensor>>& per_request);

}  // namespace quiver::engine
