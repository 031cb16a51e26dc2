#pragma once
// Tensor elements <-> JSON "data" arrays (KServe v2 tensor data in JSON), shared by the
// request and response codecs. Internal to src/protocol.

#include <simdjson.h>

#include <string_view>

#include "core/status.h"
#include "core/tensor.h"
#include "protocol/json_writer.h"
#include "protocol/tensor_name.h"

namespace quiver::protocol {

// Converts a JSON "data" value (an array, possibly nested; nesting is flattened row-major)
// into the binary layout of `type`: booleans for BOOL, integers in range for the integer
// types, numbers for FP32/FP64, strings for BYTES (4-byte length prefix each).
// `element_count` is what the shape promises; any other count is INVALID_ARGUMENT.
// `what` names the tensor in errors ("input 'INPUT0'"). FP16/BF16 have no JSON form
// (INVALID_ARGUMENT, as Triton) unless the tensor is empty.
Result<Buffer> DecodeJsonData(simdjson::dom::element data, DataType type, int64_t element_count,
                              const TensorName& what);

// Writes `tensor`'s elements as a flat JSON array. INTERNAL when the byte size does not
// match the shape (or BYTES framing is broken); INVALID_ARGUMENT for FP16/BF16.
Status EncodeJsonData(JsonWriter& writer, const Tensor& tensor, const TensorName& what);

// Human-readable JSON type name of an element, for error messages.
std::string_view JsonTypeName(simdjson::dom::element e);

// Parses `size` bytes at `data` with a per-thread parser (the result is valid until the
// next ParseJson on the same thread). With `padding` >= kJsonPadding readable bytes after
// the text it parses in place; otherwise the parser copies the text. `what` names the
// document in errors ("the request JSON"). INVALID_ARGUMENT when malformed.
Result<simdjson::dom::element> ParseJson(const char* data, size_t size, size_t padding,
                                         std::string_view what);

// obj[key] if present.
inline bool FindField(simdjson::dom::object obj, std::string_view key,
                      simdjson::dom::element& out) {
  return !obj.at_key(key).get(out);
}

}  // namespace quiver::protocol
