#pragma once
// ShmPool: POSIX shared-memory regions a client creates, registers once with one server
// (Triton's system shared memory extension) and reuses across calls. A request leases
// a region big enough for its tensors, writes inputs into it, names it in the request,
// and gives it back when the response has been read (outputs may be read from it).
//
// A lease whose call ended without an answer is abandoned (Lease::Abandon): the server may
// still read it, so it is never handed out again; it is unregistered at the next Acquire
// and unlinked once nobody maps it.
//
// Thread-safe. Regions are unregistered from the server and unlinked when the pool is
// destroyed; leases keep their mapping alive, so a lease may outlive the pool safely.

#include <cstddef>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

namespace quiver::client {

// Registers region `name` (shm key `key`, `byte_size` bytes from offset 0) with the
// server, giving up at `deadline`, or unregisters it. Supplied by the transport.
using RegisterRegionFn =
    std::function<Status(const std::string& name, const std::string& key, uint64_t byte_size,
                         std::chrono::steady_clock::time_point deadline)>;
using UnregisterRegionFn = std::function<Status(const std::string& name)>;

// Lets leases find their pool, or learn that it is gone, without a data race.
struct Anchor;

class ShmPool {
 public:
  class Region;
  // One region, exclusively the holder's until the lease is destroyed.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    // The server may still read this region (its call ended without an answer): it is
    // not reused. The lease is empty afterwards.
    void Abandon();

    explicit operator bool() const { return region_ != nullptr; }
    const std::string& name() const;  // the registered region name
    std::byte* data() const;
    size_t size() const;
    // The mapping, kept alive by whoever holds a copy (tensors borrowing the region).
    std::shared_ptr<Region> region() const { return region_; }

   private:
    friend class ShmPool;
    void Return();  // gives the region back to the pool, if both still exist
    std::shared_ptr<Anchor> anchor_;  // finds the pool while it lives
    std::shared_ptr<Region> region_;
  };

  // `prefix` makes region names and keys unique per process and server, e.g.
  // "quiver_<pid>_<n>".
  ShmPool(std::string prefix, RegisterRegionFn register_fn, UnregisterRegionFn unregister_fn);
  ~ShmPool();
  ShmPool(const ShmPool&) = delete;
  ShmPool& operator=(const ShmPool&) = delete;

  // A free region of at least `bytes` (rounded up to a power of two, >= 64 KiB), created
  // and registered (giving up at `deadline`) when none is free. Errors: the registration's
  // unchanged; INTERNAL or RESOURCE_EXHAUSTED when this host cannot create the region.
  Result<Lease> Acquire(size_t bytes, std::chrono::steady_clock::time_point deadline =
                                          std::chrono::steady_clock::time_point::max());

  // The server has lost every registration (it restarted): nothing is unregistered from
  // now on, and regions are only unlinked.
  void Forget();

  // Regions created so far (tests: reuse means this stays small).
  size_t RegionCount() const;

 private:
  void Release(std::shared_ptr<Region> region);
  void Retire(std::shared_ptr<Region> region);

  std::string prefix_;
  RegisterRegionFn register_;
  UnregisterRegionFn unregister_;
  std::shared_ptr<Anchor> anchor_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Region>> free_;  // guarded by mutex_
  std::vector<std::shared_ptr<Region>> all_;   // guarded by mutex_
  std::vector<std::string> retired_;  // abandoned, still registered; guarded by mutex_
  bool forgotten_ = false;             // guarded by mutex_
  uint64_t next_id_ = 0;              // guarded by mutex_
};

}  // namespace quiver::client
