#pragma once
// Buffer (shared, possibly borrowed bytes) and Tensor (name + type + shape + Buffer).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/data_type.h"
#include "core/status.h"

namespace quiver {

// A contiguous byte range plus shared ownership of whatever keeps it alive.
// Copying a Buffer is cheap (a pointer and a reference count); the bytes are shared.
// Owned buffers come from Allocate/Copy; borrowed ones point into memory that the
// `keepalive` object (a network message, a shm mapping, a numpy array, a torch tensor)
// owns. Thread safety: as std::shared_ptr; concurrent writes to the bytes are the
// writer's business.
class Buffer {
 public:
  Buffer() = default;

  // Fresh, uninitialised memory that this buffer owns.
  static Buffer Allocate(size_t size);
  // Fresh memory holding a copy of [data, data + size).
  static Buffer Copy(const void* data, size_t size);
  // A view of memory kept alive by `keepalive` (may be null when the caller
  // guarantees the memory outlives every copy of this Buffer).
  static Buffer Borrow(const void* data, size_t size, std::shared_ptr<const void> keepalive);

  const std::byte* data() const { return data_; }
  // Writable access; only meaningful for buffers from Allocate/Copy or writable borrows.
  std::byte* mutable_data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  // A sub-range sharing this buffer's owner. Precondition: offset + size <= this->size().
  Buffer Slice(size_t offset, size_t size) const;

 private:
  Buffer(std::byte* data, size_t size, std::shared_ptr<const void> owner)
      : data_(data), size_(size), owner_(std::move(owner)) {}

  std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<const void> owner_;
};

using Shape = std::vector<int64_t>;

// A named, typed, shaped block of elements. Plain value type.
struct Tensor {
  std::string name;
  DataType datatype = DataType::kInvalid;
  Shape shape;
  Buffer data;

  template <typename T>
  const T* data_as() const {
    return reinterpret_cast<const T*>(data.data());
  }
};

// Number of elements of `shape`; -1 if any dimension is negative or the product overflows.
int64_t ElementCount(std::span<const int64_t> shape);
// "[2,3]" style rendering used in error messages.
std::string ShapeToString(std::span<const int64_t> shape);

// Walks a BYTES buffer (4-byte little-endian length, then the bytes, repeated) and
// returns the byte offset where each element's length prefix starts, plus the end.
// Error when a length runs past the end of the buffer.
Result<std::vector<size_t>> BytesElementOffsets(std::span<const std::byte> data);
// Serialises strings as a BYTES buffer.
Buffer MakeBytesBuffer(std::span<const std::string> elements);
// The same from views (no std::string per element).
Buffer MakeBytesBufferFromViews(std::span<const std::string_view> elements);

// Convenience: a tensor owning a copy of `values`.
template <typename T>
Tensor MakeTensor(std::string name, DataType type, Shape shape, std::span<const T> values) {
  return Tensor{std::move(name), type, std::move(shape),
                Buffer::Copy(values.data(), values.size_bytes())};
}

}  // namespace quiver
