#pragma once
// GrpcKServeService: the handlers of inference.GRPCInferenceService (callback API) over
// an InferenceService. GrpcFrontendState: what every handler of one server shares.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "frontend/authenticator.h"
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
                                 const grpc::CallbackServerContext* context);

// Every RPC of the service. Quick calls answer inline on the gRPC thread; ModelInfer
// finishes from the InferenceService callback; Load/Unload (which block until a model is
// loaded) run on one worker thread so they never hold a gRPC thread.
//
// ModelInfer is a raw method (ByteBuffer in and out): the request is parsed here into a
// shared message that decoded inputs borrow from, and the response is serialised straight
// from the output Buffers (protocol::SerializeInferResponse), so tensor bytes are not copied
// into the response message. The wire format is the ordinary ModelInferResponse.
class GrpcKServeService final
    : public inference::GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
          inference::GRPCInferenceService::CallbackService> {
 public:
  explicit GrpcKServeService(GrpcFrontendState& state);
  // Runs the queued Load/Unload work, then joins the worker.
  ~GrpcKServeService() override;

  // Runs queued work to completion and joins the worker; later work runs inline.
  // Call after the grpc::Server has shut down.
  void StopWorker();

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  // `request`: a serialised ModelInferRequest; `response` receives the serialised
  // ModelInferResponse, which keeps shares of the output Buffers until gRPC has sent it.
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryStatusRequest* request,
      inference::SystemSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryRegisterRequest* request,
      inference::SystemSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryUnregisterRequest* request,
      inference::SystemSharedMemoryUnregisterResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryStatus(
      grpc::CallbackServerContext* context, const inference::CudaSharedMemoryStatusRequest* request,
      inference::CudaSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryRegisterRequest* request,
      inference::CudaSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryUnregisterRequest* request,
      inference::CudaSharedMemoryUnregisterResponse* response) override;

 private:
  // Runs `work` on the worker thread (inline once the worker has stopped).
  void RunBlocking(std::function<void()> work);
  void WorkerLoop();

  GrpcFrontendState& state_;

  std::mutex worker_mutex_;
  std::condition_variable worker_cv_;
  std::deque<std::function<void()>> work_;  // guarded by worker_mutex_
  bool worker_stopping_ = false;            // guarded by worker_mutex_
  std::thread worker_;
};

}  // namespace quiver::frontend
