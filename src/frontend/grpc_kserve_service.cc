#include "frontend/grpc_kserve_service.h"

#include <algorithm>
#include <string>
#include <utility>

#include "frontend/grpc_infer_stream.h"
#include "protocol/grpc_raw_contents.h"

namespace quiver::frontend {
namespace {

using protocol::ToGrpcStatus;

// Finishes a unary RPC with gRPC's default reactor.
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, const Status& status) {
  return Reply(context, ToGrpcStatus(status));
}

grpc::ServerUnaryReactor* ReplyOk(grpc::CallbackServerContext* context) {
  return Reply(context, grpc::Status::OK);
}

// Finishes the call with UNAUTHENTICATED and returns its reactor when the caller may not
// use the RPC; nullptr when it may.
grpc::ServerUnaryReactor* Deny(const GrpcFrontendState& state,
                               grpc::CallbackServerContext* context) {
  if (!state.authenticator) return nullptr;
  auto tenant = Authenticate(state, context);
  return tenant.ok() ? nullptr : Reply(context, tenant.status());
}

// A stream refused at its start: finishes at once with `status`, reads nothing.
class RefusedStream final : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                           inference::ModelStreamInferResponse> {
 public:
  explicit RefusedStream(const Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

Result<std::string> Authenticate(const GrpcFrontendState& state,
                                 const grpc::CallbackServerContext* context) {
  if (!state.authenticator) return std::string();
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  const std::string_view value = it == metadata.end()
                                     ? std::string_view()
                                     : std::string_view(it->second.data(), it->second.size());
  return state.authenticator(BearerToken(value));
}

GrpcKServeService::GrpcKServeService(GrpcFrontendState& state) : state_(state) {
  worker_ = std::thread([this] { WorkerLoop(); });
}

GrpcKServeService::~GrpcKServeService() { StopWorker(); }

void GrpcKServeService::StopWorker() {
  {
    std::lock_guard<std::mutex> lock(worker_mutex_);
    worker_stopping_ = true;
  }
  worker_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void GrpcKServeService::RunBlocking(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(worker_mutex_);
    if (!worker_stopping_) {
      work_.push_back(std::move(work));
      worker_cv_.notify_one();
      return;
    }
  }
  work();
}

void GrpcKServeService::WorkerLoop() {
  std::unique_lock<std::mutex> lock(worker_mutex_);
  for (;;) {
    worker_cv_.wait(lock, [this] { return worker_stopping_ || !work_.empty(); });
    if (work_.empty()) return;  // stopping and drained
    auto work = std::move(work_.front());
    work_.pop_front();
    lock.unlock();
    work();
    lock.lock();
  }
}

grpc::ServerUnaryReactor* GrpcKServeService::ServerLive(grpc::CallbackServerContext* context,
                                                        const inference::ServerLiveRequest*,
                                                        inference::ServerLiveResponse* response) {
  response->set_live(state_.service.Live());
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::ServerReady(grpc::CallbackServerContext* context,
                                                         const inference::ServerReadyRequest*,
                                                         inference::ServerReadyResponse* response) {
  response->set_ready(state_.accepting.load() && state_.service.Ready());
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::ModelReady(grpc::CallbackServerContext* context,
                                                        const inference::ModelReadyRequest* request,
                                                        inference::ModelReadyResponse* response) {
  if (auto* denied = Deny(state_, context)) return denied;
  response->set_ready(state_.service.ModelReady(request->name(), request->version()));
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (auto* denied = Deny(state_, context)) return denied;
  auto metadata = state_.service.GetServerMetadata();
  if (!metadata.ok()) return Reply(context, metadata.status());
  // The shared-memory extension is this frontend's, whatever the service provides.
  auto& extensions = metadata->extensions;
  if (std::find(extensions.begin(), extensions.end(), "system_shared_memory") == extensions.end()) {
    extensions.push_back("system_shared_memory");
  }
  protocol::EncodeServerMetadata(*metadata, *response);
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (auto* denied = Deny(state_, context)) return denied;
  auto metadata = state_.service.GetModelMetadata(request->name(), request->version());
  if (!metadata.ok()) return Reply(context, metadata.status());
  protocol::EncodeModelMetadata(*metadata, *response);
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::ModelInfer(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  if (!state_.accepting.load()) {
    return Reply(context, Status::Unavailable("the server is shutting down"));
  }
  auto tenant = Authenticate(state_, context);
  if (!tenant.ok()) return Reply(context, tenant.status());
  // Parse as gRPC would for a typed method, into a message that decoded inputs can share.
  auto message = std::make_shared<inference::ModelInferRequest>();
  {
    grpc::ByteBuffer bytes(*request);  // shares the slices, no copy; parsing consumes it
    grpc::Status parsed =
        grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(&bytes, message.get());
    if (!parsed.ok()) return Reply(context, parsed);
  }
  auto decoded = protocol::DecodeInferRequest(std::move(message), &state_.shm);
  if (!decoded.ok()) return Reply(context, decoded.status());
  decoded->request.tenant = std::move(tenant).value();

  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `response` and `reactor` stay valid until Finish; nothing touches them after it.
  state_.service.Infer(std::move(decoded->request), [reactor, response,
                                                     shm_outputs = std::move(decoded->shm_outputs)](
                                                        Result<InferResponse> result) {
    if (!result.ok()) {
      reactor->Finish(ToGrpcStatus(result.status()));
      return;
    }
    Status status = protocol::SerializeInferResponse(*result, shm_outputs, *response);
    if (!status.ok()) response->Clear();
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
GrpcKServeService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  auto tenant = Authenticate(state_, context);
  if (!tenant.ok()) return new RefusedStream(tenant.status());
  return new GrpcInferStream(state_, std::move(tenant).value());
}

grpc::ServerUnaryReactor* GrpcKServeService::ModelConfig(
    grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  if (auto* denied = Deny(state_, context)) return denied;
  auto config = state_.service.GetModelConfig(request->name(), request->version());
  if (!config.ok()) return Reply(context, config.status());
  *response->mutable_config() = std::move(config).value();
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  if (auto* denied = Deny(state_, context)) return denied;
  auto stats = state_.service.GetStatistics(request->name(), request->version());
  if (!stats.ok()) return Reply(context, stats.status());
  protocol::EncodeStatistics(*stats, *response);
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  if (auto* denied = Deny(state_, context)) return denied;
  auto index = state_.service.Index();
  if (!index.ok()) return Reply(context, index.status());
  protocol::EncodeRepositoryIndex(*index, request->ready(), *response);
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  if (auto* denied = Deny(state_, context)) return denied;
  for (const auto& [key, value] : request->parameters()) {
    if (key == "config" || key.rfind("file:", 0) == 0) {
      return Reply(context, Status::Unsupported("load parameter '" + key +
                                                "' (model override) is not supported"));
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RunBlocking([this, reactor, model = request->model_name()] {
    reactor->Finish(ToGrpcStatus(state_.service.Load(model)));
  });
  return reactor;
}

grpc::ServerUnaryReactor* GrpcKServeService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  if (auto* denied = Deny(state_, context)) return denied;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RunBlocking([this, reactor, model = request->model_name()] {
    Status status = state_.service.Unload(model);
    // As Triton: unloading a model that is not loaded (or not known) succeeds.
    if (status.code() == StatusCode::kNotFound) status = Status::Ok();
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* GrpcKServeService::SystemSharedMemoryStatus(
    grpc::CallbackServerContext* context, const inference::SystemSharedMemoryStatusRequest* request,
    inference::SystemSharedMemoryStatusResponse* response) {
  if (auto* denied = Deny(state_, context)) return denied;
  auto regions = state_.shm.Regions(request->name());
  if (!regions.ok()) return Reply(context, regions.status());
  auto& out = *response->mutable_regions();
  for (const auto& r : *regions) {
    auto& status = out[r.name];
    status.set_name(r.name);
    status.set_key(r.key);
    status.set_offset(r.offset);
    status.set_byte_size(r.byte_size);
  }
  return ReplyOk(context);
}

grpc::ServerUnaryReactor* GrpcKServeService::SystemSharedMemoryRegister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryRegisterRequest* request,
    inference::SystemSharedMemoryRegisterResponse*) {
  if (auto* denied = Deny(state_, context)) return denied;
  return Reply(context, state_.shm.RegisterSystem(request->name(), request->key(),
                                                  request->offset(), request->byte_size()));
}

grpc::ServerUnaryReactor* GrpcKServeService::SystemSharedMemoryUnregister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryUnregisterRequest* request,
    inference::SystemSharedMemoryUnregisterResponse*) {
  if (auto* denied = Deny(state_, context)) return denied;
  Status status = state_.shm.Unregister(request->name());
  // As Triton: unregistering a region that is not registered succeeds.
  if (status.code() == StatusCode::kNotFound) status = Status::Ok();
  return Reply(context, status);
}

// This server has no CUDA: as a Triton built without GPU support, the status lists no region,
// unregistering succeeds (there is nothing to unregister) and registering is refused with
// Triton's words. Clients that clean up with unregister_cuda_shared_memory() keep working.
grpc::ServerUnaryReactor* GrpcKServeService::CudaSharedMemoryStatus(
    grpc::CallbackServerContext* context, const inference::CudaSharedMemoryStatusRequest* request,
    inference::CudaSharedMemoryStatusResponse*) {
  if (auto* denied = Deny(state_, context)) return denied;
  if (request->name().empty()) return ReplyOk(context);
  return Reply(context, Status::NotFound("Unable to find cuda shared memory region: '" +
                                         request->name() + "'"));
}

grpc::ServerUnaryReactor* GrpcKServeService::CudaSharedMemoryRegister(
    grpc::CallbackServerContext* context, const inference::CudaSharedMemoryRegisterRequest* request,
    inference::CudaSharedMemoryRegisterResponse*) {
  if (auto* denied = Deny(state_, context)) return denied;
  return Reply(context, Status::InvalidArgument("failed to register CUDA shared memory region: '" +
                                                request->name() + "', GPUs not supported"));
}

grpc::ServerUnaryReactor* GrpcKServeService::CudaSharedMemoryUnregister(
    grpc::CallbackServerContext* context, const inference::CudaSharedMemoryUnregisterRequest*,
    inference::CudaSharedMemoryUnregisterResponse*) {
  if (auto* denied = Deny(state_, context)) return denied;
  return ReplyOk(context);
}

}  // namespace quiver::frontend
