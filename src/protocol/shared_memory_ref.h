#pragma once
// The shared-memory vocabulary of Triton's system shared memory extension, written once for
// both codecs (HTTP/REST in http_infer_codec.h, gRPC in grpc_codec.h) and both sides (the
// server resolves references, the client places inputs): the parameter names, a reference
// to a slice of a registered region, and the resolver a server binds to its regions.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/tensor.h"

namespace quiver::protocol {

// Parameter names of a tensor in shared memory (JSON "parameters" over HTTP, InferParameter
// map entries over gRPC): the registered region's name, the offset of the tensor's bytes
// in it, and their size.
inline constexpr std::string_view kShmRegionParam = "shared_memory_region";
inline constexpr std::string_view kShmOffsetParam = "shared_memory_offset";
inline constexpr std::string_view kShmByteSizeParam = "shared_memory_byte_size";

// A slice of a registered shared-memory region. An empty `region` means "not in shared
// memory" (the tensor travels in the message), so a vector of refs parallel to a request's
// inputs describes every input's placement.
struct SharedMemoryRef {
  std::string region;
  uint64_t offset = 0;
  uint64_t byte_size = 0;

  bool in_shared_memory() const { return !region.empty(); }
};

// Server side: turns a reference into bytes (the frontend's SharedMemoryManager implements
// it; the codecs do not know where memory comes from). Thread-safe.
class SharedMemoryResolver {
 public:
  virtual ~SharedMemoryResolver() = default;
  // The bytes of region[offset, offset + byte_size), writable; the Buffer keeps the mapping
  // alive. NOT_FOUND for an unknown region, INVALID_ARGUMENT when the range exceeds it.
  virtual Result<Buffer> Resolve(std::string_view region, uint64_t offset,
                                 uint64_t byte_size) const = 0;
};

}  // namespace quiver::protocol
