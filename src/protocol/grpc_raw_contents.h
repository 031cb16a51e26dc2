#pragma once
// Serialising a KServe message whose tensor bytes travel without a copy: the protobuf part
// (`header`) is serialised as usual, then each buffer is appended as one length-delimited
// entry of a `repeated bytes` field (raw_input_contents, field 7, for requests;
// raw_output_contents, field 6, for responses). Big buffers become their own gRPC slice that
// borrows the Buffer's bytes and keeps a share of the Buffer until gRPC has sent them; small
// ones are copied into the header's slice (cheaper than a slice). The field must be the
// message's highest-numbered one, so the bytes on the wire are exactly those protobuf would
// write for the equivalent complete message.
//
// Thread safety: reentrant; no state.

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "grpc_service.pb.h"
#include "service/inference_service.h"

namespace quiver::protocol {

struct SharedMemoryOutput;

// Buffers at least this big travel as their own (borrowed) slice.
inline constexpr size_t kBorrowSliceMinBytes = 16 * 1024;

// Field numbers of the raw-contents fields (proto/grpc_service.proto).
inline constexpr uint32_t kRawInputContentsField = 7;   // ModelInferRequest
inline constexpr uint32_t kRawOutputContentsField = 6;  // ModelInferResponse
inline constexpr uint32_t kStreamInferResponseField = 2;  // ModelStreamInferResponse.infer_response

// Serialises `header` followed by one `field` entry per buffer of `raw` into `out`
// (replacing its contents). INTERNAL if the header does not serialise.
grpc::Status SerializeWithRawContents(const google::protobuf::MessageLite& header, uint32_t field,
                                      std::span<const Buffer> raw, grpc::ByteBuffer& out);

// Server side: `response` as a serialised ModelInferResponse, the same bytes as
// EncodeInferResponse's message, with raw_output_contents sent straight from the output
// Buffers (no copy; `out` keeps shares of them). Shared-memory outputs are written into
// their region as EncodeInferResponse does. Errors as EncodeInferResponse; INTERNAL if the
// message does not serialise.
Status SerializeInferResponse(const InferResponse& response,
                              std::span<const SharedMemoryOutput> shm_outputs,
                              grpc::ByteBuffer& out);

// The same for ModelStreamInfer: a ModelStreamInferResponse whose infer_response (field 2)
// is SerializeInferResponse's message, written after its tag and length; error_message stays
// empty. Errors as SerializeInferResponse.
Status SerializeStreamInferResponse(const InferResponse& response,
                                    std::span<const SharedMemoryOutput> shm_outputs,
                                    grpc::ByteBuffer& out);

}  // namespace quiver::protocol
