#include "core/tensor.h"

#include <cstring>
#include <limits>

namespace quiver {

Buffer Buffer::Allocate(size_t size) {
  // make_shared_for_overwrite would need C++20 library support for arrays; use unique_ptr.
  std::shared_ptr<std::byte[]> storage(new std::byte[size == 0 ? 1 : size]);
  std::byte* raw = storage.get();
  return Buffer(raw, size, std::shared_ptr<const void>(std::move(storage), raw));
}

Buffer Buffer::Copy(const void* data, size_t size) {
  Buffer b = Allocate(size);
  if (size > 0) std::memcpy(b.data_, data, size);
  return b;
}

Buffer Buffer::Borrow(const void* data, size_t size, std::shared_ptr<const void> keepalive) {
  return Buffer(static_cast<std::byte*>(const_cast<void*>(data)), size, std::move(keepalive));
}

Buffer Buffer::Slice(size_t offset, size_t size) const {
  return Buffer(data_ + offset, size, owner_);
}

int64_t ElementCount(std::span<const int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d) return -1;
    count *= d;
  }
  return count;
}

std::string ShapeToString(std::span<const int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(shape[i]);
  }
  out += ']';
  return out;
}

Result<std::vector<size_t>> BytesElementOffsets(std::span<const std::byte> data) {
  std::vector<size_t> offsets;
  size_t pos = 0;
  while (pos < data.size()) {
    if (data.size() - pos < 4) {
      return Status::InvalidArgument("BYTES element at byte " + std::to_string(pos) +
                                     " has a truncated 4-byte length prefix");
    }
    uint32_t len = 0;
    for (int i = 3; i >= 0; --i) len = (len << 8) | static_cast<uint8_t>(data[pos + i]);
    if (data.size() - pos - 4 < len) {
      return Status::InvalidArgument("BYTES element at byte " + std::to_string(pos) +
                                     " declares " + std::to_string(len) + " bytes but only " +
                                     std::to_string(data.size() - pos - 4) + " remain");
    }
    offsets.push_back(pos);
    pos += 4 + len;
  }
  offsets.push_back(pos);
  return offsets;
}

namespace {

template <typename Element>
Buffer SerializeBytes(std::span<const Element> elements) {
  size_t total = 0;
  for (const auto& e : elements) total += 4 + e.size();
  Buffer b = Buffer::Allocate(total);
  std::byte* out = b.mutable_data();
  for (const auto& e : elements) {
    auto len = static_cast<uint32_t>(e.size());
    for (int i = 0; i < 4; ++i) *out++ = static_cast<std::byte>((len >> (8 * i)) & 0xff);
    if (!e.empty()) std::memcpy(out, e.data(), e.size());
    out += e.size();
  }
  return b;
}

}  // namespace

Buffer MakeBytesBuffer(std::span<const std::string> elements) { return SerializeBytes(elements); }

Buffer MakeBytesBufferFromViews(std::span<const std::string_view> elements) {
  return SerializeBytes(elements);
}

}  // namespace quiver
