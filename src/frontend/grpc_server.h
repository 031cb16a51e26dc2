#pragma once
// GrpcServer: the KServe v2 / Triton gRPC endpoint (inference.GRPCInferenceService plus
// grpc.health.v1.Health) over any InferenceService. Built on gRPC's completion-queue (async)
// API with our own threads, one queue each: a request is read, run (when the model can take
// it at once) and answered on the thread that received it; an inference that has to wait
// finishes its RPC from the InferenceService callback, so no thread waits for a model.

#include <chrono>
#include <limits>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "frontend/authenticator.h"
#include "frontend/shared_memory.h"
#include "service/inference_service.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace quiver::frontend {

class GrpcKServeService;
class GrpcHealthService;
struct GrpcFrontendState;
class GrpcQueueThreads;

struct GrpcServerOptions {
  std::string address = "127.0.0.1";
  // 0 picks a free port; port() tells which.
  int port = 8001;
  // gRPC's defaults (4 MB receive) are too small for tensors: effectively unlimited.
  int max_receive_message_bytes = std::numeric_limits<int>::max();
  int max_send_message_bytes = std::numeric_limits<int>::max();
  // Completion-queue threads, each polling its own queue and running the calls that arrive
  // on it. 0: DefaultGrpcThreads().
  int threads = 0;
  // How long Stop() lets in-flight RPCs finish before cancelling them.
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(5)};
  // ModelStreamInfer: answer in request order (as Triton does for non-decoupled models)
  // rather than in completion order.
  bool ordered_stream_responses = true;
  // Empty: auth off (every caller is tenant ""). Set: every RPC but ServerLive, ServerReady
  // and grpc.health.v1 needs `authorization: Bearer <token>` metadata (UNAUTHENTICATED).
  Authenticator authenticator;
};

// One thread below 16 hardware threads (no hand-off between gRPC threads: the fewest context
// switches per request), then one per 8, at most 4.
int DefaultGrpcThreads();

// "host:port", with brackets around an IPv6 literal: the address gRPC listens on.
std::string JoinHostPort(const std::string& host, int port);

// Serves `service` and the system shared-memory regions of `shm`; both must outlive the
// server. Start/Stop/port are thread-safe; Stop is idempotent and runs on destruction.
class GrpcServer {
 public:
  GrpcServer(InferenceService& service, SharedMemoryManager& shm, GrpcServerOptions options = {});
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds and starts serving. UNAVAILABLE when the address cannot be bound (port in use),
  // INVALID_ARGUMENT when called twice or after Stop.
  Status Start();
  // Graceful shutdown: stops accepting RPCs and new requests on open streams
  // (UNAVAILABLE), lets in-flight RPCs finish for up to shutdown_grace, cancels the rest,
  // and returns when every handler is done. Blocks; never call it from an RPC handler.
  void Stop();
  // The bound port after a successful Start (the chosen one when options.port was 0).
  int port() const;
  // "address:port" for clients, e.g. "127.0.0.1:40123".
  std::string target() const;

 private:
  GrpcServerOptions options_;
  std::unique_ptr<GrpcFrontendState> state_;
  std::unique_ptr<GrpcKServeService> kserve_;
  std::unique_ptr<GrpcHealthService> health_;
  std::unique_ptr<GrpcQueueThreads> queues_;

  mutable std::mutex mutex_;
  std::unique_ptr<grpc::Server> server_;  // guarded by mutex_
  int port_ = 0;                          // guarded by mutex_
  bool started_ = false;                  // guarded by mutex_
  bool stopped_ = false;                  // guarded by mutex_
};

}  // namespace quiver::frontend
