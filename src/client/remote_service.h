#pragma once
// RemoteService: an InferenceService that forwards every call to one KServe v2 server
// (quiver serve, NVIDIA Triton, or the gateway). It is the one transport core of the
// client: HTTP/REST (HttpService) and gRPC (GrpcService) only supply sending and receiving
// (RemoteTransport, remote_transport.h); everything else is decided here, once, the same
// for both:
//   - shared memory: inputs of at least shared_memory_min_bytes go into a region leased
//     from a pool (created and registered once, reused) when the server is on this host;
//   - a server that refuses a registration (remote, or without our /dev/shm), or a host
//     whose shm cannot be created, turns shared memory off for the service (one log line);
//     a server that cannot be reached does not (that call travels in the message);
//   - a server that forgot our regions (it restarted) gets a fresh pool, and the call is
//     sent again once with its bytes in the message: no call fails for it;
//   - a region whose call ended without an answer (client-side deadline, cancel, lost
//     connection) may still be read by the server: it is never reused (abandoned);
//   - errors: the server's own keep their code and message; connection refused/reset and
//     DNS failures are UNAVAILABLE; a passed request.deadline is DEADLINE_EXCEEDED (the
//     call is cancelled); a malformed answer is INTERNAL; every message starts with the
//     endpoint ("grpc://127.0.0.1:8001: ...", written by the transport) and never holds
//     the token;
//   - IsRetryable says which errors a caller may retry (the Client's policy).
// Infer calls `done` exactly once, on a transport thread (or inline, before Infer returns,
// when the call fails at once), never while holding a lock of this class. Sync methods
// block the caller; all but Load/Unload give up after connect_timeout (or earlier, see
// SyncDeadlineScope).
//
// Destroying the service cancels calls in flight (CANCELLED), waits for their `done`s
// (unless destroyed from inside one), then unregisters and unlinks its regions.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "client/remote_transport.h"
#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::client {

struct RemoteOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  // HTTP: keep-alive connections in the pool (requests queue when all are busy).
  // gRPC: channels (each one HTTP/2 connection) used round-robin.
  size_t connections = 4;
  // Connecting gives up after this; so does every sync call (health, metadata, config,
  // statistics, index) but model load/unload, when the server does not answer.
  std::chrono::milliseconds connect_timeout{3000};
  // Use POSIX system shared memory for input tensors when the server is on this host
  // (a loopback address: 127.0.0.0/8, ::1, localhost); outputs always come back in the
  // response. See the policy above.
  bool shared_memory = true;
  // Inputs smaller than this travel in the message even when shared memory is on
  // (registration and the extra round trip do not pay for tiny tensors).
  size_t shared_memory_min_bytes = 64 * 1024;
  // gRPC: max send/receive message size.
  int max_message_bytes = std::numeric_limits<int>::max();
  // Bearer token sent with every call (HTTP `Authorization: Bearer <token>`, gRPC metadata
  // `authorization`); "" = none. Must pass CheckToken, else every call fails with its
  // INVALID_ARGUMENT. Never logged nor put in a message.
  std::string token;
};

// "http://host:port" / "grpc://host:port", for messages.
std::string EndpointName(std::string_view scheme, const RemoteOptions& options);

// Whether `host` names this machine's loopback (127.0.0.0/8, ::1, "localhost"): only then
// can the server open our shared-memory regions.
bool IsLoopbackHost(std::string_view host);

// Whether a failed call may succeed when tried again (here or on another server):
// UNAVAILABLE (server down, not ready, connection lost) and DEADLINE_EXCEEDED. Every other
// code is the server's verdict on the request.
bool IsRetryable(const Status& status);

// `status` with its message starting with `endpoint` (unchanged when it names it already).
Status NamingEndpoint(const Status& status, std::string_view endpoint);

// OK when `token` can travel in an HTTP header and gRPC metadata: visible ASCII without
// spaces (a token read from a file with its newline is not); "" (no token) is fine.
// INVALID_ARGUMENT otherwise, without the token in the message.
Status CheckToken(std::string_view token);

// While it lives, the sync calls this thread makes through any RemoteService give up at
// `deadline` too (not only after connect_timeout): the Client bounds a call's metadata
// fetch and its own sync methods by the time the caller gave it. Scopes nest (the
// earliest deadline wins).
class SyncDeadlineScope {
 public:
  explicit SyncDeadlineScope(Deadline deadline);
  ~SyncDeadlineScope();
  SyncDeadlineScope(const SyncDeadlineScope&) = delete;
  SyncDeadlineScope& operator=(const SyncDeadlineScope&) = delete;

 private:
  Deadline previous_;
};

class RemoteService : public InferenceService {
 public:
  // `transport` speaks to the server at `options.host:port` (and names it). With a token
  // that fails CheckToken, every call fails with that error instead.
  RemoteService(const RemoteOptions& options, std::shared_ptr<RemoteTransport> transport);
  ~RemoteService() override;
  RemoteService(const RemoteService&) = delete;
  RemoteService& operator=(const RemoteService&) = delete;

  bool Live() const override;
  bool Ready() const override;
  Result<ServerMetadata> GetServerMetadata() const override;
  Result<ModelMetadata> GetModelMetadata(std::string_view model,
                                         std::string_view version) const override;
  Result<ModelConfig> GetModelConfig(std::string_view model,
                                     std::string_view version) const override;
  bool ModelReady(std::string_view model, std::string_view version) const override;
  void Infer(InferRequest request, InferCallback done) override;
  Result<RepositoryIndex> Index() override;
  // No deadline: loading a model may take long. Fails fast when the server is unreachable.
  Status Load(std::string_view model) override;
  Status Unload(std::string_view model) override;
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                     std::string_view version) const override;

  // "grpc://host:port" / "http://host:port".
  const std::string& endpoint() const;
  // Whether large inputs still go through shared memory: options.shared_memory, a loopback
  // host, and no refusal so far.
  bool SharedMemoryActive() const;
  // Regions the current pool has created (reuse keeps this small; 0 without shm).
  size_t SharedMemoryRegionCount() const;
  // Inputs sent through shared memory so far.
  uint64_t SharedMemoryInputs() const;

 private:
  struct Shm;
  Deadline SyncDeadline() const;

  std::shared_ptr<Shm> shm_;  // shared with the calls in flight
  std::shared_ptr<RemoteTransport> transport_;
};

// Both construct without connecting; the first call connects (lazily), so creating a
// service for a server that is down succeeds and its calls fail with UNAVAILABLE.
std::shared_ptr<RemoteService> MakeHttpService(const RemoteOptions& options);
std::shared_ptr<RemoteService> MakeGrpcService(const RemoteOptions& options);

}  // namespace quiver::client
