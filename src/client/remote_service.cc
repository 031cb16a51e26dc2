#include "client/remote_service.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "client/shm_pool.h"

namespace quiver::client {

namespace {

// Offsets of tensors within one shared-memory lease are aligned to this.
constexpr size_t kShmAlignment = 64;
size_t AlignUp(size_t n) { return (n + kShmAlignment - 1) / kShmAlignment * kShmAlignment; }

Deadline After(std::chrono::milliseconds timeout) {
  return std::chrono::steady_clock::now() + timeout;
}

// Errors after which the server may still be reading a request's inputs.
bool MayStillBeRead(const Status& status) {
  const StatusCode code = status.code();
  return code == StatusCode::kDeadlineExceeded || code == StatusCode::kCancelled ||
         code == StatusCode::kUnavailable;
}

}  // namespace

std::string EndpointName(std::string_view scheme, const RemoteOptions& options) {
  std::string name(scheme);
  name += "://";
  // An IPv6 literal needs brackets to be followed by a port.
  const bool ipv6 = options.host.find(':') != std::string::npos;
  if (ipv6) name += '[';
  name += options.host;
  if (ipv6) name += ']';
  name += ':';
  name += std::to_string(options.port);
  return name;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost") return true;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string text(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  }
  return false;
}

bool IsRetryable(const Status& status) {
  return status.code() == StatusCode::kUnavailable ||
         status.code() == StatusCode::kDeadlineExceeded;
}

Status NamingEndpoint(const Status& status, std::string_view endpoint) {
  if (status.ok() || status.message().find(endpoint) != std::string::npos) return status;
  return Status(status.code(), std::string(endpoint) + ": " + status.message());
}

Status CheckToken(std::string_view token) {
  for (const char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return Status::InvalidArgument(
          "token: only visible ASCII characters without spaces can be sent (a newline or "
          "space, e.g. read from a file with its line end?)");
    }
  }
  return Status::Ok();
}

namespace {

// Stands in for a transport whose token cannot be sent (RemoteOptions::token): every call
// fails with that error, so a bad token never reaches a header.
class RejectingTransport final : public RemoteTransport {
 public:
  RejectingTransport(std::string endpoint, const Status& why)
      : endpoint_(std::move(endpoint)), error_(NamingEndpoint(why, endpoint_)) {}

  const std::string& endpoint() const override { return endpoint_; }
  void Infer(InferRequest, std::vector<protocol::SharedMemoryRef>, InferCallback done) override {
    done(error_);
  }
  void Shutdown() override {}
  bool Live(Deadline) override { return false; }
  bool Ready(Deadline) override { return false; }
  bool ModelReady(std::string_view, std::string_view, Deadline) override { return false; }
  Result<ServerMetadata> GetServerMetadata(Deadline) override { return error_; }
  Result<ModelMetadata> GetModelMetadata(std::string_view, std::string_view, Deadline) override {
    return error_;
  }
  Result<ModelConfig> GetModelConfig(std::string_view, std::string_view, Deadline) override {
    return error_;
  }
  Result<RepositoryIndex> Index(Deadline) override { return error_; }
  Status Load(std::string_view, Deadline) override { return error_; }
  Status Unload(std::string_view, Deadline) override { return error_; }
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view, std::string_view,
                                                     Deadline) override {
    return error_;
  }
  Status RegisterSystemSharedMemory(const std::string&, const std::string&, uint64_t,
                                    Deadline) override {
    return error_;
  }
  Status UnregisterSystemSharedMemory(const std::string&, Deadline) override { return error_; }

 private:
  const std::string endpoint_;
  const Status error_;
};

// `transport`, or a RejectingTransport in its place when options.token cannot be sent.
std::shared_ptr<RemoteTransport> UsableTransport(const RemoteOptions& options,
                                                 std::shared_ptr<RemoteTransport> transport) {
  Status token = CheckToken(options.token);
  if (token.ok()) return transport;
  return std::make_shared<RejectingTransport>(transport->endpoint(), token);
}

}  // namespace

// ---- Shared memory ---------------------------------------------------------------------

// The shared-memory state, shared with the calls in flight so that a call may finish (and
// be resent) after the service is gone.
struct RemoteService::Shm {
  Shm(const RemoteOptions& o, std::string e, std::weak_ptr<RemoteTransport> t)
      : options(o), endpoint(std::move(e)), transport(std::move(t)) {
    static std::atomic<uint64_t> instance{0};
    prefix = "quiver_" + std::to_string(::getpid()) + "_" + std::to_string(instance++);
    active = options.shared_memory && IsLoopbackHost(options.host);
  }

