#include "client/shm_pool.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

namespace quiver::client {

// One POSIX shm object, mapped whole. Unmapped and unlinked when the last holder (the
// pool or a tensor still borrowing it) lets go.
class ShmPool::Region {
 public:
  Region(std::string name, std::string key, std::byte* data, size_t size)
      : name_(std::move(name)), key_(std::move(key)), data_(data), size_(size) {}
  ~Region() {
    ::munmap(data_, size_);
    ::shm_unlink(key_.c_str());
  }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  const std::string& name() const { return name_; }
  std::byte* data() const { return data_; }
  size_t size() const { return size_; }

  static Result<std::shared_ptr<Region>> Create(std::string name, std::string key, size_t size) {
    const int fd = ::shm_open(key.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) {
      return Status::Internal("shm_open('" + key + "'): " + std::strerror(errno));
    }
    // posix_fallocate reserves the pages now: on a small /dev/shm (64 MiB in Docker) a
    // write into a merely truncated object would be a SIGBUS instead of this error.
    int err = ::ftruncate(fd, static_cast<off_t>(size)) != 0 ? errno : 0;
    if (err == 0) err = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
    if (err != 0) {
      ::close(fd);
      ::shm_unlink(key.c_str());
      return Status::ResourceExhausted("reserving " + std::to_string(size) +
                                       " bytes of shared memory for '" + key +
                                       "': " + std::strerror(err));
    }
    void* data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int map_err = errno;
    ::close(fd);  // the mapping keeps the object alive
    if (data == MAP_FAILED) {
      ::shm_unlink(key.c_str());
      return Status::ResourceExhausted("mmap('" + key + "'): " + std::strerror(map_err));
    }
    return std::make_shared<Region>(std::move(name), std::move(key),
                                    static_cast<std::byte*>(data), size);
  }

 private:
  std::string name_;
  std::string key_;
  std::byte* data_;
  size_t size_;
};

struct Anchor {
  std::mutex mutex;
  ShmPool* pool = nullptr;  // guarded by mutex; null once the pool is destroyed
};

namespace {
constexpr size_t kMinRegionBytes = 64 * 1024;
}  // namespace

ShmPool::Lease::~Lease() { Return(); }

ShmPool::Lease& ShmPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Return();
    anchor_ = std::move(other.anchor_);
    region_ = std::move(other.region_);
  }
  return *this;
}

void ShmPool::Lease::Return() {
  if (region_ == nullptr || anchor_ == nullptr) return;
  std::lock_guard lock(anchor_->mutex);
  if (anchor_->pool != nullptr) anchor_->pool->Release(std::move(region_));
  region_.reset();
}

void ShmPool::Lease::Abandon() {
  if (region_ == nullptr || anchor_ == nullptr) return;
  std::lock_guard lock(anchor_->mutex);
  if (anchor_->pool != nullptr) anchor_->pool->Retire(std::move(region_));
  region_.reset();
}

const std::string& ShmPool::Lease::name() const { return region_->name(); }
std::byte* ShmPool::Lease::data() const { return region_->data(); }
size_t ShmPool::Lease::size() const { return region_->size(); }

ShmPool::ShmPool(std::string prefix, RegisterRegionFn register_fn,
                 UnregisterRegionFn unregister_fn)
    : prefix_(std::move(prefix)),
      register_(std::move(register_fn)),
      unregister_(std::move(unregister_fn)),
      anchor_(std::make_shared<Anchor>()) {
  anchor_->pool = this;
}

ShmPool::~ShmPool() {
  {
    std::lock_guard lock(anchor_->mutex);
    anchor_->pool = nullptr;  // outstanding leases no longer return here
  }
  std::vector<std::shared_ptr<Region>> all;
  std::vector<std::string> retired;
  bool forgotten;
  {
    std::lock_guard lock(mutex_);
    all.swap(all_);
    retired.swap(retired_);
    free_.clear();
    forgotten = forgotten_;
  }
  // Unregister first so the server drops its mapping; the objects are unlinked when the
  // last lease (if any) goes.
  if (!unregister_ || forgotten) return;
  for (const auto& region : all) (void)unregister_(region->name());
  for (const auto& name : retired) (void)unregister_(name);
}

void ShmPool::Forget() {
  std::lock_guard lock(mutex_);
  forgotten_ = true;
  retired_.clear();
}

Result<ShmPool::Lease> ShmPool::Acquire(size_t bytes,
                                        std::chrono::steady_clock::time_point deadline) {
  const size_t size = std::bit_ceil(std::max(bytes, kMinRegionBytes));
  Lease lease;
  lease.anchor_ = anchor_;
  std::string name;
  std::string key;
  std::vector<std::string> retired;
  {
    std::lock_guard lock(mutex_);
    retired.swap(retired_);
    // Smallest free region that fits: keeps big regions for big tensors.
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if ((*it)->size() >= bytes && (best == free_.end() || (*it)->size() < (*best)->size())) {
        best = it;
      }
    }
    if (best != free_.end()) {
      lease.region_ = std::move(*best);
      free_.erase(best);
    } else {
      name = prefix_ + "_" + std::to_string(next_id_++);
      key = "/" + name;
    }
  }
  // Abandoned regions leave the server's registry here, on a caller's thread (never on a
  // transport thread, where a blocking round trip could deadlock). An unanswered
  // unregistration only leaves a stale name on the server.
  if (unregister_) {
    for (const auto& old : retired) (void)unregister_(old);
  }
  if (lease.region_ != nullptr) return lease;  // a free region was reused
  // Create and register outside the lock: registration is a round trip to the server.
  auto region = Region::Create(name, key, size);
  if (!region.ok()) return region.status();
  if (register_) {
    if (Status s = register_(name, key, size, deadline); !s.ok()) return s;
  }
  {
    std::lock_guard lock(mutex_);
    all_.push_back(*region);
  }
  lease.region_ = std::move(*region);
  return lease;
}

size_t ShmPool::RegionCount() const {
  std::lock_guard lock(mutex_);
  return all_.size();
}

void ShmPool::Release(std::shared_ptr<Region> region) {
  std::lock_guard lock(mutex_);
  free_.push_back(std::move(region));
}

void ShmPool::Retire(std::shared_ptr<Region> region) {
  std::lock_guard lock(mutex_);
  std::erase(all_, region);
  if (!forgotten_) retired_.push_back(region->name());
  // The mapping goes (and the object is unlinked) when the last holder lets go.
}

}  // namespace quiver::client
