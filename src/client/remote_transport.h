#pragma once
// RemoteTransport: what a wire protocol (HTTP/REST, gRPC) supplies to RemoteService, and
// nothing more: sending one call and receiving its answer. Shared-memory placement, region
// leases and registration policy, recovery, retry classification and error text live once
// in RemoteService (remote_service.h).
//
// Errors: a server's own error keeps its code and message; connection failures are
// UNAVAILABLE, a passed deadline DEADLINE_EXCEEDED, a malformed answer INTERNAL. Every
// message starts with endpoint() ("grpc://127.0.0.1:8001: ..."): the transport makes the
// text anyway, so naming it there costs nothing on the success path. Never with the token.
//
// Token: a non-empty RemoteOptions::token goes with every call, Infer and sync alike
// (HTTP `Authorization: Bearer <token>`, gRPC metadata `authorization`).
//
// Thread-safe: every method may be called concurrently.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "protocol/shared_memory_ref.h"
#include "service/inference_service.h"

namespace quiver::client {

// When a call gives up; time_point::max() means never.
using Deadline = std::chrono::steady_clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

class RemoteTransport {
 public:
  virtual ~RemoteTransport() = default;

  // "grpc://host:port" / "http://host:port", fixed at construction.
  virtual const std::string& endpoint() const = 0;

  // Sends `request`. Input i travels in shared memory when `placements[i]` names a region
  // (`placements` may be shorter than the inputs, or empty), else in the message; the
  // input Buffers are kept, not copied, until sent. request.deadline bounds the call.
  // `done` runs exactly once, on a transport thread, or inline when the call fails at once.
  virtual void Infer(InferRequest request, std::vector<protocol::SharedMemoryRef> placements,
                     InferCallback done) = 0;

  // Fails calls in flight with CANCELLED and returns once their `done`s have run (at once
  // when called from inside one); later Infers fail with CANCELLED. Sync calls still work
  // (regions are unregistered after this).
  virtual void Shutdown() = 0;

  // Sync calls, each bounded by `deadline` (DEADLINE_EXCEEDED when the server does not
  // answer in time).
  virtual bool Live(Deadline deadline) = 0;
  virtual bool Ready(Deadline deadline) = 0;
  virtual bool ModelReady(std::string_view model, std::string_view version,
                          Deadline deadline) = 0;
  virtual Result<ServerMetadata> GetServerMetadata(Deadline deadline) = 0;
  virtual Result<ModelMetadata> GetModelMetadata(std::string_view model,
                                                 std::string_view version,
                                                 Deadline deadline) = 0;
  virtual Result<ModelConfig> GetModelConfig(std::string_view model, std::string_view version,
                                             Deadline deadline) = 0;
  virtual Result<RepositoryIndex> Index(Deadline deadline) = 0;
  virtual Status Load(std::string_view model, Deadline deadline) = 0;
  virtual Status Unload(std::string_view model, Deadline deadline) = 0;
  virtual Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                             std::string_view version,
                                                             Deadline deadline) = 0;
  // Triton's system shared memory extension: region `name` is shm object `key`, `byte_size`
  // bytes from offset 0.
  virtual Status RegisterSystemSharedMemory(const std::string& name, const std::string& key,
                                            uint64_t byte_size, Deadline deadline) = 0;
  virtual Status UnregisterSystemSharedMemory(const std::string& name, Deadline deadline) = 0;
};

}  // namespace quiver::client
