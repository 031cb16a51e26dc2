#include "client/grpc_infer_payload.h"

#include "protocol/grpc_raw_contents.h"

namespace quiver::client {

grpc::Status SerializeInferPayload(const GrpcInferPayload& payload, grpc::ByteBuffer& out) {
  return protocol::SerializeWithRawContents(payload.header, protocol::kRawInputContentsField,
                                            payload.raw, out);
}

}  // namespace quiver::client
