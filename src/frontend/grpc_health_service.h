#pragma once
// GrpcHealthService: grpc.health.v1.Health/Check over an InferenceService, for load
// balancers and Kubernetes gRPC probes. Watch is not provided (UNIMPLEMENTED).

#include <memory>
#include <vector>

#include "frontend/grpc_async_call.h"
#include "frontend/grpc_kserve_service.h"
#include "health.grpc.pb.h"

namespace quiver::frontend {

// Check answers SERVING while the server accepts requests and the service is ready,
// NOT_SERVING otherwise. The service name in the request is not looked at (as Triton):
// the whole server is one service. Thread-safe.
class GrpcHealthService {
 public:
  explicit GrpcHealthService(GrpcFrontendState& state) : state_(state) {}

  grpc::Service* service() { return &async_; }
  // Check and Watch, ready to arm on the server's queues (see GrpcKServeService::Methods).
  std::vector<std::unique_ptr<GrpcMethod>> Methods(GrpcCallCounter& counter);

 private:
  GrpcFrontendState& state_;
  grpc::health::v1::Health::AsyncService async_;
};

}  // namespace quiver::frontend
