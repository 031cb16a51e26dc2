#include "columnar/reduce.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "columnar/jagged.h"
#include "core/strings.h"

namespace quiver::columnar {
namespace {

// Reduces `count` rows of `k` floats starting at `src` into `dst` (k floats). count >= 1.
template <typename Combine>
void Fold(const float* src, int64_t count, size_t k, float* dst, Combine combine) {
  if (k == 1) {  // the common per-object scalar: accumulate in a register
    float acc = src[0];
    for (int64_t r = 1; r < count; ++r) acc = combine(acc, src[r]);
    *dst = acc;
    return;
  }
  std::memcpy(dst, src, k * sizeof(float));
  for (int64_t r = 1; r < count; ++r) {
    const float* row = src + static_cast<size_t>(r) * k;
    for (size_t c = 0; c < k; ++c) dst[c] = combine(dst[c], row[c]);
  }
}

}  // namespace

Result<Tensor> ReduceLists(const Tensor& per_object, std::span<const int64_t> offsets, Reduction op,
                           float empty_fill, std::string name) {
  QUIVER_RETURN_IF_ERROR(ValidateOffsets(offsets, "offsets for " + Quoted(per_object.name)));
  const std::string where = "reducing " + Quoted(per_object.name);
  if (per_object.datatype != DataType::kFp32) {
    return Status::InvalidArgument(where + ": data type " +
                                   std::string(DataTypeName(per_object.datatype)) +
                                   "; expected FP32");
  }
  const int64_t total = ElementCount(per_object.shape);
  const int64_t end = offsets.empty() ? 0 : offsets.back();
  if (per_object.shape.empty() || total < 0 ||
      per_object.data.size() != static_cast<size_t>(total) * sizeof(float)) {
    return Status::InvalidArgument(where + ": shape " + ShapeToString(per_object.shape) +
                                   " does not describe its " +
                                   std::to_string(per_object.data.size()) + " bytes");
  }
  if (per_object.shape[0] < end) {
    return Status::InvalidArgument(where + ": " + std::to_string(per_object.shape[0]) +
                                   " rows but the offsets end at " + std::to_string(end));
  }
  const int64_t n = offsets.empty() ? 0 : static_cast<int64_t>(offsets.size()) - 1;
  Shape shape = per_object.shape;
  shape[0] = n;
  const int64_t k_signed = ElementCount(std::span(shape).subspan(1));
  const size_t k = static_cast<size_t>(k_signed);
  Tensor out{std::move(name), DataType::kFp32, std::move(shape),
             Buffer::Allocate(static_cast<size_t>(n) * k * sizeof(float))};
  const float* src = per_object.data_as<float>();
  float* dst = reinterpret_cast<float*>(out.data.mutable_data());
  if (k == 0) return out;  // [n, 0...]: nothing to compute
  // Max/min skip a NaN operand (as std::fmax/fmin, which do not vectorise).
  for (int64_t i = 0; i < n; ++i) {
    const int64_t count = offsets[i + 1] - offsets[i];
    float* d = dst + static_cast<size_t>(i) * k;
    const float* s = src + static_cast<size_t>(offsets[i]) * k;
    if (count == 0) {
      std::fill(d, d + k, empty_fill);
      continue;
    }
    switch (op) {
      case Reduction::kSum:
        Fold(s, count, k, d, [](float a, float b) { return a + b; });
        break;
      case Reduction::kMean:
        Fold(s, count, k, d, [](float a, float b) { return a + b; });
        for (size_t c = 0; c < k; ++c) d[c] /= static_cast<float>(count);
        break;
      case Reduction::kMax:
        Fold(s, count, k, d, [](float a, float b) { return (b > a || a != a) ? b : a; });
        break;
      case Reduction::kMin:
        Fold(s, count, k, d, [](float a, float b) { return (b < a || a != a) ? b : a; });
        break;
      case Reduction::kFirst:
        std::memcpy(d, s, k * sizeof(float));
        break;
    }
  }
  return out;
}

}  // namespace quiver::columnar
