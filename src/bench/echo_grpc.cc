#include "bench/echo_grpc.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <limits>
#include <utility>

#include "frontend/grpc_async_call.h"
#include "frontend/grpc_queue_threads.h"
#include "frontend/grpc_server.h"
#include "grpc_service.grpc.pb.h"
#include "protocol/grpc_codec.h"

namespace quiver::bench {
namespace {

using Async = inference::GRPCInferenceService::AsyncService;
using frontend::GrpcCallCounter;
using frontend::GrpcMethod;
using frontend::UnaryCall;

// ModelStreamInfer is not provided: each stream is answered UNIMPLEMENTED at once.
class RefusedStream final : public frontend::GrpcTag {
 public:
  RefusedStream(Async& service, grpc::ServerCompletionQueue* cq, GrpcCallCounter& counter)
      : service_(service), cq_(cq), counter_(counter), stream_(&context_) {
    counter_.Add();
    service_.RequestModelStreamInfer(&context_, &stream_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    if (arrived_ || !ok) {
      delete this;
      return;
    }
    arrived_ = true;
    new RefusedStream(service_, cq_, counter_);
    stream_.Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not provided by the echo server"),
                   this);
  }

 private:
  ~RefusedStream() { counter_.Remove(); }
  Async& service_;
  grpc::ServerCompletionQueue* const cq_;
  GrpcCallCounter& counter_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>
      stream_;
  bool arrived_ = false;  // queue thread only
};

class RefusedStreamMethod final : public GrpcMethod {
 public:
  RefusedStreamMethod(Async& service, GrpcCallCounter& counter)
      : service_(service), counter_(counter) {}
  void Arm(grpc::ServerCompletionQueue* cq) override { new RefusedStream(service_, cq, counter_); }

 private:
  Async& service_;
  GrpcCallCounter& counter_;
};

}  // namespace

// The handlers run on the queue's thread and answer at once, as frontend::GrpcServer's quick
// calls do: the same async API, queues and threads.
class EchoGrpcService {
 public:
  explicit EchoGrpcService(EchoModel& model) : model_(model) {}

  grpc::Service* service() { return &async_; }

  std::vector<std::unique_ptr<GrpcMethod>> Methods(GrpcCallCounter& counter) {
    std::vector<std::unique_ptr<GrpcMethod>> methods;
    auto add = [&](auto request, auto handler) {
      methods.push_back(frontend::MakeUnaryMethod(&async_, request, handler, counter));
    };
    auto refuse = [](auto& call) {
      call.Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not provided by the echo server"));
    };
    add(&Async::RequestServerLive, [this](auto& call) { ServerLive(call); });
    add(&Async::RequestServerReady, [this](auto& call) { ServerReady(call); });
    add(&Async::RequestServerMetadata, [this](auto& call) { ServerMetadata(call); });
    add(&Async::RequestModelReady, [this](auto& call) { ModelReady(call); });
    add(&Async::RequestModelMetadata, [this](auto& call) { ModelMetadata(call); });
    add(&Async::RequestModelConfig, [this](auto& call) { ModelConfig(call); });
    add(&Async::RequestModelStatistics, [this](auto& call) { ModelStatistics(call); });
    add(&Async::RequestModelInfer, [this](auto& call) { ModelInfer(call); });
    methods.back()->pending_per_queue = 4;  // as the frontend's
    add(&Async::RequestRepositoryIndex, refuse);
    add(&Async::RequestRepositoryModelLoad, refuse);
    add(&Async::RequestRepositoryModelUnload, refuse);
    add(&Async::RequestSystemSharedMemoryStatus, refuse);
    add(&Async::RequestSystemSharedMemoryRegister, refuse);
    add(&Async::RequestSystemSharedMemoryUnregister, refuse);
    add(&Async::RequestCudaSharedMemoryStatus, refuse);
    add(&Async::RequestCudaSharedMemoryRegister, refuse);
    add(&Async::RequestCudaSharedMemoryUnregister, refuse);
    methods.push_back(std::make_unique<RefusedStreamMethod>(async_, counter));
    return methods;
  }

