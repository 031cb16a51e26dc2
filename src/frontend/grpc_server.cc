#include "frontend/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/cpus.h"
#include "frontend/grpc_health_service.h"
#include "frontend/grpc_kserve_service.h"
#include "frontend/grpc_queue_threads.h"

namespace quiver::frontend {

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

int DefaultGrpcThreads() {
  return std::clamp(UsableCpus() / 8, 1, 4);
}

GrpcServer::GrpcServer(InferenceService& service, SharedMemoryManager& shm,
                       GrpcServerOptions options)
    : options_(std::move(options)),
      state_(std::make_unique<GrpcFrontendState>(service, shm, options_.ordered_stream_responses,
                                                 options_.authenticator)),
      kserve_(std::make_unique<GrpcKServeService>(*state_)),
      health_(std::make_unique<GrpcHealthService>(*state_)),
      queues_(std::make_unique<GrpcQueueThreads>()) {}

GrpcServer::~GrpcServer() { Stop(); }

Status GrpcServer::Start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (started_ || stopped_) {
    return Status::InvalidArgument("the gRPC server can be started only once");
  }
  const std::string requested = JoinHostPort(options_.address, options_.port);
  int bound_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(requested, grpc::InsecureServerCredentials(), &bound_port);
  builder.SetMaxReceiveMessageSize(options_.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_send_message_bytes);
  // Without this gRPC sets SO_REUSEPORT and a second server would silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(kserve_->service());
  builder.RegisterService(health_->service());
  const int threads = options_.threads > 0 ? options_.threads : DefaultGrpcThreads();
  queues_->AddTo(builder, threads);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    // The async service stays bound to the failed server: it cannot be registered again.
    stopped_ = true;
    queues_->Abandon(server.get());
    return Status::Unavailable("gRPC server cannot listen on " + requested +
                               " (address in use or not available)");
  }
  auto methods = kserve_->Methods(queues_->calls());
  for (auto& method : health_->Methods(queues_->calls())) methods.push_back(std::move(method));
  queues_->Run(std::move(methods));
  server_ = std::move(server);
  port_ = bound_port;
  started_ = true;
  spdlog::info("gRPC server listening on {} ({} thread(s))",
               JoinHostPort(options_.address, port_), threads);
  return Status::Ok();
}

void GrpcServer::Stop() {
  std::unique_ptr<grpc::Server> server;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    server = std::move(server_);
  }
  // Requests that arrive from now on (new RPCs, or new messages on open streams) are
  // refused; those already running go on.
  state_->accepting.store(false);
  if (server != nullptr) {
    // Waits for in-flight RPCs until the deadline, then cancels the rest; pending requests
    // come back unanswered and free their calls.
    server->Shutdown(std::chrono::system_clock::now() + options_.shutdown_grace);
    queues_->Stop();
    server.reset();
    spdlog::info("gRPC server on port {} stopped", port());
  }
  kserve_->StopWorkers();
}

int GrpcServer::port() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return port_;
}

std::string GrpcServer::target() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return JoinHostPort(options_.address, port_);
}

}  // namespace quiver::frontend
