#include "protocol/http_tensor_json.h"

#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

namespace quiver::protocol {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// Calls f(leaf) for every non-array value under `e`, row-major. Arrays nest arbitrarily
// (simdjson bounds the depth while parsing).
template <typename F>
Status ForEachLeaf(element e, F& f) {
  if (e.type() == element_type::ARRAY) {
    simdjson::dom::array arr;
    if (e.get_array().get(arr)) return Status::Internal("a JSON array could not be read");
    for (element child : arr) {
      QUIVER_RETURN_IF_ERROR(ForEachLeaf(child, f));
    }
    return Status::Ok();
  }
  return f(e);
}

std::string Describe(element e) {
  std::string out(JsonTypeName(e));
  if (e.is_number()) out += " " + simdjson::minify(e);
  return out;
}

Status BadElement(const TensorName& what, size_t index, element e, std::string_view expected) {
  return Status::InvalidArgument("unable to parse 'data' of " + std::string(what) +
                                 ": element " + std::to_string(index) + " is " + Describe(e) +
                                 ", expected " + std::string(expected));
}

template <typename T>
std::string IntegerRange() {
  return "an integer in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
         std::to_string(std::numeric_limits<T>::max()) + "]";
}

// Converts one leaf to T. Booleans, integers with a range check, floating point numbers.
template <typename T>
bool Convert(element e, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    return !e.get_bool().get(out);
  } else if constexpr (std::is_floating_point_v<T>) {
    double d = 0;
    if (e.get_double().get(d)) return false;
    out = static_cast<T>(d);
    return true;
  } else if constexpr (std::is_unsigned_v<T>) {
    uint64_t u = 0;
    if (e.get_uint64().get(u) || u > std::numeric_limits<T>::max()) return false;
    out = static_cast<T>(u);
    return true;
  } else {
    int64_t i = 0;
    if (e.get_int64().get(i) || i < std::numeric_limits<T>::min() ||
        i > std::numeric_limits<T>::max()) {
      return false;
    }
    out = static_cast<T>(i);
    return true;
  }
}

template <typename T>
std::string Expected() {
  if constexpr (std::is_same_v<T, bool>) {
    return "a boolean";
  } else if constexpr (std::is_floating_point_v<T>) {
    return "a number";
  } else {
    return IntegerRange<T>();
  }
}

template <typename T>
Result<Buffer> DecodeFixed(element data, size_t count, const TensorName& what) {
  using Stored = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;
  Buffer out = Buffer::Allocate(count * sizeof(Stored));
  std::byte* dst = out.mutable_data();
  size_t index = 0;
  auto write = [&](element e) -> Status {
    T value{};
    if (!Convert<T>(e, value)) return BadElement(what, index, e, Expected<T>());
    const Stored stored = static_cast<Stored>(value);
    std::memcpy(dst + index * sizeof(Stored), &stored, sizeof(Stored));
    ++index;
    return Status::Ok();
  };
  QUIVER_RETURN_IF_ERROR(ForEachLeaf(data, write));
  return out;
}

Result<Buffer> DecodeBytes(element data, size_t total_bytes, const TensorName& what) {
  Buffer out = Buffer::Allocate(total_bytes);
  std::byte* dst = out.mutable_data();
  auto write = [&](element e) -> Status {
    std::string_view s;
    if (e.get_string().get(s)) {  // checked by the counting pass
      return Status::Internal("a JSON string could not be read");
    }
    const auto len = static_cast<uint32_t>(s.size());
    for (int i = 0; i < 4; ++i) *dst++ = static_cast<std::byte>((len >> (8 * i)) & 0xff);
    if (!s.empty()) std::memcpy(dst, s.data(), s.size());
    dst += s.size();
    return Status::Ok();
  };
  QUIVER_RETURN_IF_ERROR(ForEachLeaf(data, write));
  return out;
}

template <typename T>
T Load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void WriteFixed(JsonWriter& w, const std::byte* p, size_t count) {
  for (size_t i = 0; i < count; ++i, p += sizeof(T)) {
    const T v = Load<T>(p);
    if constexpr (std::is_floating_point_v<T>) {
      w.Double(static_cast<double>(v));
    } else if constexpr (std::is_signed_v<T>) {
      w.Int(static_cast<int64_t>(v));
    } else {
      w.Uint(static_cast<uint64_t>(v));
    }
  }
}

}  // namespace

static_assert(simdjson::SIMDJSON_PADDING <= 64, "kJsonPadding must cover simdjson's padding");

Result<element> ParseJson(const char* data, size_t size, size_t padding, std::string_view what) {
  if (size == 0 || data == nullptr) {
    return Status::InvalidArgument("failed to parse " + std::string(what) +
                                   ": the document is empty");
  }
  thread_local simdjson::dom::parser parser;
  element root;
  const bool copy = padding < simdjson::SIMDJSON_PADDING;
  auto error = parser.parse(reinterpret_cast<const uint8_t*>(data), size, copy).get(root);
  if (error) {
    return Status::InvalidArgument("failed to parse " + std::string(what) + ": " +
                                   simdjson::error_message(error));
  }
  return root;
}

std::string_view JsonTypeName(element e) {
  switch (e.type()) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::INT64: return "an integer";
    case element_type::UINT64: return "an integer";
    case element_type::DOUBLE: return "a number";
    case element_type::STRING: return "a string";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "a JSON value";
}

