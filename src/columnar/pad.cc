#include "columnar/pad.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/strings.h"

namespace quiver::columnar {
namespace {

// Decides, per list, which content positions fill the slots and in which order. One
// instance per call; reuses its scratch vectors across lists.
class SlotSelector {
 public:
  SlotSelector(const PadOptions& options, int64_t max_len)
      : key_(options.truncation == Truncation::kTopByKey ? options.sort_key.content.data()
                                                         : nullptr),
        max_len_(max_len) {}

  // Number of slots list [begin, end) fills. `*positions` is null for storage order
  // (slot j holds position begin + j), else the positions in slot order, valid until the
  // next call.
  int64_t Select(int64_t begin, int64_t end, const int64_t** positions) {
    const int64_t len = end - begin;
    const int64_t kept = std::min(len, max_len_);
    *positions = nullptr;
    if (key_ == nullptr || len <= 1 || kept == 0) return kept;
    // Sort one integer per element: the key's descending rank in the high half, the index
    // within the list in the low half. Ascending order of these is "larger key first,
    // ties in storage order", with no branches in the comparison; an unstable (partial)
    // sort gives the stable result because no two integers are equal.
    sortable_.resize(static_cast<size_t>(len));
    for (int64_t j = 0; j < len; ++j) {
      sortable_[static_cast<size_t>(j)] =
          (uint64_t{DescendingRank(key_[begin + j])} << 32) | static_cast<uint64_t>(j);
    }
    if (kept < len) {
      std::partial_sort(sortable_.begin(), sortable_.begin() + kept, sortable_.end());
    } else {
      std::sort(sortable_.begin(), sortable_.end());
    }
    positions_.resize(static_cast<size_t>(kept));
    for (int64_t j = 0; j < kept; ++j) {
      positions_[static_cast<size_t>(j)] =
          begin + static_cast<int64_t>(sortable_[static_cast<size_t>(j)] & 0xffffffffu);
    }
    *positions = positions_.data();
    return kept;
  }

  // Lists longer than this fall outside the 32-bit index of the sort integers.
  static constexpr int64_t kMaxSortedList = int64_t{1} << 32;

 private:
  // An integer that orders floats descending: -0 and +0 equal, every NaN after -inf.
  static uint32_t DescendingRank(float x) {
    if (std::isnan(x)) return 0xffffffffu;  // no number maps here (it is a NaN pattern)
    if (x == 0.0f) x = 0.0f;                // -0 -> +0
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    // Ascending order as unsigned: flip all bits of negatives, the sign bit of the rest.
    const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ~ascending;
  }

  const float* key_;
  int64_t max_len_;
  std::vector<uint64_t> sortable_;
  std::vector<int64_t> positions_;
};

Status CheckCommon(const JaggedView& lists, const PadOptions& options) {
  QUIVER_RETURN_IF_ERROR(ValidateOffsets(lists.offsets, lists.name));
  if (options.max_len < 0) {
    return Status::InvalidArgument(Quoted(lists.name) + ": max_len " +
                                   std::to_string(options.max_len) +
                                   " is negative (0 means the longest list)");
  }
  if (options.truncation == Truncation::kTopByKey) {
    if (options.sort_key.content.data() == nullptr && lists.content_end() > 0) {
      return Status::InvalidArgument(Quoted(lists.name) +
                                     ": truncation by key needs PadOptions::sort_key");
    }
    QUIVER_RETURN_IF_ERROR(ValidateFieldCovers(options.sort_key, lists.content_end(), lists.name));
    for (int64_t i = 0; i < lists.size(); ++i) {
      if (lists.offsets[i + 1] - lists.offsets[i] >= SlotSelector::kMaxSortedList) {
        return Status::Unsupported(Quoted(lists.name) + ": list " + std::to_string(i) +
                                   " is too long to sort by key (2^32 elements or more)");
      }
    }
  }
  return Status::Ok();
}

int64_t EffectiveMaxLen(const JaggedView& lists, const PadOptions& options) {
  if (options.max_len > 0) return options.max_len;
  int64_t longest = 0;
  for (int64_t i = 0; i < lists.size(); ++i) {
    longest = std::max(longest, lists.offsets[i + 1] - lists.offsets[i]);
  }
  return longest;
}

// Bytes for `shape` of `element_size`-byte elements, or an error naming `what`.
Result<size_t> ByteSize(const Shape& shape, size_t element_size, std::string_view what) {
  const int64_t count = ElementCount(shape);
  if (count < 0 ||
      static_cast<uint64_t>(count) > std::numeric_limits<size_t>::max() / 8 / element_size) {
    return Status::InvalidArgument(Quoted(what) + ": a tensor of shape " + ShapeToString(shape) +
                                   " is too large");
  }
  return static_cast<size_t>(count) * element_size;
}

template <typename T>
void WriteMask(std::byte* data, std::span<const int64_t> offsets, int64_t n, int64_t max_len) {
  T* out = reinterpret_cast<T*>(data);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t kept = std::min(offsets[i + 1] - offsets[i], max_len);
    T* row = out + i * max_len;
    std::fill(row, row + kept, T(1));
    std::fill(row + kept, row + max_len, T(0));
  }
}

Status FillMask(DataType type, std::byte* data, std::span<const int64_t> offsets, int64_t n,
                int64_t max_len) {
  switch (type) {
    case DataType::kBool:
    case DataType::kUint8:
      WriteMask<uint8_t>(data, offsets, n, max_len);
      break;
    case DataType::kInt8:
      WriteMask<int8_t>(data, offsets, n, max_len);
      break;
    case DataType::kInt32:
      WriteMask<int32_t>(data, offsets, n, max_len);
      break;
    case DataType::kInt64:
      WriteMask<int64_t>(data, offsets, n, max_len);
      break;
    case DataType::kFp32:
      WriteMask<float>(data, offsets, n, max_len);
      break;
    case DataType::kFp64:
      WriteMask<double>(data, offsets, n, max_len);
      break;
    default:
      return Status::InvalidArgument("mask data type " + std::string(DataTypeName(type)) +
                                     " is not supported (BOOL, UINT8, INT8, INT32, INT64, "
                                     "FP32, FP64)");
  }
  return Status::Ok();
}

bool MaskTypeSupported(DataType type) {
  switch (type) {
    case DataType::kBool:
    case DataType::kUint8:
    case DataType::kInt8:
    case DataType::kInt32:
    case DataType::kInt64:
    case DataType::kFp32:
    case DataType::kFp64:
      return true;
    default:
      return false;
  }
}

}  // namespace

