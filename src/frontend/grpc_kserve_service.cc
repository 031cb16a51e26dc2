#include "frontend/grpc_kserve_service.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <string>
#include <utility>

#include "frontend/grpc_infer_stream.h"
#include "protocol/grpc_raw_contents.h"

namespace quiver::frontend {

using protocol::ToGrpcStatus;
using Async = GrpcKServeAsyncService;

Result<std::string> Authenticate(const GrpcFrontendState& state,
                                 const grpc::ServerContextBase& context) {
  if (!state.authenticator) return std::string();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  const std::string_view value = it == metadata.end()
                                     ? std::string_view()
                                     : std::string_view(it->second.data(), it->second.size());
  return state.authenticator(BearerToken(value));
}

grpc::Status ParseInferRequest(grpc::ByteBuffer bytes,
                               std::shared_ptr<inference::ModelInferRequest>& out) {
  out = std::make_shared<inference::ModelInferRequest>();
  return grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(&bytes, out.get());
}

GrpcKServeService::GrpcKServeService(GrpcFrontendState& state) : state_(state) {}

GrpcKServeService::~GrpcKServeService() { StopWorkers(); }

std::vector<std::unique_ptr<GrpcMethod>> GrpcKServeService::Methods(GrpcCallCounter& counter) {
  std::vector<std::unique_ptr<GrpcMethod>> methods;
  auto add = [&](auto request, auto handler) {
    methods.push_back(MakeUnaryMethod(&async_, request, handler, counter));
  };
  add(&Async::RequestServerLive, [this](auto& call) { ServerLive(call); });
  add(&Async::RequestServerReady, [this](auto& call) { ServerReady(call); });
  add(&Async::RequestModelReady, [this](auto& call) { ModelReady(call); });
  add(&Async::RequestServerMetadata, [this](auto& call) { ServerMetadata(call); });
  add(&Async::RequestModelMetadata, [this](auto& call) { ModelMetadata(call); });
  add(&Async::RequestModelInfer, [this](auto& call) { ModelInfer(call); });
  methods.back()->pending_per_queue = 4;  // the busy one: spare requests under concurrency
  add(&Async::RequestModelConfig, [this](auto& call) { ModelConfig(call); });
  add(&Async::RequestModelStatistics, [this](auto& call) { ModelStatistics(call); });
  add(&Async::RequestRepositoryIndex, [this](auto& call) { RepositoryIndex(call); });
  add(&Async::RequestRepositoryModelLoad, [this](auto& call) { RepositoryModelLoad(call); });
  add(&Async::RequestRepositoryModelUnload, [this](auto& call) { RepositoryModelUnload(call); });
  add(&Async::RequestSystemSharedMemoryStatus,
      [this](auto& call) { SystemSharedMemoryStatus(call); });
  add(&Async::RequestSystemSharedMemoryRegister,
      [this](auto& call) { SystemSharedMemoryRegister(call); });
  add(&Async::RequestSystemSharedMemoryUnregister,
      [this](auto& call) { SystemSharedMemoryUnregister(call); });
  add(&Async::RequestCudaSharedMemoryStatus, [this](auto& call) { CudaSharedMemoryStatus(call); });
  add(&Async::RequestCudaSharedMemoryRegister,
      [this](auto& call) { CudaSharedMemoryRegister(call); });
  add(&Async::RequestCudaSharedMemoryUnregister,
      [this](auto& call) { CudaSharedMemoryUnregister(call); });
  methods.push_back(std::make_unique<GrpcInferStreamMethod>(async_, state_, counter));
  return methods;
}

void GrpcKServeService::StopWorkers() {
  repository_.join();
  queries_.join();
}

template <class Req, class Resp>
bool GrpcKServeService::Denied(Call<Req, Resp>& call) {
  if (!state_.authenticator) return false;
  auto tenant = Authenticate(state_, call.context());
  if (tenant.ok()) return false;
  call.Finish(ToGrpcStatus(tenant.status()));
  return true;
}

void GrpcKServeService::ServerLive(
    Call<inference::ServerLiveRequest, inference::ServerLiveResponse>& call) {
  call.response().set_live(state_.service.Live());
  call.Finish(grpc::Status::OK);
}

void GrpcKServeService::ServerReady(
    Call<inference::ServerReadyRequest, inference::ServerReadyResponse>& call) {
  call.response().set_ready(state_.accepting.load() && state_.service.Ready());
  call.Finish(grpc::Status::OK);
}

void GrpcKServeService::ModelReady(
    Call<inference::ModelReadyRequest, inference::ModelReadyResponse>& call) {
  if (Denied(call)) return;
  const auto& request = call.request();
  call.response().set_ready(state_.service.ModelReady(request.name(), request.version()));
  call.Finish(grpc::Status::OK);
}

void GrpcKServeService::ServerMetadata(
    Call<inference::ServerMetadataRequest, inference::ServerMetadataResponse>& call) {
  if (Denied(call)) return;
  auto metadata = state_.service.GetServerMetadata();
  if (!metadata.ok()) return call.Finish(ToGrpcStatus(metadata.status()));
  // The shared-memory extension is this frontend's, whatever the service provides.
  auto& extensions = metadata->extensions;
  if (std::find(extensions.begin(), extensions.end(), "system_shared_memory") == extensions.end()) {
    extensions.push_back("system_shared_memory");
  }
  protocol::EncodeServerMetadata(*metadata, call.response());
  call.Finish(grpc::Status::OK);
}

void GrpcKServeService::ModelMetadata(
    Call<inference::ModelMetadataRequest, inference::ModelMetadataResponse>& call) {
  if (Denied(call)) return;
  boost::asio::post(queries_, [this, &call] {
    const auto& request = call.request();
    auto metadata = state_.service.GetModelMetadata(request.name(), request.version());
    if (!metadata.ok()) return call.Finish(ToGrpcStatus(metadata.status()));
    protocol::EncodeModelMetadata(*metadata, call.response());
    call.Finish(grpc::Status::OK);
  });
}

void GrpcKServeService::ModelInfer(Call<grpc::ByteBuffer, grpc::ByteBuffer>& call) {
  if (!state_.accepting.load()) {
    return call.Finish(ToGrpcStatus(Status::Unavailable("the server is shutting down")));
  }
  auto tenant = Authenticate(state_, call.context());
  if (!tenant.ok()) return call.Finish(ToGrpcStatus(tenant.status()));
  std::shared_ptr<inference::ModelInferRequest> message;
  grpc::Status parsed = ParseInferRequest(call.request(), message);
  if (!parsed.ok()) return call.Finish(parsed);
  auto decoded = protocol::DecodeInferRequest(std::move(message), &state_.shm);
  if (!decoded.ok()) return call.Finish(ToGrpcStatus(decoded.status()));
  decoded->request.tenant = std::move(tenant).value();
  decoded->request.caller_serves_io = true;

  // The call stays valid until its Finish; nothing touches it after that.
  state_.service.Infer(std::move(decoded->request),
                       [&call, shm_outputs = std::move(decoded->shm_outputs)](
                           Result<InferResponse> result) {
                         if (!result.ok()) return call.Finish(ToGrpcStatus(result.status()));
                         Status status = protocol::SerializeInferResponse(*result, shm_outputs,
                                                                          call.response());
                         if (!status.ok()) call.response().Clear();
                         call.Finish(ToGrpcStatus(status));
                       });
}

void GrpcKServeService::ModelConfig(
    Call<inference::ModelConfigRequest, inference::ModelConfigResponse>& call) {
  if (Denied(call)) return;
  boost::asio::post(queries_, [this, &call] {
    const auto& request = call.request();
    auto config = state_.service.GetModelConfig(request.name(), request.version());
    if (!config.ok()) return call.Finish(ToGrpcStatus(config.status()));
    *call.response().mutable_config() = std::move(config).value();
    call.Finish(grpc::Status::OK);
  });
}

void GrpcKServeService::ModelStatistics(
    Call<inference::ModelStatisticsRequest, inference::ModelStatisticsResponse>& call) {
  if (Denied(call)) return;
  boost::asio::post(queries_, [this, &call] {
    const auto& request = call.request();
    auto stats = state_.service.GetStatistics(request.name(), request.version());
    if (!stats.ok()) return call.Finish(ToGrpcStatus(stats.status()));
    protocol::EncodeStatistics(*stats, call.response());
    call.Finish(grpc::Status::OK);
  });
}

void GrpcKServeService::RepositoryIndex(
    Call<inference::RepositoryIndexRequest, inference::RepositoryIndexResponse>& call) {
  if (Denied(call)) return;
  boost::asio::post(queries_, [this, &call] {
    auto index = state_.service.Index();
    if (!index.ok()) return call.Finish(ToGrpcStatus(index.status()));
    protocol::EncodeRepositoryIndex(*index, call.request().ready(), call.response());
    call.Finish(grpc::Status::OK);
  });
}

void GrpcKServeService::RepositoryModelLoad(
    Call<inference::RepositoryModelLoadRequest, inference::RepositoryModelLoadResponse>& call) {
  if (Denied(call)) return;
  for (const auto& [key, value] : call.request().parameters()) {
    if (key == "config" || key.rfind("file:", 0) == 0) {
      return call.Finish(ToGrpcStatus(
          Status::Unsupported("load parameter '" + key + "' (model override) is not supported")));
    }
  }
  boost::asio::post(repository_, [this, &call] {
    call.Finish(ToGrpcStatus(state_.service.Load(call.request().model_name())));
  });
}

void GrpcKServeService::RepositoryModelUnload(
    Call<inference::RepositoryModelUnloadRequest, inference::RepositoryModelUnloadResponse>&
        call) {
  if (Denied(call)) return;
  boost::asio::post(repository_, [this, &call] {
    Status status = state_.service.Unload(call.request().model_name());
    // As Triton: unloading a model that is not loaded (or not known) succeeds.
    if (status.code() == StatusCode::kNotFound) status = Status::Ok();
    call.Finish(ToGrpcStatus(status));
  });
}

void GrpcKServeService::SystemSharedMemoryStatus(
    Call<inference::SystemSharedMemoryStatusRequest, inference::SystemSharedMemoryStatusResponse>&
        call) {
  if (Denied(call)) return;
  auto regions = state_.shm.Regions(call.request().name());
  if (!regions.ok()) return call.Finish(ToGrpcStatus(regions.status()));
  auto& out = *call.response().mutable_regions();
  for (const auto& r : *regions) {
    auto& status = out[r.name];
    status.set_name(r.name);
    status.set_key(r.key);
    status.set_offset(r.offset);
    status.set_byte_size(r.byte_size);
  }
  call.Finish(grpc::Status::OK);
}

void GrpcKServeService::SystemSharedMemoryRegister(
    Call<inference::SystemSharedMemoryRegisterRequest,
         inference::SystemSharedMemoryRegisterResponse>& call) {
  if (Denied(call)) return;
  const auto& request = call.request();
  call.Finish(ToGrpcStatus(state_.shm.RegisterSystem(request.name(), request.key(),
                                                     request.offset(), request.byte_size())));
}

void GrpcKServeService::SystemSharedMemoryUnregister(
    Call<inference::SystemSharedMemoryUnregisterRequest,
         inference::SystemSharedMemoryUnregisterResponse>& call) {
  if (Denied(call)) return;
  Status status = state_.shm.Unregister(call.request().name());
  // As Triton: unregistering a region that is not registered succeeds.
  if (status.code() == StatusCode::kNotFound) status = Status::Ok();
  call.Finish(ToGrpcStatus(status));
}

// This server has no CUDA: as a Triton built without GPU support, the status lists no region,
// unregistering succeeds (there is nothing to unregister) and registering is refused with
// Triton's words. Clients that clean up with unregister_cuda_shared_memory() keep working.
void GrpcKServeService::CudaSharedMemoryStatus(
    Call<inference::CudaSharedMemoryStatusRequest, inference::CudaSharedMemoryStatusResponse>&
        call) {
  if (Denied(call)) return;
  const std::string& name = call.request().name();
  if (name.empty()) return call.Finish(grpc::Status::OK);
  call.Finish(ToGrpcStatus(
      Status::NotFound("Unable to find cuda shared memory region: '" + name + "'")));
}

void GrpcKServeService::CudaSharedMemoryRegister(
    Call<inference::CudaSharedMemoryRegisterRequest, inference::CudaSharedMemoryRegisterResponse>&
        call) {
  if (Denied(call)) return;
  call.Finish(ToGrpcStatus(Status::InvalidArgument("failed to register CUDA shared memory region: '" +
                                                   call.request().name() +
                                                   "', GPUs not supported")));
}

void GrpcKServeService::CudaSharedMemoryUnregister(
    Call<inference::CudaSharedMemoryUnregisterRequest,
         inference::CudaSharedMemoryUnregisterResponse>& call) {
  if (Denied(call)) return;
  call.Finish(grpc::Status::OK);
}

}  // namespace quiver::frontend
