#pragma once
// The machinery of GrpcServer's completion-queue (async API) threads: each thread owns one
// ServerCompletionQueue and runs every call that arrives on it, so a request that can run at
// once is read, run and answered on that thread, with no hand-off to another thread.
//
// GrpcTag: what every tag on those queues points to. GrpcMethod: one RPC method, able to
// post a pending request for the next call on a queue. UnaryCall: one unary call, from its
// arrival to the end of its Finish.

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <mutex>

namespace quiver::frontend {

// A completion-queue tag: the queue's thread calls Proceed with the event's `ok`.
class GrpcTag {
 public:
  virtual void Proceed(bool ok) = 0;

 protected:
  ~GrpcTag() = default;
};

// Counts the calls alive (pending requests included), so that Stop can wait for the last
// one before it shuts the queues: a call's last tag must find its queue open.
class GrpcCallCounter {
 public:
  void Add() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++live_;
  }
  void Remove() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--live_ == 0) zero_.notify_all();
  }
  void WaitForZero() {
    std::unique_lock<std::mutex> lock(mutex_);
    zero_.wait(lock, [this] { return live_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable zero_;
  long live_ = 0;  // guarded by mutex_
};

// One RPC method of an async service. Arm posts a request for the next call of the method on
// `cq`; the call re-arms when it arrives, so every queue always waits for one more.
class GrpcMethod {
 public:
  virtual ~GrpcMethod() = default;
  virtual void Arm(grpc::ServerCompletionQueue* cq) = 0;

  // Requests to keep pending per queue. A call that arrives while none is pending waits
  // inside gRPC until the next is armed; spare ones save that wait for busy methods.
  int pending_per_queue = 1;
};

// The generated AsyncService's RequestX member for a unary method.
template <class Service, class Req, class Resp>
using UnaryRequestFn = void (Service::*)(grpc::ServerContext*, Req*,
                                         grpc::ServerAsyncResponseWriter<Resp>*,
                                         grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                                         void*);

template <class Req, class Resp>
class UnaryCall;

// A unary method: how to request its calls and the handler that answers them. The handler
// runs on the queue's thread and must call Finish exactly once, then or later from any thread.
template <class Req, class Resp>
class UnaryMethod final : public GrpcMethod {
 public:
  using Request = std::function<void(grpc::ServerContext*, Req*,
                                     grpc::ServerAsyncResponseWriter<Resp>*,
                                     grpc::ServerCompletionQueue*, void*)>;
  using Handler = std::function<void(UnaryCall<Req, Resp>&)>;

  UnaryMethod(Request request, Handler handler, GrpcCallCounter& counter)
      : request_(std::move(request)), handler_(std::move(handler)), counter_(counter) {}

  void Arm(grpc::ServerCompletionQueue* cq) override { new UnaryCall<Req, Resp>(*this, cq); }

 private:
  friend class UnaryCall<Req, Resp>;
  const Request request_;
  const Handler handler_;
  GrpcCallCounter& counter_;
};

// One unary call. Owns itself: deleted when its Finish completes, or when its request comes
// back unanswered because the server is shutting down.
template <class Req, class Resp>
class UnaryCall final : public GrpcTag {
 public:
  UnaryCall(UnaryMethod<Req, Resp>& method, grpc::ServerCompletionQueue* cq)
      : method_(method), cq_(cq), responder_(&context_) {
    method_.counter_.Add();
    method_.request_(&context_, &request_, &responder_, cq_, this);
  }

  grpc::ServerContext& context() { return context_; }
  const Req& request() const { return request_; }
  Resp& response() { return response_; }

  // Answers the call with `response()` when `status` is OK, with `status` alone otherwise.
  // Exactly once per call, from any thread; the call may be gone when it returns.
  void Finish(const grpc::Status& status) {
    if (status.ok()) {
      responder_.Finish(response_, status, this);
    } else {
      responder_.FinishWithError(status, this);
    }
  }

  void Proceed(bool ok) override {
    if (arrived_ || !ok) {  // Finish done (sent, or the client is gone), or shutting down
      delete this;
      return;
    }
    arrived_ = true;
    method_.Arm(cq_);  // wait for the next call of this method while this one runs
    method_.handler_(*this);
  }

 private:
  ~UnaryCall() { method_.counter_.Remove(); }

  UnaryMethod<Req, Resp>& method_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  Req request_;
  Resp response_;
  grpc::ServerAsyncResponseWriter<Resp> responder_;
  // Read and written only on the queue's thread (one thread per queue), in Proceed.
  bool arrived_ = false;
};

// Makes a UnaryMethod from the generated RequestX member of `service`.
template <class Service, class Base, class Req, class Resp>
std::unique_ptr<GrpcMethod> MakeUnaryMethod(Service* service,
                                            UnaryRequestFn<Base, Req, Resp> request,
                                            typename UnaryMethod<Req, Resp>::Handler handler,
                                            GrpcCallCounter& counter) {
  auto arm = [service, request](grpc::ServerContext* context, Req* req,
                                grpc::ServerAsyncResponseWriter<Resp>* responder,
                                grpc::ServerCompletionQueue* cq, void* tag) {
    (service->*request)(context, req, responder, cq, cq, tag);
  };
  return std::make_unique<UnaryMethod<Req, Resp>>(std::move(arm), std::move(handler), counter);
}

}  // namespace quiver::frontend
