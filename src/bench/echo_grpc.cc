#include "bench/echo_grpc.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <limits>
#include <utility>

#include "grpc_service.grpc.pb.h"
#include "protocol/grpc_codec.h"

namespace quiver::bench {
namespace {

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

}  // namespace

class EchoGrpcService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit EchoGrpcService(EchoModel& model) : model_(model) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return Reply(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* response) override {
    response->set_ready(true);
    return Reply(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* response) override {
    response->set_name("quiver_echo_server");
    response->set_version("0");
    return Reply(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override {
    response->set_ready(Find(request->name(), request->version()).ok());
    return Reply(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override {
    grpc::Status found = Find(request->name(), request->version());
    if (found.ok()) protocol::EncodeModelMetadata(model_.metadata(), *response);
    return Reply(context, found);
  }

  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override {
    grpc::Status found = Find(request->name(), request->version());
    if (found.ok()) *response->mutable_config() = model_.config();
    return Reply(context, found);
  }

  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override {
    // As Triton: an empty name means every model.
    grpc::Status found =
        request->name().empty() ? grpc::Status::OK : Find(request->name(), request->version());
    if (found.ok()) {
      const quiver::ModelStatistics stats = model_.Statistics();
      protocol::EncodeStatistics({&stats, 1}, *response);
    }
    return Reply(context, found);
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    grpc::Status status = Find(request->model_name(), request->model_version());
    if (status.ok()) status = Echo(*request, *response);
    if (status.ok()) {
      model_.CountRequest();
    } else {
      response->Clear();
    }
    return Reply(context, status);
  }

 private:
  grpc::Status Find(const std::string& name, const std::string& version) const {
    if (name == model_.name() && model_.HasVersion(version)) return grpc::Status::OK;
    return {grpc::StatusCode::NOT_FOUND,
            "Request for unknown model: '" + name + "' version '" + version + "' is not found"};
  }

  // Inputs become outputs in order; raw bytes are copied once into the response (as the
  // frontend's encoder does for identity outputs).
  grpc::Status Echo(const inference::ModelInferRequest& request,
                    inference::ModelInferResponse& response) const {
    const int raw = request.raw_input_contents_size();
    if (raw != 0 && raw != request.inputs_size()) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "expected one raw_input_contents per input, got " + std::to_string(raw) + " for " +
                  std::to_string(request.inputs_size()) + " inputs"};
    }
    response.set_model_name(model_.name());
    response.set_model_version(model_.version());
    response.set_id(request.id());
    for (int i = 0; i < request.inputs_size(); ++i) {
      const auto& in = request.inputs(i);
      if (!in.parameters().empty()) {
        return {grpc::StatusCode::UNIMPLEMENTED,
                "quiver_echo_server: input parameters (shared memory) are not supported"};
      }
      auto* out = response.add_outputs();
      out->set_name(EchoModel::OutputName(in.name()));
      out->set_datatype(in.datatype());
      *out->mutable_shape() = in.shape();
      if (in.has_contents()) *out->mutable_contents() = in.contents();
      if (raw != 0) response.add_raw_output_contents(request.raw_input_contents(i));
    }
    return grpc::Status::OK;
  }

  EchoModel& model_;
};

EchoGrpcServer::EchoGrpcServer(EchoModel& model, std::string address, int port)
    : address_(std::move(address)),
      requested_port_(port),
      service_(std::make_unique<EchoGrpcService>(model)) {}

EchoGrpcServer::~EchoGrpcServer() { Stop(); }

Status EchoGrpcServer::Start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (started_) return Status::InvalidArgument("the echo gRPC server can be started only once");
  const std::string requested = JoinHostPort(address_, requested_port_);
  int bound_port = 0;
  // frontend::GrpcServer's settings: no message size limit, no SO_REUSEPORT.
  grpc::ServerBuilder builder;
  builder.AddListeningPort(requested, grpc::InsecureServerCredentials(), &bound_port);
  builder.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
  builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(service_.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    return Status::Unavailable("echo gRPC server cannot listen on " + requested);
  }
  server_ = std::move(server);
  port_ = bound_port;
  started_ = true;
  return Status::Ok();
}

void EchoGrpcServer::Stop() {
  std::unique_ptr<grpc::Server> server;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    server = std::move(server_);
  }
  if (server == nullptr) return;
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
}

int EchoGrpcServer::port() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return port_;
}

}  // namespace quiver::bench
