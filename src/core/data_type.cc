#include "core/data_type.h"

#include <array>

namespace quiver {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;
  std::string_view config_name;
  size_t size;
};

constexpr std::array<TypeInfo, 15> kTypes = {{
    {DataType::kInvalid, "INVALID", "TYPE_INVALID", 0},
    {DataType::kBool, "BOOL", "TYPE_BOOL", 1},
    {DataType::kUint8, "UINT8", "TYPE_UINT8", 1},
    {DataType::kUint16, "UINT16", "TYPE_UINT16", 2},
    {DataType::kUint32, "UINT32", "TYPE_UINT32", 4},
    {DataType::kUint64, "UINT64", "TYPE_UINT64", 8},
    {DataType::kInt8, "INT8", "TYPE_INT8", 1},
    {DataType::kInt16, "INT16", "TYPE_INT16", 2},
    {DataType::kInt32, "INT32", "TYPE_INT32", 4},
    {DataType::kInt64, "INT64", "TYPE_INT64", 8},
    {DataType::kFp16, "FP16", "TYPE_FP16", 2},
    {DataType::kBf16, "BF16", "TYPE_BF16", 2},
    {DataType::kFp32, "FP32", "TYPE_FP32", 4},
    {DataType::kFp64, "FP64", "TYPE_FP64", 8},
    {DataType::kBytes, "BYTES", "TYPE_STRING", 0},
}};

const TypeInfo& Info(DataType type) {
  auto index = static_cast<size_t>(type);
  return index < kTypes.size() ? kTypes[index] : kTypes[0];
}

}  // namespace

std::string_view DataTypeName(DataType type) { return Info(type).name; }
std::string_view DataTypeConfigName(DataType type) { return Info(type).config_name; }
size_t DataTypeSize(DataType type) { return Info(type).size; }

DataType DataTypeFromName(std::string_view name) {
  for (const auto& t : kTypes) {
    if (t.type != DataType::kInvalid && t.name == name) return t.type;
  }
  return DataType::kInvalid;
}

DataType DataTypeFromConfigName(std::string_view name) {
  for (const auto& t : kTypes) {
    if (t.type != DataType::kInvalid && t.config_name == name) return t.type;
  }
  return DataType::kInvalid;
}

}  // namespace quiver
