#pragma once
// GrpcService: the gRPC transport of the client (MakeGrpcService in remote_service.h):
// an InferenceService forwarding every call to one KServe v2 server through
// inference.GRPCInferenceService (Triton-compatible). Its contract and error policy are
// those of remote_service.h; this header adds what tests and diagnostics need.
//
// Thread model: Infer encodes on the caller's thread and starts an asynchronous call
// (gRPC callback API, any number in flight); `done` runs on a gRPC thread, or inline in
// Infer when gRPC completes the call at once (e.g. a deadline already past), never with
// a lock of this class held. Calls go round-robin over `connections` channels, each its
// own HTTP/2 connection. Sync methods block the caller on the blocking stub. Every
// method is thread-safe.
//
// Ownership: Infer takes the request; input bytes that travel in the message are sent
// from the request's Buffers without a copy (kept alive until gRPC has sent them: do not
// write to them before `done`). Response outputs borrow the received message (zero-copy). Destroying the service cancels calls in
// flight and returns once every `done` has run (see ~GrpcService for `done` itself).
//
// Shared memory: with options.shared_memory and a loopback host, inputs of at least
// shared_memory_min_bytes are copied into a region leased from a per-service ShmPool
// (registered once with the server, reused) instead of travelling in the message. If
// registering fails, the service logs one line and sends raw from then on. If the server
// forgets a region (restart), the call is resent once in the message and the pool is
// replaced.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "client/remote_service.h"

namespace quiver::client {

class GrpcService final : public InferenceService {
 public:
  explicit GrpcService(RemoteOptions options);
  // Cancels the calls in flight and returns once each one's `done` has run. Destroyed
  // from inside one of its own `done`s (on a gRPC thread, which must not wait for the
  // others: they may need that very thread), it cancels the rest and returns at once;
  // they finish shortly after with CANCELLED, touching nothing of the destroyed object.
  ~GrpcService() override;
  GrpcService(const GrpcService&) = delete;
  GrpcService& operator=(const GrpcService&) = delete;

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
  // Load/Unload have no deadline (loading may take long); they fail fast when the server
  // is unreachable. The other sync methods use connect_timeout as deadline.
  Status Load(std::string_view model) override;
  Status Unload(std::string_view model) override;
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view model,
                                                     std::string_view version) const override;

  // "grpc://host:port".
  const std::string& endpoint() const;
  // Whether inputs may still go through shared memory (false when disabled, not
  // loopback, or once registration failed).
  bool shared_memory_enabled() const;
  // Regions the current pool has created (0 before the first shared-memory call).
  size_t SharedMemoryRegionCount() const;
  // Inputs sent through shared memory so far.
  uint64_t shared_memory_inputs() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with the calls in flight
};

}  // namespace quiver::client
