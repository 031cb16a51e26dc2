#include "frontend/shared_memory.h"

#include "core/strings.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace quiver::frontend {

// One mmap of key[offset, offset + byte_size). The page-aligned mapping may start before
// `offset`; `base` points at the region's first byte. Unmapped when the last Buffer or
// registry entry referring to it goes away.
struct SharedMemoryManager::Mapping {
  SharedMemoryRegion region;
  void* map_start = nullptr;
  size_t map_length = 0;
  std::byte* base = nullptr;

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (map_start != nullptr && map_start != MAP_FAILED) ::munmap(map_start, map_length);
  }
};

namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// Closes a file descriptor on scope exit.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_;
};

}  // namespace

SharedMemoryManager::SharedMemoryManager() = default;
SharedMemoryManager::~SharedMemoryManager() = default;

Status SharedMemoryManager::RegisterSystem(const std::string& name, const std::string& key,
                                           uint64_t offset, uint64_t byte_size) {
  if (name.empty()) {
    return Status::InvalidArgument("a system shared memory region needs a non-empty name");
  }
  {
    std::lock_guard lock(mutex_);
    if (regions_.count(name) != 0) {
      return Status::AlreadyExists("shared memory region " + Quoted(name) +
                                   " is already registered");
    }
  }
  const std::string where = "unable to register system shared memory region " + Quoted(name) +
                            " (key " + Quoted(key) + ")";
  if (key.empty()) return Status::InvalidArgument(where + ": the key is empty");
  if (key.find('\0') != std::string::npos) {
    return Status::InvalidArgument(where + ": the key contains a NUL character");
  }

  const int fd = ::shm_open(key.c_str(), O_RDWR, 0);
  if (fd < 0) {
    const int err = errno;
    return Status::InvalidArgument(where + ": shm_open failed: " + ErrnoText(err));
  }
  FdCloser closer(fd);

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    return Status::InvalidArgument(where + ": fstat failed: " + ErrnoText(err));
  }
  const auto object_size = static_cast<uint64_t>(st.st_size < 0 ? 0 : st.st_size);
  // offset + byte_size <= object_size, written so that it cannot overflow.
  if (offset > object_size || byte_size > object_size - offset) {
    return Status::InvalidArgument(where + ": offset " + std::to_string(offset) +
                                   " + byte_size " + std::to_string(byte_size) +
                                   " exceeds the object's size of " +
                                   std::to_string(object_size) + " bytes");
  }

  auto mapping = std::make_shared<Mapping>();
  mapping->region = SharedMemoryRegion{name, key, offset, byte_size};
  if (byte_size > 0) {
    const long page_raw = ::sysconf(_SC_PAGESIZE);
    const uint64_t page = page_raw > 0 ? static_cast<uint64_t>(page_raw) : 4096;
    const uint64_t aligned_offset = offset - offset % page;
    const uint64_t lead = offset - aligned_offset;
    // lead < page and byte_size <= object_size, so this cannot overflow uint64_t.
    const uint64_t length = lead + byte_size;
    if (length > std::numeric_limits<size_t>::max() ||
        aligned_offset > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
      return Status::InvalidArgument(where + ": the range does not fit the address space");
    }
    void* start = ::mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE,
                         MAP_SHARED, fd, static_cast<off_t>(aligned_offset));
    if (start == MAP_FAILED) {
      const int err = errno;
      return Status::InvalidArgument(where + ": mmap failed: " + ErrnoText(err));
    }
    mapping->map_start = start;
    mapping->map_length = static_cast<size_t>(length);
    mapping->base = static_cast<std::byte*>(start) + lead;
  }

  std::lock_guard lock(mutex_);
  auto [it, inserted] = regions_.emplace(name, std::move(mapping));
  if (!inserted) {
    // Lost a race with a concurrent registration of the same name; the mapping unmaps.
    return Status::AlreadyExists("shared memory region " + Quoted(name) +
                                 " is already registered");
  }
  return Status::Ok();
}

Status SharedMemoryManager::Unregister(std::string_view name) {
  std::vector<std::shared_ptr<Mapping>> released;  // unmapped outside the lock
  std::lock_guard lock(mutex_);
  if (name.empty()) {
    released.reserve(regions_.size());
    for (auto& [n, m] : regions_) released.push_back(std::move(m));
    regions_.clear();
    return Status::Ok();
  }
  auto it = regions_.find(std::string(name));
  if (it == regions_.end()) {
    return Status::NotFound("system shared memory region " + Quoted(name) +
                            " is not registered");
  }
  released.push_back(std::move(it->second));
  regions_.erase(it);
  return Status::Ok();
}

Result<std::vector<SharedMemoryRegion>> SharedMemoryManager::Regions(std::string_view name) const {
  std::vector<SharedMemoryRegion> out;
  std::lock_guard lock(mutex_);
  if (name.empty()) {
    out.reserve(regions_.size());
    for (const auto& [n, m] : regions_) out.push_back(m->region);
    std::sort(out.begin(), out.end(),
              [](const SharedMemoryRegion& a, const SharedMemoryRegion& b) {
                return a.name < b.name;
              });
    return out;
  }
  auto it = regions_.find(std::string(name));
  if (it == regions_.end()) {
    return Status::NotFound("unable to find system shared memory region " + Quoted(name));
  }
  out.push_back(it->second->region);
  return out;
}

Result<Buffer> SharedMemoryManager::View(std::string_view name, uint64_t offset,
                                         uint64_t byte_size) const {
  std::shared_ptr<Mapping> mapping;
  {
    std::lock_guard lock(mutex_);
    auto it = regions_.find(std::string(name));
    if (it == regions_.end()) {
      return Status::NotFound("unable to find system shared memory region " + Quoted(name));
    }
    mapping = it->second;
  }
  const uint64_t size = mapping->region.byte_size;
  if (offset > size || byte_size > size - offset) {
    return Status::InvalidArgument(
        "shared memory region " + Quoted(name) + ": offset " + std::to_string(offset) +
        " + byte_size " + std::to_string(byte_size) + " exceeds the region's size of " +
        std::to_string(size) + " bytes");
  }
  if (byte_size == 0) return Buffer::Borrow(mapping->base, 0, mapping);
  std::byte* start = mapping->base + offset;
  // The Buffer shares ownership of the mapping: unregistering does not unmap it.
  return Buffer::Borrow(start, static_cast<size_t>(byte_size), std::move(mapping));
}

}  // namespace quiver::frontend
