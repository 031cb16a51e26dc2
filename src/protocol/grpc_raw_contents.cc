#include "protocol/grpc_raw_contents.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/slice.h>

#include <cstring>
#include <vector>

#include "protocol/grpc_codec.h"

namespace quiver::protocol {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

// A slice that borrows the bytes of `buffer` and keeps a share of it until gRPC is done.
grpc::Slice BorrowSlice(const Buffer& buffer) {
  auto* keep = new Buffer(buffer);
  return grpc::Slice(
      const_cast<std::byte*>(keep->data()), keep->size(),
      [](void* p) { delete static_cast<Buffer*>(p); }, keep);
}

}  // namespace

grpc::Status SerializeWithRawContents(const google::protobuf::MessageLite& header, uint32_t field,
                                      std::span<const Buffer> raw, grpc::ByteBuffer& out) {
  const uint32_t tag =
      WireFormatLite::MakeTag(static_cast<int>(field), WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  const size_t tag_size = CodedOutputStream::VarintSize32(tag);
  const size_t header_size = header.ByteSizeLong();
  // Bytes written into our own slice: header, every tag and length, small buffers.
  size_t inline_size = header_size;
  size_t borrowed = 0;
  for (const Buffer& b : raw) {
    inline_size += tag_size + CodedOutputStream::VarintSize64(b.size());
    if (b.size() < kBorrowSliceMinBytes) {
      inline_size += b.size();
    } else {
      ++borrowed;
    }
  }

  grpc::Slice own(inline_size);
  auto* const base = const_cast<uint8_t*>(own.begin());
  uint8_t* p = header.SerializeWithCachedSizesToArray(base);
  if (static_cast<size_t>(p - base) != header_size) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "message did not serialise");
  }
  if (borrowed == 0) {
    for (const Buffer& b : raw) {
      p = CodedOutputStream::WriteVarint32ToArray(tag, p);
      p = CodedOutputStream::WriteVarint64ToArray(b.size(), p);
      if (!b.empty()) std::memcpy(p, b.data(), b.size());
      p += b.size();
    }
    grpc::ByteBuffer tmp(&own, 1);
    out.Swap(&tmp);
    return grpc::Status::OK;
  }

  // Interleave pieces of our slice (sub-slices share it, no copy) with borrowed slices.
  std::vector<grpc::Slice> slices;
  slices.reserve(2 * borrowed + 1);
  size_t piece_start = 0;
  for (const Buffer& b : raw) {
    p = CodedOutputStream::WriteVarint32ToArray(tag, p);
    p = CodedOutputStream::WriteVarint64ToArray(b.size(), p);
    if (b.size() < kBorrowSliceMinBytes) {
      if (!b.empty()) std::memcpy(p, b.data(), b.size());
      p += b.size();
      continue;
    }
    const auto end = static_cast<size_t>(p - base);
    slices.push_back(own.sub(piece_start, end));
    piece_start = end;
    slices.push_back(BorrowSlice(b));
  }
  const auto end = static_cast<size_t>(p - base);
  if (end > piece_start) slices.push_back(own.sub(piece_start, end));
  grpc::ByteBuffer tmp(slices.data(), slices.size());
  out.Swap(&tmp);
  return grpc::Status::OK;
}

Status SerializeInferResponse(const InferResponse& response,
                              std::span<const SharedMemoryOutput> shm_outputs,
                              grpc::ByteBuffer& out) {
  inference::ModelInferResponse header;
  std::vector<Buffer> raw;
  Status status = EncodeInferResponseHeader(response, shm_outputs, header, raw);
  if (!status.ok()) return status;
  grpc::Status serialised = SerializeWithRawContents(header, kRawOutputContentsField, raw, out);
  if (!serialised.ok()) return Status::Internal("ModelInferResponse did not serialise");
  return Status::Ok();
}

Status SerializeStreamInferResponse(const InferResponse& response,
                                    std::span<const SharedMemoryOutput> shm_outputs,
                                    grpc::ByteBuffer& out) {
  grpc::ByteBuffer inner;
  Status status = SerializeInferResponse(response, shm_outputs, inner);
  if (!status.ok()) return status;
  std::vector<grpc::Slice> slices;
  if (!inner.Dump(&slices).ok()) return Status::Internal("ModelInferResponse did not serialise");
  // The field's tag and length go in front.
  const uint32_t tag = WireFormatLite::MakeTag(static_cast<int>(kStreamInferResponseField),
                                               WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  uint8_t prefix[16];
  uint8_t* p = CodedOutputStream::WriteVarint32ToArray(tag, prefix);
  p = CodedOutputStream::WriteVarint64ToArray(inner.Length(), p);
  slices.insert(slices.begin(), grpc::Slice(prefix, static_cast<size_t>(p - prefix)));
  out = grpc::ByteBuffer(slices.data(), slices.size());
  return Status::Ok();
}

}  // namespace quiver::protocol
