#include "frontend/grpc_queue_threads.h"

namespace quiver::frontend {
namespace {

// A queue's thread: runs every event of its queue until the queue is shut down and drained.
void PollQueue(grpc::ServerCompletionQueue* queue) {
  void* tag = nullptr;
  bool ok = false;
  while (queue->Next(&tag, &ok)) static_cast<GrpcTag*>(tag)->Proceed(ok);
}

}  // namespace

GrpcQueueThreads::~GrpcQueueThreads() { Stop(); }

void GrpcQueueThreads::AddTo(grpc::ServerBuilder& builder, int count) {
  for (int i = 0; i < count; ++i) queues_.push_back(builder.AddCompletionQueue());
}

void GrpcQueueThreads::Run(std::vector<std::unique_ptr<GrpcMethod>> methods) {
  methods_ = std::move(methods);
  for (auto& queue : queues_) {
    for (auto& method : methods_) {
      for (int i = 0; i < method->pending_per_queue; ++i) method->Arm(queue.get());
    }
  }
  for (auto& queue : queues_) threads_.emplace_back(PollQueue, queue.get());
}

void GrpcQueueThreads::Abandon(grpc::Server* server) {
  // Without a server nothing was put on the queues; destroying them is enough.
  if (server == nullptr) return;
  server->Shutdown();
  for (auto& queue : queues_) {
    queue->Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (queue->Next(&tag, &ok)) {
    }
  }
}

void GrpcQueueThreads::Stop() {
  if (threads_.empty()) return;
  calls_.WaitForZero();
  for (auto& queue : queues_) queue->Shutdown();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace quiver::frontend
