#pragma once
// GrpcInferPayload: a ModelInferRequest as the gRPC client sends it, without copying
// tensor bytes into the message. The protobuf part (`header`: names, types, shapes,
// parameters, requested outputs) is serialised as usual; each buffer of `raw` is
// appended as one raw_input_contents entry (field 7) whose bytes gRPC sends straight from
// the tensor: big buffers become their own slice (borrowing the Buffer, which the slice
// keeps alive), small ones are copied into the header's slice (cheaper than a slice).
// The bytes on the wire are exactly those of the equivalent ModelInferRequest.

#include <grpcpp/impl/serialization_traits.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <cstddef>
#include <vector>

#include "core/tensor.h"
#include "grpc_service.pb.h"
#include "protocol/grpc_raw_contents.h"

namespace quiver::client {

struct GrpcInferPayload {
  inference::ModelInferRequest header;  // raw_input_contents left empty
  std::vector<Buffer> raw;              // raw_input_contents, in order
};

// Buffers at least this big travel as their own (borrowed) slice.
using protocol::kBorrowSliceMinBytes;

// Serialises `payload` into `out` (replacing its contents). INTERNAL if the header does
// not serialise.
grpc::Status SerializeInferPayload(const GrpcInferPayload& payload, grpc::ByteBuffer& out);

}  // namespace quiver::client

// Lets gRPC's generic call machinery send a GrpcInferPayload as a request message.
template <>
class grpc::SerializationTraits<quiver::client::GrpcInferPayload> {
 public:
  static grpc::Status Serialize(const quiver::client::GrpcInferPayload& payload,
                                grpc::ByteBuffer* buffer, bool* own_buffer) {
    *own_buffer = true;
    return quiver::client::SerializeInferPayload(payload, *buffer);
  }
  // Client side only: a payload is never received.
  static grpc::Status Deserialize(grpc::ByteBuffer*, quiver::client::GrpcInferPayload*) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "GrpcInferPayload is send-only");
  }
};
