#pragma once
// GrpcQueueThreads: the completion queues of one async grpc::Server, one thread each, the
// methods armed on them and the count of calls alive; the start and stop sequence that every
// async server here (frontend::GrpcServer, the echo server) goes through.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>
#include <vector>

#include "frontend/grpc_async_call.h"

namespace quiver::frontend {

// Use: AddTo before BuildAndStart; then Run (started) or Abandon (failed); after
// server->Shutdown(), Stop; destroy the server before this object. Not thread-safe: the
// owner calls these in that order.
class GrpcQueueThreads {
 public:
  ~GrpcQueueThreads();  // Stop() if Run was called and Stop was not

  // Adds `count` queues to the builder.
  void AddTo(grpc::ServerBuilder& builder, int count);
  // Counts the calls of the methods passed to Run (hand it to the methods' makers).
  GrpcCallCounter& calls() { return calls_; }
  // Arms every method (pending_per_queue times) on every queue and starts the threads, which
  // run every event of their queue. The methods live as long as this object.
  void Run(std::vector<std::unique_ptr<GrpcMethod>> methods);
  // After a failed BuildAndStart (`server` null) or a server that started but cannot be used:
  // shuts it down and drains what it put on the queues.
  void Abandon(grpc::Server* server);
  // After server->Shutdown(): waits until the last call is gone (a late answer finishes on its
  // queue), then shuts the queues down and joins the threads. Idempotent.
  void Stop();
  size_t size() const { return queues_.size(); }

 private:
  GrpcCallCounter calls_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::unique_ptr<GrpcMethod>> methods_;
  std::vector<std::thread> threads_;
};

}  // namespace quiver::frontend