Result<Buffer> DecodeJsonData(element data, DataType type, int64_t element_count,
                              const TensorName& what) {
  if (data.type() != element_type::ARRAY) {
    return Status::InvalidArgument("unable to parse 'data' of " + std::string(what) +
                                   ": expected an array, got " + std::string(JsonTypeName(data)));
  }
  // Counting pass: the number of leaves must match the shape before anything is written;
  // for BYTES it also checks every leaf is a string and sums the serialised size.
  size_t leaves = 0;
  size_t bytes_total = 0;
  auto count = [&](element e) -> Status {
    if (type == DataType::kBytes) {
      std::string_view s;
      if (e.get_string().get(s)) return BadElement(what, leaves, e, "a string");
      if (s.size() > std::numeric_limits<uint32_t>::max()) {
        return Status::InvalidArgument("unable to parse 'data' of " + std::string(what) +
                                       ": element " + std::to_string(leaves) +
                                       " is longer than 4 GiB");
      }
      bytes_total += 4 + s.size();
    }
    ++leaves;
    return Status::Ok();
  };
  QUIVER_RETURN_IF_ERROR(ForEachLeaf(data, count));
  if (element_count < 0 || leaves != static_cast<uint64_t>(element_count)) {
    return Status::InvalidArgument("unable to parse 'data' of " + std::string(what) +
                                   ": the shape has " + std::to_string(element_count) +
                                   " elements but 'data' has " + std::to_string(leaves));
  }
  if (leaves == 0) return Buffer::Allocate(0);

  switch (type) {
    case DataType::kBool: return DecodeFixed<bool>(data, leaves, what);
    case DataType::kUint8: return DecodeFixed<uint8_t>(data, leaves, what);
    case DataType::kUint16: return DecodeFixed<uint16_t>(data, leaves, what);
    case DataType::kUint32: return DecodeFixed<uint32_t>(data, leaves, what);
    case DataType::kUint64: return DecodeFixed<uint64_t>(data, leaves, what);
    case DataType::kInt8: return DecodeFixed<int8_t>(data, leaves, what);
    case DataType::kInt16: return DecodeFixed<int16_t>(data, leaves, what);
    case DataType::kInt32: return DecodeFixed<int32_t>(data, leaves, what);
    case DataType::kInt64: return DecodeFixed<int64_t>(data, leaves, what);
    case DataType::kFp32: return DecodeFixed<float>(data, leaves, what);
    case DataType::kFp64: return DecodeFixed<double>(data, leaves, what);
    case DataType::kBytes: return DecodeBytes(data, bytes_total, what);
    case DataType::kFp16:
    case DataType::kBf16:
      return Status::InvalidArgument("receiving " + std::string(DataTypeName(type)) +
                                     " data via JSON is not supported. Please use the binary "
                                     "data format for " + std::string(what));
    case DataType::kInvalid: break;
  }
  return Status::InvalidArgument("invalid datatype for " + std::string(what));
}

Status EncodeJsonData(JsonWriter& w, const Tensor& tensor, const TensorName& what) {
  const int64_t count_signed = ElementCount(tensor.shape);
  if (count_signed < 0) {
    return Status::Internal(std::string(what) + " has an invalid shape " +
                            ShapeToString(tensor.shape));
  }
  const auto count = static_cast<size_t>(count_signed);
  const DataType type = tensor.datatype;
  if (type == DataType::kFp16 || type == DataType::kBf16) {
    return Status::InvalidArgument("sending " + std::string(DataTypeName(type)) +
                                   " data via JSON is not supported. Please use the binary "
                                   "data format for " + std::string(what));
  }
  const std::byte* p = tensor.data.data();
  if (type == DataType::kBytes) {
    const size_t size = tensor.data.size();
    size_t pos = 0;
    w.BeginArray();
    for (size_t i = 0; i < count; ++i) {
      if (size - pos < 4) {
        return Status::Internal("output tensor shape does not match size of " +
                                std::string(what));
      }
      const auto len = Load<uint32_t>(p + pos);
      pos += 4;
      if (size - pos < len) {
        return Status::Internal("output tensor shape does not match size of " +
                                std::string(what));
      }
      w.String(std::string_view(reinterpret_cast<const char*>(p + pos), len));
      pos += len;
    }
    w.EndArray();
    return Status::Ok();
  }
  const size_t elem = DataTypeSize(type);
  if (elem == 0) return Status::Internal("invalid datatype for " + std::string(what));
  if (tensor.data.size() / elem != count || tensor.data.size() % elem != 0) {
    return Status::Internal("output tensor shape does not match size of " + std::string(what) +
                            ": shape " + ShapeToString(tensor.shape) + " of " +
                            std::string(DataTypeName(type)) + " needs " +
                            std::to_string(count * elem) + " bytes, got " +
                            std::to_string(tensor.data.size()));
  }
  w.BeginArray();
  switch (type) {
    case DataType::kBool:
      for (size_t i = 0; i < count; ++i) w.Bool(static_cast<uint8_t>(p[i]) != 0);
      break;
    case DataType::kUint8: WriteFixed<uint8_t>(w, p, count); break;
    case DataType::kUint16: WriteFixed<uint16_t>(w, p, count); break;
    case DataType::kUint32: WriteFixed<uint32_t>(w, p, count); break;
    case DataType::kUint64: WriteFixed<uint64_t>(w, p, count); break;
    case DataType::kInt8: WriteFixed<int8_t>(w, p, count); break;
    case DataType::kInt16: WriteFixed<int16_t>(w, p, count); break;
    case DataType::kInt32: WriteFixed<int32_t>(w, p, count); break;
    case DataType::kInt64: WriteFixed<int64_t>(w, p, count); break;
    case DataType::kFp32: WriteFixed<float>(w, p, count); break;
    case DataType::kFp64: WriteFixed<double>(w, p, count); break;
    default: break;
  }
  w.EndArray();
  return Status::Ok();
}

}  // namespace quiver::protocol
