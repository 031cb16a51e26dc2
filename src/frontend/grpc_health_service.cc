#include "frontend/grpc_health_service.h"

namespace quiver::frontend {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// Watch: every call is answered UNIMPLEMENTED at once.
class RefusedWatch final : public GrpcTag {
 public:
  RefusedWatch(grpc::health::v1::Health::AsyncService& service, grpc::ServerCompletionQueue* cq,
               GrpcCallCounter& counter)
      : service_(service), cq_(cq), counter_(counter), writer_(&context_) {
    counter_.Add();
    service_.RequestWatch(&context_, &request_, &writer_, cq_, cq_, this);
  }

  void Proceed(bool ok) override {
    if (arrived_ || !ok) {
      delete this;
      return;
    }
    arrived_ = true;
    new RefusedWatch(service_, cq_, counter_);
    writer_.Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "Health/Watch is not provided"),
                   this);
  }

 private:
  ~RefusedWatch() { counter_.Remove(); }

  grpc::health::v1::Health::AsyncService& service_;
  grpc::ServerCompletionQueue* const cq_;
  GrpcCallCounter& counter_;
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_;
  bool arrived_ = false;  // queue thread only
};

class WatchMethod final : public GrpcMethod {
 public:
  WatchMethod(grpc::health::v1::Health::AsyncService& service, GrpcCallCounter& counter)
      : service_(service), counter_(counter) {}
  void Arm(grpc::ServerCompletionQueue* cq) override { new RefusedWatch(service_, cq, counter_); }

 private:
  grpc::health::v1::Health::AsyncService& service_;
  GrpcCallCounter& counter_;
};

}  // namespace

std::vector<std::unique_ptr<GrpcMethod>> GrpcHealthService::Methods(GrpcCallCounter& counter) {
  std::vector<std::unique_ptr<GrpcMethod>> methods;
  methods.push_back(MakeUnaryMethod(
      &async_, &grpc::health::v1::Health::AsyncService::RequestCheck,
      [this](UnaryCall<HealthCheckRequest, HealthCheckResponse>& call) {
        const bool serving = state_.accepting.load() && state_.service.Ready();
        call.response().set_status(serving ? HealthCheckResponse::SERVING
                                           : HealthCheckResponse::NOT_SERVING);
        call.Finish(grpc::Status::OK);
      },
      counter));
  methods.push_back(std::make_unique<WatchMethod>(async_, counter));
  return methods;
}

}  // namespace quiver::frontend
