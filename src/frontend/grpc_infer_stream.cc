#include "frontend/grpc_infer_stream.h"

#include <utility>

#include "protocol/grpc_raw_contents.h"

namespace quiver::frontend {
namespace {

// The stream's way to report a failed request: the message and the request id (so the
// client knows which one failed), as Triton does.
grpc::ByteBuffer ErrorResponse(const std::string& id, const Status& status) {
  inference::ModelStreamInferResponse out;
  out.set_error_message(status.message());
  out.mutable_infer_response()->set_id(id);
  grpc::ByteBuffer bytes;
  bool own = false;
  // Serialising a message this small cannot fail short of memory exhaustion.
  (void)grpc::SerializationTraits<inference::ModelStreamInferResponse>::Serialize(out, &bytes,
                                                                                 &own);
  return bytes;
}

}  // namespace

void GrpcInferStreamMethod::Arm(grpc::ServerCompletionQueue* cq) { new GrpcInferStream(*this, cq); }

GrpcInferStream::GrpcInferStream(GrpcInferStreamMethod& method, grpc::ServerCompletionQueue* cq)
    : method_(method), state_(method.state_), cq_(cq), stream_(&context_) {
  method_.counter_.Add();
  method_.service_.RequestModelStreamInfer(&context_, &stream_, cq_, cq_, &arrived_tag_);
}

GrpcInferStream::~GrpcInferStream() { method_.counter_.Remove(); }

void GrpcInferStream::OnArrived(bool ok) {
  if (!ok) {  // shutting down: no stream arrived
    delete this;
    return;
  }
  method_.Arm(cq_);  // wait for the next stream while this one runs
  auto tenant = Authenticate(state_, context_);
  if (!tenant.ok()) {  // refused at its start: finish at once, read nothing
    {
      std::lock_guard<std::mutex> lock(mutex_);
      finished_ = true;
    }
    stream_.Finish(protocol::ToGrpcStatus(tenant.status()), &finish_tag_);
    return;
  }
  tenant_ = std::move(tenant).value();
  stream_.Read(&reading_, &read_tag_);
}

void GrpcInferStream::OnReadDone(bool ok) {
  if (!ok) {
    std::unique_lock<std::mutex> lock(mutex_);
    reads_done_ = true;
    Pump(lock);
    return;
  }
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    seq = next_read_seq_++;
    ++in_flight_;
  }
  std::shared_ptr<inference::ModelInferRequest> request;
  const bool parsed = ParseInferRequest(std::move(reading_), request).ok();
  // Read the next request while this one runs. in_flight_ > 0 keeps the call open.
  reading_.Clear();
  stream_.Read(&reading_, &read_tag_);
  if (!parsed) {
    Complete(seq, ErrorResponse("", Status::InvalidArgument(
                                        "stream message is not a valid ModelInferRequest")));
    return;
  }
  Process(seq, std::move(request));
}

void GrpcInferStream::Process(uint64_t seq,
                              std::shared_ptr<const inference::ModelInferRequest> request) {
  if (!state_.accepting.load()) {
    Complete(seq, ErrorResponse(request->id(), Status::Unavailable("the server is shutting down")));
    return;
  }
  auto decoded = protocol::DecodeInferRequest(request, &state_.shm);
  if (!decoded.ok()) {
    Complete(seq, ErrorResponse(request->id(), decoded.status()));
    return;
  }
  decoded->request.tenant = tenant_;
  decoded->request.caller_serves_io = true;
  state_.service.Infer(std::move(decoded->request), [this, seq, request,
                                                     shm_outputs = std::move(decoded->shm_outputs)](
                                                        Result<InferResponse> result) {
    grpc::ByteBuffer out;
    Status status = result.status();
    if (status.ok()) status = protocol::SerializeStreamInferResponse(*result, shm_outputs, out);
    if (!status.ok()) out = ErrorResponse(request->id(), status);
    Complete(seq, std::move(out));
  });
}

void GrpcInferStream::Complete(uint64_t seq, grpc::ByteBuffer response) {
  std::unique_lock<std::mutex> lock(mutex_);
  --in_flight_;
  if (!write_failed_) ready_.emplace(seq, std::move(response));
  Pump(lock);
  // Nothing may touch `this` from here: Pump may have finished the call.
}

void GrpcInferStream::OnWriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  writing_ = false;
  if (!ok) {
    // The client went away (or the server is cancelling): the remaining answers have
    // nowhere to go, but in-flight requests still complete before Finish.
    write_failed_ = true;
    ready_.clear();
  }
  Pump(lock);
}

void GrpcInferStream::Pump(std::unique_lock<std::mutex>& lock) {
  if (writing_ || finished_) return;
  if (!ready_.empty()) {
    auto next = ready_.begin();
    if (!state_.ordered_stream_responses || next->first == next_write_seq_) {
      writing_msg_ = std::move(next->second);
      ready_.erase(next);
      ++next_write_seq_;
      writing_ = true;
      lock.unlock();
      stream_.Write(writing_msg_, &write_tag_);
      return;
    }
    return;  // ordered: wait for the earlier request to complete
  }
  if (reads_done_ && in_flight_ == 0) {
    finished_ = true;
    const bool failed = write_failed_;
    lock.unlock();
    stream_.Finish(failed ? grpc::Status(grpc::StatusCode::CANCELLED, "the stream was cancelled")
                          : grpc::Status::OK,
                   &finish_tag_);
  }
}

// Finish was the call's last operation (no read or write is outstanding by then).
void GrpcInferStream::OnFinishDone(bool) { delete this; }

}  // namespace quiver::frontend
