#pragma once
// Conversions between the KServe v2 gRPC messages (proto/grpc_service.proto) and
// Quiver's service types, shared by the gRPC server and the gRPC client. Status ->
// grpc::Status goes through the one mapping, quiver::GrpcCodeFor.
//
// Thread safety: every function is reentrant; none keeps state.

#include <grpcpp/support/status.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "grpc_service.pb.h"
#include "protocol/shared_memory_ref.h"
#include "service/inference_service.h"

namespace quiver::protocol {

// A requested output the client wants written into shared memory instead of the
// response message.
struct SharedMemoryOutput {
  std::string name;
  std::string region;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
  Buffer target;  // writable view of [offset, offset + byte_size) of the region
};

// A request ready for InferenceService::Infer, plus what EncodeInferResponse needs.
struct DecodedInferRequest {
  InferRequest request;
  std::vector<SharedMemoryOutput> shm_outputs;
};

// Decodes a ModelInferRequest.
//   - raw_input_contents: zero-copy. Each input Buffer points into *message and holds a
//     share of `message` as keepalive.
//   - typed `contents`: zero-copy where the repeated field already has the tensor's
//     layout (BOOL, INT32, INT64, UINT32, UINT64, FP32, FP64); packed into a fresh
//     little-endian buffer for INT8/16, UINT8/16 and BYTES (4-byte length prefixes).
//   - shared memory (input parameters shared_memory_region/offset/byte_size): a view
//     from `shm`; requested outputs with those parameters are resolved now and returned
//     in shm_outputs.
//   - request parameters: "priority" (int64 >= 0 or uint64) and "timeout" (int64 >= 0,
//     microseconds); sequence and custom parameters are ignored.
// Errors: INVALID_ARGUMENT naming the tensor for malformed input (unknown datatype,
// negative dimension, typed and raw data together, typed contents of the wrong kind or
// count, byte size that does not match the shape, more or fewer raw_input_contents
// than inputs needing them, bad parameter types); UNSUPPORTED for shared memory when
// `shm` is null and for classification outputs; errors of `shm` unchanged.
Result<DecodedInferRequest> DecodeInferRequest(
    std::shared_ptr<const inference::ModelInferRequest> message, const SharedMemoryResolver* shm);

// Fills `out` (expected empty) from `response`. Outputs listed in `shm_outputs` are
// copied into their region, reported with the shared_memory_* parameters (byte size =
// the output's size) and an empty raw_output_contents entry, which keeps the raw entries
// aligned with `outputs` as Triton's clients expect. Other outputs are copied into
// raw_output_contents. INVALID_ARGUMENT when an output does not fit its region.
Status EncodeInferResponse(const InferResponse& response,
                           std::span<const SharedMemoryOutput> shm_outputs,
                           inference::ModelInferResponse& out);

// The same without tensor bytes: fills `out` (expected empty) except raw_output_contents
// and sets `raw` to the buffers that belong there, index-aligned with `outputs` (shares of
// the output Buffers, no copy; an empty Buffer for each shared-memory output). On error
// `out` and `raw` are partly filled.
Status EncodeInferResponseHeader(const InferResponse& response,
                                 std::span<const SharedMemoryOutput> shm_outputs,
                                 inference::ModelInferResponse& out, std::vector<Buffer>& raw);

// Client side: `request` as a message with every input in raw_input_contents (one copy
// per input into the message).
void EncodeInferRequest(const InferRequest& request, inference::ModelInferRequest& out);
// Client side: `request` as a message without tensor bytes. Inputs whose entry in `shm`
// (index-aligned with request.inputs; may be shorter, even empty) names a region carry the
// shared_memory_* parameters; every other input needs one raw_input_contents entry, in
// input order, which the caller appends: EncodeInferRequest copies them into the message,
// the gRPC client serialises them straight from the tensors (no copy).
void EncodeInferRequestHeader(const InferRequest& request, std::span<const SharedMemoryRef> shm,
                              inference::ModelInferRequest& out);
// Client side: decodes a response; raw outputs borrow from *message (zero-copy), typed
// contents are packed as in DecodeInferRequest. INVALID_ARGUMENT for malformed outputs.
Result<InferResponse> DecodeInferResponse(
    std::shared_ptr<const inference::ModelInferResponse> message);

// Status <-> grpc::Status through GrpcCodeFor / StatusCodeFromGrpc.
grpc::Status ToGrpcStatus(const Status& status);
Status FromGrpcStatus(const grpc::Status& status);

// Metadata, index and statistics, both directions.
void EncodeServerMetadata(const ServerMetadata& metadata, inference::ServerMetadataResponse& out);
ServerMetadata DecodeServerMetadata(const inference::ServerMetadataResponse& message);
void EncodeModelMetadata(const ModelMetadata& metadata, inference::ModelMetadataResponse& out);
ModelMetadata DecodeModelMetadata(const inference::ModelMetadataResponse& message);
// `ready_only`: keep only entries in state READY (RepositoryIndexRequest.ready).
void EncodeRepositoryIndex(const RepositoryIndex& index, bool ready_only,
                           inference::RepositoryIndexResponse& out);
RepositoryIndex DecodeRepositoryIndex(const inference::RepositoryIndexResponse& message);
void EncodeStatistics(std::span<const ModelStatistics> stats,
                      inference::ModelStatisticsResponse& out);
std::vector<ModelStatistics> DecodeStatistics(const inference::ModelStatisticsResponse& message);

}  // namespace quiver::protocol