Result<int64_t> PaddedLength(const JaggedView& lists, const PadOptions& options) {
  QUIVER_RETURN_IF_ERROR(CheckCommon(lists, options));
  for (const FieldView& f : lists.fields) {
    QUIVER_RETURN_IF_ERROR(ValidateFieldCovers(f, lists.content_end(), lists.name));
  }
  if (!MaskTypeSupported(options.mask_type)) {
    return FillMask(options.mask_type, nullptr, {}, 0, 0);  // the error message
  }
  return EffectiveMaxLen(lists, options);
}

Result<Padded> PadJagged(const JaggedView& lists, const PadOptions& options) {
  auto max_len = PaddedLength(lists, options);
  if (!max_len.ok()) return max_len.status();
  const int64_t n = lists.size();
  const int64_t num_fields = static_cast<int64_t>(lists.fields.size());
  Padded padded;
  padded.max_len = *max_len;
  Shape values_shape = options.layout == PadLayout::kFeaturesObjects
                           ? Shape{n, num_fields, *max_len}
                           : Shape{n, *max_len, num_fields};
  Shape mask_shape{n, *max_len};
  auto values_bytes = ByteSize(values_shape, sizeof(float), lists.name);
  if (!values_bytes.ok()) return values_bytes.status();
  auto mask_bytes = ByteSize(mask_shape, DataTypeSize(options.mask_type), lists.name);
  if (!mask_bytes.ok()) return mask_bytes.status();
  padded.values = Tensor{options.values_name, DataType::kFp32, std::move(values_shape),
                         Buffer::Allocate(*values_bytes)};
  padded.mask = Tensor{options.mask_name, options.mask_type, std::move(mask_shape),
                       Buffer::Allocate(*mask_bytes)};
  QUIVER_RETURN_IF_ERROR(PadJaggedInto(
      lists, options,
      {reinterpret_cast<float*>(padded.values.data.mutable_data()), *values_bytes / sizeof(float)},
      {padded.mask.data.mutable_data(), *mask_bytes}));
  return padded;
}

