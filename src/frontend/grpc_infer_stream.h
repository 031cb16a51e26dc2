#pragma once
// GrpcInferStream: one ModelStreamInfer call. Reads requests one after another, starts
// each on the InferenceService as soon as it is read (many in flight), and writes one
// ModelStreamInferResponse per request: the response, or error_message plus the request
// id. gRPC allows one write in flight per stream, so finished responses wait in a queue.
// Raw method: requests are parsed here, responses serialised from the output Buffers.
// Order: request order when GrpcFrontendState::ordered_stream_responses (Triton's
// behaviour for non-decoupled models), completion order otherwise.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "frontend/grpc_async_call.h"
#include "frontend/grpc_kserve_service.h"

namespace quiver::frontend {

// ModelStreamInfer as a GrpcMethod: each Arm waits for one more stream on the queue.
class GrpcInferStreamMethod final : public GrpcMethod {
 public:
  GrpcInferStreamMethod(GrpcKServeAsyncService& service, GrpcFrontendState& state,
                        GrpcCallCounter& counter)
      : service_(service), state_(state), counter_(counter) {}
  void Arm(grpc::ServerCompletionQueue* cq) override;

 private:
  friend class GrpcInferStream;
  GrpcKServeAsyncService& service_;
  GrpcFrontendState& state_;
  GrpcCallCounter& counter_;
};

// Owns itself from Arm until its Finish completes (or its request comes back unanswered at
// shutdown). Thread-safe: queue events arrive on the queue's thread, InferenceService
// callbacks on any thread.
class GrpcInferStream final {
 public:
  GrpcInferStream(GrpcInferStreamMethod& method, grpc::ServerCompletionQueue* cq);

 private:
  using Stream = grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;
  // A queue tag that forwards its event to one member function.
  struct Tag final : GrpcTag {
    Tag(GrpcInferStream* s, void (GrpcInferStream::*f)(bool)) : stream(s), on(f) {}
    void Proceed(bool ok) override { (stream->*on)(ok); }
    GrpcInferStream* const stream;
    void (GrpcInferStream::*const on)(bool);
  };

  ~GrpcInferStream();
  void OnArrived(bool ok);
  void OnReadDone(bool ok);
  void OnWriteDone(bool ok);
  void OnFinishDone(bool ok);
  // Starts request `seq` (decode + Infer); its answer arrives through Complete.
  void Process(uint64_t seq, std::shared_ptr<const inference::ModelInferRequest> request);
  void Complete(uint64_t seq, grpc::ByteBuffer response);
  // With mutex_ held: starts the next write if one may go, or finishes the call when
  // nothing is left. Releases the lock before calling into gRPC.
  void Pump(std::unique_lock<std::mutex>& lock);

  GrpcInferStreamMethod& method_;
  GrpcFrontendState& state_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  Stream stream_;
  Tag arrived_tag_{this, &GrpcInferStream::OnArrived};
  Tag read_tag_{this, &GrpcInferStream::OnReadDone};
  Tag write_tag_{this, &GrpcInferStream::OnWriteDone};
  Tag finish_tag_{this, &GrpcInferStream::OnFinishDone};
  std::string tenant_;  // set on arrival, before the first read
  // The serialised request the outstanding read fills; touched only on arrival and in
  // OnReadDone, with one read outstanding at a time.
  grpc::ByteBuffer reading_;

  std::mutex mutex_;
  uint64_t next_read_seq_ = 0;   // guarded by mutex_: sequence number of the next request
  uint64_t next_write_seq_ = 0;  // guarded by mutex_: next to write in ordered mode
  uint64_t in_flight_ = 0;       // guarded by mutex_: read but not yet completed
  std::map<uint64_t, grpc::ByteBuffer> ready_;  // guarded by mutex_: serialised responses
  grpc::ByteBuffer writing_msg_;                // the write in flight (writing_)
  bool writing_ = false;                                           // guarded by mutex_
  bool reads_done_ = false;    // guarded by mutex_: client half-closed or call ended
  bool write_failed_ = false;  // guarded by mutex_: client gone, drop the rest
  bool finished_ = false;      // guarded by mutex_: Finish called
};

}  // namespace quiver::frontend