 private:
  template <class Req, class Resp>
  using Call = UnaryCall<Req, Resp>;

  void ServerLive(Call<inference::ServerLiveRequest, inference::ServerLiveResponse>& call) {
    call.response().set_live(true);
    call.Finish(grpc::Status::OK);
  }

  void ServerReady(Call<inference::ServerReadyRequest, inference::ServerReadyResponse>& call) {
    call.response().set_ready(true);
    call.Finish(grpc::Status::OK);
  }

  void ServerMetadata(
      Call<inference::ServerMetadataRequest, inference::ServerMetadataResponse>& call) {
    call.response().set_name("quiver_echo_server");
    call.response().set_version("0");
    call.Finish(grpc::Status::OK);
  }

  void ModelReady(Call<inference::ModelReadyRequest, inference::ModelReadyResponse>& call) {
    call.response().set_ready(Find(call.request().name(), call.request().version()).ok());
    call.Finish(grpc::Status::OK);
  }

  void ModelMetadata(Call<inference::ModelMetadataRequest, inference::ModelMetadataResponse>& call) {
    grpc::Status found = Find(call.request().name(), call.request().version());
    if (found.ok()) protocol::EncodeModelMetadata(model_.metadata(), call.response());
    call.Finish(found);
  }

  void ModelConfig(Call<inference::ModelConfigRequest, inference::ModelConfigResponse>& call) {
    grpc::Status found = Find(call.request().name(), call.request().version());
    if (found.ok()) *call.response().mutable_config() = model_.config();
    call.Finish(found);
  }

  void ModelStatistics(
      Call<inference::ModelStatisticsRequest, inference::ModelStatisticsResponse>& call) {
    const auto& request = call.request();
    // As Triton: an empty name means every model.
    grpc::Status found =
        request.name().empty() ? grpc::Status::OK : Find(request.name(), request.version());
    if (found.ok()) {
      const quiver::ModelStatistics stats = model_.Statistics();
      protocol::EncodeStatistics({&stats, 1}, call.response());
    }
    call.Finish(found);
  }

  void ModelInfer(Call<inference::ModelInferRequest, inference::ModelInferResponse>& call) {
    const auto& request = call.request();
    grpc::Status status = Find(request.model_name(), request.model_version());
    if (status.ok()) status = Echo(request, call.response());
    if (status.ok()) {
      model_.CountRequest();
    } else {
      call.response().Clear();
    }
    call.Finish(status);
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
  Async async_;
};

EchoGrpcServer::EchoGrpcServer(EchoModel& model, std::string address, int port)
    : address_(std::move(address)),
      requested_port_(port),
      service_(std::make_unique<EchoGrpcService>(model)),
      queues_(std::make_unique<frontend::GrpcQueueThreads>()) {}

EchoGrpcServer::~EchoGrpcServer() { Stop(); }

Status EchoGrpcServer::Start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (started_) return Status::InvalidArgument("the echo gRPC server can be started only once");
  const std::string requested = frontend::JoinHostPort(address_, requested_port_);
  int bound_port = 0;
  // frontend::GrpcServer's settings: no message size limit, no SO_REUSEPORT, as many queue
  // threads.
  grpc::ServerBuilder builder;
  builder.AddListeningPort(requested, grpc::InsecureServerCredentials(), &bound_port);
  builder.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
  builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(service_->service());
  queues_->AddTo(builder, frontend::DefaultGrpcThreads());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  started_ = true;  // even on failure: the async service stays bound to the failed server
  if (server == nullptr || bound_port == 0) {
    queues_->Abandon(server.get());
    return Status::Unavailable("echo gRPC server cannot listen on " + requested);
  }
  queues_->Run(service_->Methods(queues_->calls()));
  server_ = std::move(server);
  port_ = bound_port;
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
  queues_->Stop();
  server.reset();  // before its queues
}

int EchoGrpcServer::port() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return port_;
}

}  // namespace quiver::bench
