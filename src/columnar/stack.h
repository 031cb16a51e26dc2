#pragma once
// Flat per-object features: F columns of n values -> one [n, F] FP32 tensor.

#include <span>
#include <string>

#include "columnar/jagged.h"
#include "core/tensor.h"

namespace quiver::columnar {

// Row r of the result is (fields[0][r], ..., fields[F-1][r]): for per-object models (one
// row per jet). Pass the content arrays of an events -> objects collection and the rows
// are aligned with it (see jagged.h). INVALID_ARGUMENT when `fields` is empty or the
// fields differ in length (naming the field). The result owns fresh memory.
Result<Tensor> StackColumns(std::span<const FieldView> fields, std::string name = "values");

}  // namespace quiver::columnar