  // One call whose inputs (some of them) travel in a leased region.
  struct Placed {
    std::shared_ptr<ShmPool> pool;  // declared first: the lease goes back before the pool
    ShmPool::Lease lease;
    InferRequest request;  // shares the input Buffers; kept for a resend in the message
    InferCallback done;
  };

  std::shared_ptr<ShmPool> Pool() {
    std::lock_guard lock(mutex);
    if (!pool) {
      std::weak_ptr<RemoteTransport> weak = transport;
      pool = std::make_shared<ShmPool>(
          prefix + "_" + std::to_string(generation),
          [weak](const std::string& name, const std::string& key, uint64_t size,
                 Deadline deadline) -> Status {
            auto t = weak.lock();
            if (!t) return Status::Cancelled("the service was destroyed");
            return t->RegisterSystemSharedMemory(name, key, size, deadline);
          },
          [weak, timeout = options.connect_timeout](const std::string& name) -> Status {
            auto t = weak.lock();
            if (!t) return Status::Ok();
            return t->UnregisterSystemSharedMemory(name, After(timeout));
          });
    }
    return pool;
  }

  // Copies the inputs of at least shared_memory_min_bytes into one leased region and
  // returns their placements (empty: everything travels in the message).
  std::vector<protocol::SharedMemoryRef> Place(const InferRequest& request,
                                               std::shared_ptr<ShmPool>& leased_from,
                                               ShmPool::Lease& lease) {
    if (!active.load(std::memory_order_relaxed)) return {};
    const size_t min_bytes = std::max<size_t>(options.shared_memory_min_bytes, 1);
    size_t total = 0;
    for (const Tensor& t : request.inputs) {
      if (t.data.size() >= min_bytes) total += AlignUp(t.data.size());
    }
    if (total == 0) return {};
    leased_from = Pool();
    // Registration is a round trip: bounded by the call's own deadline too.
    const Deadline deadline = std::min(request.deadline, After(options.connect_timeout));
    auto acquired = leased_from->Acquire(total, deadline);
    if (!acquired.ok()) {
      // A server that could not be reached fails this call anyway, in the message. One that
      // answered (refused the key: remote, or without our /dev/shm) never will take shared
      // memory, and neither will a host that cannot create it.
      if (!IsRetryable(acquired.status()) &&
          acquired.status().code() != StatusCode::kCancelled) {
        Disable(acquired.status());
      }
      leased_from.reset();
      return {};
    }
    std::vector<protocol::SharedMemoryRef> placements(request.inputs.size());
    size_t offset = 0;
    for (size_t i = 0; i < request.inputs.size(); ++i) {
      const Buffer& data = request.inputs[i].data;
      if (data.size() < min_bytes) continue;
      std::memcpy(acquired->data() + offset, data.data(), data.size());
      placements[i] = {acquired->name(), offset, data.size()};
      offset += AlignUp(data.size());
      inputs.fetch_add(1, std::memory_order_relaxed);
    }
    lease = std::move(acquired).value();
    return placements;
  }

  // The end of a call that used shared memory.
  void Finish(const std::shared_ptr<Shm>& self, const std::shared_ptr<Placed>& call,
              Result<InferResponse> result) {
    InferCallback done = std::move(call->done);
    InferRequest request = std::move(call->request);
    if (!result.ok() && result.status().message().find(call->lease.name()) !=
                            std::string::npos) {
      // The server does not know our region (it restarted, or its registry was cleared):
      // register anew from a fresh pool later; send this call once more in the message.
      Forgotten(call->pool);
      call->lease.Abandon();
      call->pool.reset();
      if (auto t = transport.lock()) {
        t->Infer(std::move(request), {}, std::move(done));
        return;
      }
      result = Status::Cancelled(endpoint + ": the service was destroyed");
    }
    if (!result.ok() && MayStillBeRead(result.status())) {
      call->lease.Abandon();
    } else {
      call->lease = ShmPool::Lease();  // free again before the caller sees the result
    }
    call->pool.reset();
    request = InferRequest();
    done(std::move(result));
  }

  // Drops `old` if it is still the current pool: its regions are gone on the server.
  void Forgotten(const std::shared_ptr<ShmPool>& old) {
    {
      std::lock_guard lock(mutex);
      if (pool != old || !pool) return;
      pool->Forget();
      pool.reset();
      ++generation;
    }
    spdlog::info("{}: the server lost our shared-memory regions; registering new ones",
                 endpoint);
  }

