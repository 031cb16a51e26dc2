#pragma once
// Tensor element types with their KServe v2 names ("FP32") and Triton config names
// ("TYPE_FP32"; BYTES is "TYPE_STRING" there).

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace quiver {

enum class DataType : uint8_t {
  kInvalid = 0,
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kBf16,
  kFp32,
  kFp64,
  kBytes,  // variable-length elements, each a 4-byte little-endian length + bytes
};

// KServe v2 name, e.g. "FP32"; "INVALID" for kInvalid.
std::string_view DataTypeName(DataType type);
// Parses a KServe v2 name; kInvalid when unknown (case-sensitive, as the protocol is).
DataType DataTypeFromName(std::string_view name);
// Triton model-config name, e.g. "TYPE_FP32", "TYPE_STRING" for BYTES.
std::string_view DataTypeConfigName(DataType type);
// Parses a Triton model-config name; kInvalid when unknown.
DataType DataTypeFromConfigName(std::string_view name);
// Bytes per element; 0 for BYTES (variable) and kInvalid.
size_t DataTypeSize(DataType type);

}  // namespace quiver
