#pragma once
// GrpcHealthService: grpc.health.v1.Health/Check over an InferenceService, for load
// balancers and Kubernetes gRPC probes. Watch is not provided (UNIMPLEMENTED).

#include "frontend/grpc_kserve_service.h"
#include "health.grpc.pb.h"

namespace quiver::frontend {

// Check answers SERVING while the server accepts requests and the service is ready,
// NOT_SERVING otherwise. The service name in the request is not looked at (as Triton):
// the whole server is one service. Thread-safe.
class GrpcHealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  explicit GrpcHealthService(GrpcFrontendState& state) : state_(state) {}

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;

 private:
  GrpcFrontendState& state_;
};

}  // namespace quiver::frontend
