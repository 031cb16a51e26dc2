#include "client/grpc_infer_payload.h"

#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/support/slice.h>

#include <cstdint>
#include <cstring>

namespace quiver::client {
namespace {

using google::protobuf::io::CodedOutputStream;

// Tag of ModelInferRequest.raw_input_contents: field 7, length-delimited.
constexpr uint8_t kRawInputTag = (7 << 3) | 2;

// A slice that borrows the bytes of `buffer` and keeps a share of it until gRPC is done.
grpc::Slice BorrowSlice(const Buffer& buffer) {
  auto* keep = new Buffer(buffer);
  return grpc::Slice(
      const_cast<std::byte*>(keep->data()), keep->size(),
      [](void* p) { delete static_cast<Buffer*>(p); }, keep);
}

}  // namespace

grpc::Status SerializeInferPayload(const GrpcInferPayload& payload, grpc::ByteBuffer& out) {
  const size_t header_size = payload.header.ByteSizeLong();
  // Bytes written into our own slice: header, every tag and length, small buffers.
  size_t inline_size = header_size;
  size_t borrowed = 0;
  for (const Buffer& b : payload.raw) {
    inline_size += 1 + CodedOutputStream::VarintSize64(b.size());
    if (b.size() < kBorrowSliceMinBytes) {
      inline_size += b.size();
    } else {
      ++borrowed;
    }
  }

  grpc::Slice own(inline_size);
  auto* const base = const_cast<uint8_t*>(own.begin());
  uint8_t* p = payload.header.SerializeWithCachedSizesToArray(base);
  if (static_cast<size_t>(p - base) != header_size) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "ModelInferRequest did not serialise");
  }
  if (borrowed == 0) {
    for (const Buffer& b : payload.raw) {
      *p++ = kRawInputTag;
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
  for (const Buffer& b : payload.raw) {
    *p++ = kRawInputTag;
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

}  // namespace quiver::client
