#include "frontend/grpc_health_service.h"

namespace quiver::frontend {

grpc::ServerUnaryReactor* GrpcHealthService::Check(
    grpc::CallbackServerContext* context, const grpc::health::v1::HealthCheckRequest*,
    grpc::health::v1::HealthCheckResponse* response) {
  const bool serving = state_.accepting.load() && state_.service.Ready();
  response->set_status(serving ? grpc::health::v1::HealthCheckResponse::SERVING
                               : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace quiver::frontend
