#pragma once
// EchoGrpcServer: KServe v2 gRPC without an engine, for quiver_echo_server. Same gRPC
// library, async API, queue threads, generated service and server settings as
// frontend::GrpcServer;
// ModelInfer returns each input as an output (EchoModel::OutputName) with the same
// datatype, shape and bytes. Enough of the rest (live/ready, server and model metadata,
// model config, statistics) for NVIDIA perf_analyzer and tritonclient.

#include <memory>
#include <mutex>
#include <string>

#include "bench/echo_model.h"
#include "core/status.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace quiver::frontend {
class GrpcQueueThreads;
}  // namespace quiver::frontend

namespace quiver::bench {

class EchoGrpcService;

// Serves `model`, which must outlive the server. Start/Stop/port are thread-safe; Stop is
// idempotent and runs on destruction.
class EchoGrpcServer {
 public:
  // `port` 0 picks a free one (see port()).
  EchoGrpcServer(EchoModel& model, std::string address, int port);
  ~EchoGrpcServer();
  EchoGrpcServer(const EchoGrpcServer&) = delete;
  EchoGrpcServer& operator=(const EchoGrpcServer&) = delete;

  // UNAVAILABLE when the address cannot be bound; INVALID_ARGUMENT when called twice.
  Status Start();
  // Stops accepting, lets in-flight RPCs finish (at most 1 s), returns when all are done.
  void Stop();
  // The bound port after Start.
  int port() const;

 private:
  const std::string address_;
  const int requested_port_;
  std::unique_ptr<EchoGrpcService> service_;
  std::unique_ptr<frontend::GrpcQueueThreads> queues_;  // Start and the one Stop with a server

  mutable std::mutex mutex_;
  std::unique_ptr<grpc::Server> server_;  // guarded by mutex_
  int port_ = 0;                          // guarded by mutex_
  bool started_ = false;                  // guarded by mutex_
};

}  // namespace quiver::bench
