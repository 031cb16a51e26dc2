#pragma once
// GrpcKServeService: the handlers of inference.GRPCInferenceService over an InferenceService,
// on gRPC's completion-queue (async) API. GrpcFrontendState: what every handler of one server
// shares.

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <vector>

#include "frontend/authenticator.h"
#include "frontend/grpc_async_call.h"
#include "frontend/shared_memory.h"
#include "grpc_service.grpc.pb.h"
#include "protocol/grpc_codec.h"
#include "service/inference_service.h"

namespace quiver::frontend {

// Shared by the handlers of one GrpcServer. `accepting` turns false when Stop begins:
// from then on new inference requests, on new or open streams, get UNAVAILABLE.
struct GrpcFrontendState {
  GrpcFrontendState(InferenceService& s, SharedMemoryManager& m, bool ordered,
                    Authenticator auth = {})
      : service(s), shm(m), ordered_stream_responses(ordered), authenticator(std::move(auth)) {}

  InferenceService& service;
  SharedMemoryManager& shm;
  const bool ordered_stream_responses;
  const Authenticator authenticator;  // empty: auth off
  std::atomic<bool> accepting{true};
};

// The caller's tenant from the `authorization` metadata: "" with auth off (nothing is
// read); UNAUTHENTICATED when auth is on and the bearer token is missing or wrong.
Result<std::string> Authenticate(const GrpcFrontendState& state,
                                 const grpc::ServerContextBase& context);

// A serialised ModelInferRequest parsed as gRPC would for a typed method, into a message that
// decoded inputs can share (they borrow its raw contents). `bytes` shares the received slices.
grpc::Status ParseInferRequest(grpc::ByteBuffer bytes,
                               std::shared_ptr<inference::ModelInferRequest>& out);

// Every method of the service; ModelInfer and ModelStreamInfer are raw (ByteBuffers in and
// out): a request is parsed here into a shared message that decoded inputs borrow from, and a
// response is serialised straight from the output Buffers (protocol::SerializeInferResponse,
// SerializeStreamInferResponse), so tensor bytes are not copied into a response message. The
// wire format is the ordinary one.
using GrpcKServeAsyncService = inference::GRPCInferenceService::WithRawMethod_ModelStreamInfer<
    inference::GRPCInferenceService::WithRawMethod_ModelInfer<
        inference::GRPCInferenceService::AsyncService>>;

// Quick calls answer on the queue's thread; ModelInfer finishes from the InferenceService
// callback (on that same thread when the model runs at once). Calls that may block never
// hold a queue's thread, which serves every connection bound to its queue: Load/Unload (until
// a model is loaded) run on one worker thread; metadata, config, statistics and the index
// (a repository scan; a gateway waits there for a model or asks its upstreams) on a few others.
class GrpcKServeService {
 public:
  explicit GrpcKServeService(GrpcFrontendState& state);
  // Runs the queued work, then joins the workers.
  ~GrpcKServeService();
  GrpcKServeService(const GrpcKServeService&) = delete;
  GrpcKServeService& operator=(const GrpcKServeService&) = delete;

  // To register with the ServerBuilder.
  grpc::Service* service() { return &async_; }
  // Every method (ModelStreamInfer included), ready to arm on the server's queues. They
  // must outlive the calls they make; `counter` counts those calls.
  std::vector<std::unique_ptr<GrpcMethod>> Methods(GrpcCallCounter& counter);

  // Runs queued work to completion and joins the workers. Call after the grpc::Server has
  // shut down and its calls are done.
  void StopWorkers();

 private:
  template <class Req, class Resp>
  using Call = UnaryCall<Req, Resp>;

  void ServerLive(Call<inference::ServerLiveRequest, inference::ServerLiveResponse>& call);
  void ServerReady(Call<inference::ServerReadyRequest, inference::ServerReadyResponse>& call);
  void ModelReady(Call<inference::ModelReadyRequest, inference::ModelReadyResponse>& call);
  void ServerMetadata(
      Call<inference::ServerMetadataRequest, inference::ServerMetadataResponse>& call);
  void ModelMetadata(Call<inference::ModelMetadataRequest, inference::ModelMetadataResponse>& call);
  // request(): a serialised ModelInferRequest; response() receives the serialised
  // ModelInferResponse, which keeps shares of the output Buffers until gRPC has sent it.
  void ModelInfer(Call<grpc::ByteBuffer, grpc::ByteBuffer>& call);
  void ModelConfig(Call<inference::ModelConfigRequest, inference::ModelConfigResponse>& call);
  void ModelStatistics(
      Call<inference::ModelStatisticsRequest, inference::ModelStatisticsResponse>& call);
  void RepositoryIndex(
      Call<inference::RepositoryIndexRequest, inference::RepositoryIndexResponse>& call);
  void RepositoryModelLoad(
      Call<inference::RepositoryModelLoadRequest, inference::RepositoryModelLoadResponse>& call);
  void RepositoryModelUnload(
      Call<inference::RepositoryModelUnloadRequest, inference::RepositoryModelUnloadResponse>&
          call);
  void SystemSharedMemoryStatus(Call<inference::SystemSharedMemoryStatusRequest,
                                     inference::SystemSharedMemoryStatusResponse>& call);
  void SystemSharedMemoryRegister(Call<inference::SystemSharedMemoryRegisterRequest,
                                       inference::SystemSharedMemoryRegisterResponse>& call);
  void SystemSharedMemoryUnregister(Call<inference::SystemSharedMemoryUnregisterRequest,
                                         inference::SystemSharedMemoryUnregisterResponse>& call);
  void CudaSharedMemoryStatus(Call<inference::CudaSharedMemoryStatusRequest,
                                   inference::CudaSharedMemoryStatusResponse>& call);
  void CudaSharedMemoryRegister(Call<inference::CudaSharedMemoryRegisterRequest,
                                     inference::CudaSharedMemoryRegisterResponse>& call);
  void CudaSharedMemoryUnregister(Call<inference::CudaSharedMemoryUnregisterRequest,
                                       inference::CudaSharedMemoryUnregisterResponse>& call);

  // Finishes the call with UNAUTHENTICATED and returns true when the caller may not use it.
  template <class Req, class Resp>
  bool Denied(Call<Req, Resp>& call);

  GrpcFrontendState& state_;
  GrpcKServeAsyncService async_;
  // As HttpServer's blocking pool. Nothing is posted after StopWorkers: the server has
  // answered every call by then.
  boost::asio::thread_pool repository_{1};  // Load and Unload, one at a time
  boost::asio::thread_pool queries_{2};     // metadata, config, statistics, index
};

}  // namespace quiver::frontend
