#pragma once
// GrpcInferStream: one ModelStreamInfer call. Reads requests one after another, starts
// each on the InferenceService as soon as it is read (many in flight), and writes one
// ModelStreamInferResponse per request: the response, or error_message plus the request
// id. gRPC allows one write in flight per stream, so finished responses wait in a queue.
// Order: request order when GrpcFrontendState::ordered_stream_responses (Triton's
// behaviour for non-decoupled models), completion order otherwise.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "frontend/grpc_kserve_service.h"

namespace quiver::frontend {

// Owned by gRPC from construction to OnDone, where it deletes itself. Thread-safe: reads,
// writes and InferenceService callbacks arrive on any thread.
class GrpcInferStream final : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                             inference::ModelStreamInferResponse> {
 public:
  // `tenant`: the authenticated caller, set on every request of the stream.
  GrpcInferStream(GrpcFrontendState& state, std::string tenant);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  // Starts request `seq` (decode + Infer); its answer arrives through Complete.
  void Process(uint64_t seq, std::shared_ptr<const inference::ModelInferRequest> request);
  void Complete(uint64_t seq, inference::ModelStreamInferResponse response);
  // With mutex_ held: starts the next write if one may go, or finishes the call when
  // nothing is left. Releases the lock before calling into gRPC.
  void Pump(std::unique_lock<std::mutex>& lock);

  GrpcFrontendState& state_;
  const std::string tenant_;
  // The message the outstanding read fills; touched only by the constructor and
  // OnReadDone, which gRPC never runs concurrently.
  std::shared_ptr<inference::ModelInferRequest> reading_;

  std::mutex mutex_;
  uint64_t next_read_seq_ = 0;   // guarded by mutex_: sequence number of the next request
  uint64_t next_write_seq_ = 0;  // guarded by mutex_: next to write in ordered mode
  uint64_t in_flight_ = 0;       // guarded by mutex_: read but not yet completed
  std::map<uint64_t, inference::ModelStreamInferResponse> ready_;  // guarded by mutex_
  inference::ModelStreamInferResponse writing_msg_;                // the write in flight (writing_)
  bool writing_ = false;                                           // guarded by mutex_
  bool reads_done_ = false;    // guarded by mutex_: client half-closed or call ended
  bool write_failed_ = false;  // guarded by mutex_: client gone, drop the rest
  bool finished_ = false;      // guarded by mutex_: Finish called
};

}  // namespace quiver::frontend
