#pragma once
// SharedMemoryManager: Triton's system shared memory extension. Clients register POSIX
// shm regions (shm_open key + offset + size); requests then name a region, an offset
// and a byte size instead of carrying tensor bytes. Shared by the HTTP and gRPC
// frontends (one instance per server).

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "protocol/shared_memory_ref.h"

namespace quiver::frontend {

// A registered region as the status endpoints report it.
struct SharedMemoryRegion {
  std::string name;
  std::string key;        // shm_open key, e.g. "/input_data"
  uint64_t offset = 0;    // into the shm object where the region starts
  uint64_t byte_size = 0;
};

// Thread-safe. Buffers handed out keep their mapping alive, so unregistering a region
// while a request uses it is safe (the request finishes on the old mapping). It is the
// resolver both codecs parse requests with.
class SharedMemoryManager final : public protocol::SharedMemoryResolver {
 public:
  SharedMemoryManager();
  ~SharedMemoryManager() override;

  // Maps key[offset, offset + byte_size). ALREADY_EXISTS if `name` is registered;
  // INVALID_ARGUMENT if the key cannot be opened or the range exceeds the object.
  Status RegisterSystem(const std::string& name, const std::string& key, uint64_t offset,
                        uint64_t byte_size);
  // Unregisters `name`, or every region when `name` is empty. NOT_FOUND for an unknown
  // name (Triton answers success for unknown names on HTTP; callers may ignore it).
  Status Unregister(std::string_view name);
  // One region (NOT_FOUND if unknown) or all when `name` is empty.
  Result<std::vector<SharedMemoryRegion>> Regions(std::string_view name) const;

  // A view of [offset, offset + byte_size) within region `name`. INVALID_ARGUMENT
  // naming the region, offset, size and the region's size if out of bounds;
  // NOT_FOUND if the region is not registered.
  Result<Buffer> View(std::string_view name, uint64_t offset, uint64_t byte_size) const;
  Result<Buffer> Resolve(std::string_view region, uint64_t offset,
                         uint64_t byte_size) const override {
    return View(region, offset, byte_size);
  }

 private:
  struct Mapping;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Mapping>> regions_;  // guarded by mutex_
};

}  // namespace quiver::frontend