  void Disable(const Status& why) {
    if (active.exchange(false)) {
      spdlog::info("{}: system shared memory off for this service, tensors travel in the "
                   "message: {}",
                   endpoint, why.ToString());
    }
  }

  const RemoteOptions options;
  const std::string endpoint;
  const std::weak_ptr<RemoteTransport> transport;
  std::string prefix;  // region names: <prefix>_<generation>_<n>
  std::atomic<bool> active{false};
  std::atomic<uint64_t> inputs{0};

  std::mutex mutex;
  std::shared_ptr<ShmPool> pool;  // guarded by mutex; created at first use
  uint64_t generation = 0;        // guarded by mutex
};

// ---- RemoteService ---------------------------------------------------------------------

RemoteService::RemoteService(const RemoteOptions& options,
                             std::shared_ptr<RemoteTransport> transport)
    : transport_(UsableTransport(options, std::move(transport))) {
  shm_ = std::make_shared<Shm>(options, transport_->endpoint(), transport_);
}

RemoteService::~RemoteService() {
  transport_->Shutdown();
  std::shared_ptr<ShmPool> pool;
  {
    std::lock_guard lock(shm_->mutex);
    pool.swap(shm_->pool);
  }
  pool.reset();  // unregisters its regions (leases still out keep their mapping)
}

void RemoteService::Infer(InferRequest request, InferCallback done) {
  std::shared_ptr<ShmPool> pool;
  ShmPool::Lease lease;
  std::vector<protocol::SharedMemoryRef> placements = shm_->Place(request, pool, lease);
  if (placements.empty()) {
    // The transport names the endpoint in its errors: `done` goes to it as is, with no
    // allocation of ours on this path.
    transport_->Infer(std::move(request), {}, std::move(done));
    return;
  }
  auto call = std::make_shared<Shm::Placed>();
  call->pool = std::move(pool);
  call->lease = std::move(lease);
  call->request = request;  // shares the Buffers
  call->done = std::move(done);
  transport_->Infer(std::move(request), std::move(placements),
                    [shm = shm_, call = std::move(call)](Result<InferResponse> r) {
                      shm->Finish(shm, call, std::move(r));
                    });
}

namespace {
thread_local Deadline t_sync_deadline = kNoDeadline;
}  // namespace

SyncDeadlineScope::SyncDeadlineScope(Deadline deadline) : previous_(t_sync_deadline) {
  t_sync_deadline = std::min(t_sync_deadline, deadline);
}

SyncDeadlineScope::~SyncDeadlineScope() { t_sync_deadline = previous_; }

Deadline RemoteService::SyncDeadline() const {
  return std::min(t_sync_deadline, After(shm_->options.connect_timeout));
}

const std::string& RemoteService::endpoint() const { return shm_->endpoint; }

bool RemoteService::SharedMemoryActive() const {
  return shm_->active.load(std::memory_order_relaxed);
}

size_t RemoteService::SharedMemoryRegionCount() const {
  std::lock_guard lock(shm_->mutex);
  return shm_->pool ? shm_->pool->RegionCount() : 0;
}

uint64_t RemoteService::SharedMemoryInputs() const {
  return shm_->inputs.load(std::memory_order_relaxed);
}

bool RemoteService::Live() const { return transport_->Live(SyncDeadline()); }

bool RemoteService::Ready() const { return transport_->Ready(SyncDeadline()); }

bool RemoteService::ModelReady(std::string_view model, std::string_view version) const {
  return transport_->ModelReady(model, version, SyncDeadline());
}

Result<ServerMetadata> RemoteService::GetServerMetadata() const {
  return transport_->GetServerMetadata(SyncDeadline());
}

Result<ModelMetadata> RemoteService::GetModelMetadata(std::string_view model,
                                                      std::string_view version) const {
  return transport_->GetModelMetadata(model, version, SyncDeadline());
}

Result<ModelConfig> RemoteService::GetModelConfig(std::string_view model,
                                                  std::string_view version) const {
  return transport_->GetModelConfig(model, version, SyncDeadline());
}

Result<RepositoryIndex> RemoteService::Index() { return transport_->Index(SyncDeadline()); }

Status RemoteService::Load(std::string_view model) {
  return transport_->Load(model, t_sync_deadline);
}

Status RemoteService::Unload(std::string_view model) {
  return transport_->Unload(model, t_sync_deadline);
}

Result<std::vector<ModelStatistics>> RemoteService::GetStatistics(
    std::string_view model, std::string_view version) const {
  return transport_->GetStatistics(model, version, SyncDeadline());
}

}  // namespace quiver::client
