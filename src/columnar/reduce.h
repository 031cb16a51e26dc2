#pragma once
// Per-object values -> one value per event (or per any list), via the lists' offsets.

#include <cstdint>
#include <span>
#include <string>

#include "core/tensor.h"

namespace quiver::columnar {

enum class Reduction : uint8_t {
  kSum,
  kMean,
  kMax,    // NaN inputs are skipped unless every value is NaN
  kMin,    // likewise
  kFirst,  // the list's first row (e.g. the leading jet, when sorted)
};

// `per_object` is FP32 [rows] or [rows, K...] with rows aligned with the content of the
// lists given by `offsets` (see jagged.h; rows >= offsets[n]). Returns FP32 [n, K...]:
// row i reduces rows [offsets[i], offsets[i+1]) element-wise; an empty list gets
// `empty_fill`. INVALID_ARGUMENT for bad offsets, type or shape. Thread-safe.
Result<Tensor> ReduceLists(const Tensor& per_object, std::span<const int64_t> offsets, Reduction op,
                           float empty_fill, std::string name = "values");

}  // namespace quiver::columnar