Status PadJaggedInto(const JaggedView& lists, const PadOptions& options, std::span<float> values,
                     std::span<std::byte> mask) {
  auto padded_length = PaddedLength(lists, options);
  if (!padded_length.ok()) return padded_length.status();
  const int64_t max_len = *padded_length;
  const int64_t n = lists.size();
  const int64_t num_fields = static_cast<int64_t>(lists.fields.size());
  const bool features_first = options.layout == PadLayout::kFeaturesObjects;
  // Sizes in elements/bytes; ByteSize guards the products against overflow.
  auto values_bytes = ByteSize(Shape{n, max_len, num_fields}, sizeof(float), lists.name);
  if (!values_bytes.ok()) return values_bytes.status();
  auto mask_bytes = ByteSize(Shape{n, max_len}, DataTypeSize(options.mask_type), lists.name);
  if (!mask_bytes.ok()) return mask_bytes.status();
  if (values.size_bytes() != *values_bytes || (!mask.empty() && mask.size() != *mask_bytes)) {
    return Status::InvalidArgument(Quoted(lists.name) + ": destination holds " +
                                   std::to_string(values.size()) + " values and " +
                                   std::to_string(mask.size()) + " mask bytes; padding needs " +
                                   std::to_string(*values_bytes / sizeof(float)) + " and " +
                                   std::to_string(*mask_bytes) + " (or 0 to skip the mask)");
  }

  std::vector<const float*> src(lists.fields.size());
  for (size_t f = 0; f < src.size(); ++f) src[f] = lists.fields[f].content.data();
  float* out = values.data();
  const float pad = options.pad_value;
  const int64_t row_size = max_len * num_fields;
  SlotSelector selector(options, max_len);

  for (int64_t i = 0; i < n; ++i) {
    const int64_t begin = lists.offsets[i];
    const int64_t* pos = nullptr;
    const int64_t kept = selector.Select(begin, lists.offsets[i + 1], &pos);
    float* row = out + i * row_size;
    if (features_first) {
      for (int64_t f = 0; f < num_fields; ++f) {
        float* dst = row + f * max_len;
        const float* s = src[f];
        if (pos == nullptr) {
          if (kept > 0) std::memcpy(dst, s + begin, static_cast<size_t>(kept) * sizeof(float));
        } else {
          for (int64_t j = 0; j < kept; ++j) dst[j] = s[pos[j]];
        }
        std::fill(dst + kept, dst + max_len, pad);
      }
    } else {
      if (pos == nullptr) {
        for (int64_t j = 0; j < kept; ++j) {
          float* dst = row + j * num_fields;
          for (int64_t f = 0; f < num_fields; ++f) dst[f] = src[f][begin + j];
        }
      } else {
        for (int64_t j = 0; j < kept; ++j) {
          float* dst = row + j * num_fields;
          const int64_t p = pos[j];
          for (int64_t f = 0; f < num_fields; ++f) dst[f] = src[f][p];
        }
      }
      std::fill(row + kept * num_fields, row + row_size, pad);
    }
  }
  if (!mask.empty()) {
    QUIVER_RETURN_IF_ERROR(FillMask(options.mask_type, mask.data(), lists.offsets, n, max_len));
  }
  return Status::Ok();
}

Result<Tensor> UnpadToContent(const Tensor& per_slot, const JaggedView& lists,
                              const PadOptions& options, float fill, std::string name) {
  QUIVER_RETURN_IF_ERROR(CheckCommon(lists, options));
  const int64_t n = lists.size();
  const int64_t max_len = EffectiveMaxLen(lists, options);
  const std::string where = Quoted(lists.name) + ": per-slot tensor " + Quoted(per_slot.name);
  if (per_slot.datatype != DataType::kFp32) {
    return Status::InvalidArgument(where + " has data type " +
                                   std::string(DataTypeName(per_slot.datatype)) +
                                   "; expected FP32");
  }
  if (per_slot.shape.size() < 2 || per_slot.shape[0] != n || per_slot.shape[1] != max_len) {
    return Status::InvalidArgument(where + " has shape " + ShapeToString(per_slot.shape) +
                                   "; expected [" + std::to_string(n) + "," +
                                   std::to_string(max_len) + ",...] (lists, slots, ...)");
  }
  const int64_t inner_count = ElementCount(std::span(per_slot.shape).subspan(2));
  const int64_t total = ElementCount(per_slot.shape);
  if (inner_count < 0 || total < 0 ||
      per_slot.data.size() != static_cast<size_t>(total) * sizeof(float)) {
    return Status::InvalidArgument(where + " holds " + std::to_string(per_slot.data.size()) +
                                   " bytes, which does not match its shape " +
                                   ShapeToString(per_slot.shape));
  }
  Shape out_shape{lists.content_end()};
  out_shape.insert(out_shape.end(), per_slot.shape.begin() + 2, per_slot.shape.end());
  auto bytes = ByteSize(out_shape, sizeof(float), lists.name);
  if (!bytes.ok()) return bytes.status();
  Tensor out{std::move(name), DataType::kFp32, std::move(out_shape), Buffer::Allocate(*bytes)};
  float* dst = reinterpret_cast<float*>(out.data.mutable_data());
  std::fill(dst, dst + *bytes / sizeof(float), fill);
  const float* src = per_slot.data_as<float>();
  const size_t k = static_cast<size_t>(inner_count);
  SlotSelector selector(options, max_len);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t begin = lists.offsets[i];
    const int64_t* pos = nullptr;
    const int64_t kept = selector.Select(begin, lists.offsets[i + 1], &pos);
    const float* row = src + static_cast<size_t>(i * max_len) * k;
    if (kept == 0 || k == 0) continue;
    if (pos == nullptr) {
      std::memcpy(dst + static_cast<size_t>(begin) * k, row,
                  static_cast<size_t>(kept) * k * sizeof(float));
    } else {
      for (int64_t j = 0; j < kept; ++j) {
        std::memcpy(dst + static_cast<size_t>(pos[j]) * k, row + static_cast<size_t>(j) * k,
                    k * sizeof(float));
      }
    }
  }
  return out;
}

}  // namespace quiver::columnar
