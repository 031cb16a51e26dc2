#include "columnar/stack.h"

#include <cstring>

#include "core/strings.h"

namespace quiver::columnar {

Result<Tensor> StackColumns(std::span<const FieldView> fields, std::string name) {
  if (fields.empty()) {
    return Status::InvalidArgument("stacking into " + Quoted(name) + ": no fields given");
  }
  const size_t n = fields[0].content.size();
  for (const FieldView& f : fields) {
    if (f.content.size() != n) {
      return Status::InvalidArgument("stacking into " + Quoted(name) + ": field " + Quoted(f.name) +
                                     " has " + std::to_string(f.content.size()) +
                                     " elements but field " + Quoted(fields[0].name) + " has " +
                                     std::to_string(n));
    }
  }
  const size_t num_fields = fields.size();
  Tensor out{std::move(name), DataType::kFp32,
             Shape{static_cast<int64_t>(n), static_cast<int64_t>(num_fields)},
             Buffer::Allocate(n * num_fields * sizeof(float))};
  float* dst = reinterpret_cast<float*>(out.data.mutable_data());
  if (num_fields == 1) {
    if (n > 0) std::memcpy(dst, fields[0].content.data(), n * sizeof(float));
    return out;
  }
  // Column by column: contiguous reads, short-stride writes.
  for (size_t f = 0; f < num_fields; ++f) {
    const float* src = fields[f].content.data();
    for (size_t r = 0; r < n; ++r) dst[r * num_fields + f] = src[r];
  }
  return out;
}

}  // namespace quiver::columnar
