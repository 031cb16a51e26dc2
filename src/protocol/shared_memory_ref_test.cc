// Both codecs in one translation unit, speaking one shared-memory vocabulary: the same
// reference type goes into the HTTP and the gRPC client encoders and comes back, through
// the same resolver, from the HTTP and the gRPC request parsers.
#include <gtest/gtest.h>

// GCC 12 at -O3 reports a false -Wrestrict inside std::string assignment here.
#pragma GCC diagnostic ignored "-Wrestrict"

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "protocol/grpc_codec.h"
#include "protocol/http_infer_codec.h"
#include "protocol/shared_memory_ref.h"

namespace quiver::protocol {
namespace {

// One region "r" of 256 bytes; records which slices were asked for.
class OneRegion final : public SharedMemoryResolver {
 public:
  OneRegion() : memory_(std::make_shared<std::vector<std::byte>>(256)) {}
  Result<Buffer> Resolve(std::string_view region, uint64_t offset,
                         uint64_t byte_size) const override {
    if (region != "r") return Status::NotFound("unknown region " + std::string(region));
    if (offset + byte_size > memory_->size()) return Status::InvalidArgument("out of bounds");
    return Buffer::Borrow(memory_->data() + offset, byte_size, memory_);
  }
  std::byte* data() { return memory_->data(); }

 private:
  std::shared_ptr<std::vector<std::byte>> memory_;
};

InferRequest TwoInputs() {
  InferRequest r;
  r.model = "m";
  for (std::string name : {"A", "B"}) {
    Tensor t;
    t.name = std::move(name);
    t.datatype = DataType::kFp32;
    t.shape = {4};
    t.data = Buffer::Copy(std::vector<std::byte>(16, std::byte{7}).data(), 16);
    r.inputs.push_back(std::move(t));
  }
  return r;
}

// `request` through the gRPC codec with input A at `ref` (B in raw_input_contents).
std::shared_ptr<inference::ModelInferRequest> GrpcMessage(const InferRequest& request,
                                                          const SharedMemoryRef& ref) {
  auto message = std::make_shared<inference::ModelInferRequest>();
  const std::vector<SharedMemoryRef> placement = {ref};
  EncodeInferRequestHeader(request, placement, *message);
  message->add_raw_input_contents(std::string(16, '\7'));
  return message;
}

// `request` through the HTTP codec with input A at `ref`, parsed back with `shm`.
Result<ParsedInferRequest> ThroughHttp(const InferRequest& request, const SharedMemoryRef& ref,
                                       const SharedMemoryResolver* shm) {
  const std::vector<InputEncoding> placement = {{Transport::kSharedMemory, ref}};
  auto body = EncodeInferRequest(request, placement, ResponsePlan{});
  if (!body.ok()) return body.status();
  auto owner = std::make_shared<std::string>(body->Flatten());
  const size_t size = owner->size();
  owner->append(kJsonPadding, ' ');
  InferBody in{{reinterpret_cast<const std::byte*>(owner->data()), size},
               kJsonPadding,
               owner,
               body->header_length()};
  return ParseInferRequest(in, "m", "", shm);
}

TEST(SharedMemoryRefTest, ParameterNamesAreTritons) {
  EXPECT_EQ(kShmRegionParam, "shared_memory_region");
  EXPECT_EQ(kShmOffsetParam, "shared_memory_offset");
  EXPECT_EQ(kShmByteSizeParam, "shared_memory_byte_size");
  EXPECT_FALSE(SharedMemoryRef{}.in_shared_memory());
  EXPECT_TRUE((SharedMemoryRef{"r", 0, 4}.in_shared_memory()));
}

TEST(SharedMemoryRefTest, OneReferenceRoundTripsThroughBothCodecs) {
  OneRegion region;
  const float values[4] = {1.f, 2.f, 3.f, 4.f};
  std::memcpy(region.data() + 64, values, sizeof values);
  const SharedMemoryRef ref{"r", 64, sizeof values};
  const InferRequest request = TwoInputs();

  // gRPC: input A in shared memory, B in raw_input_contents; HTTP: the same placement.
  auto grpc = DecodeInferRequest(GrpcMessage(request, ref), &region);
  ASSERT_TRUE(grpc.ok()) << grpc.status().ToString();
  auto http = ThroughHttp(request, ref, &region);
  ASSERT_TRUE(http.ok()) << http.status().ToString();

  for (const InferRequest* parsed : {&grpc->request, &http->request}) {
    ASSERT_EQ(parsed->inputs.size(), 2u);
    const Buffer& a = parsed->inputs[0].data;
    ASSERT_EQ(a.size(), sizeof values);
    EXPECT_EQ(a.data(), region.data() + 64) << "shared-memory input A must be a view";
    EXPECT_EQ(parsed->inputs[1].data.size(), 16u);
  }
}

TEST(SharedMemoryRefTest, UnknownRegionIsNotFoundInBothCodecs) {
  OneRegion region;
  const SharedMemoryRef ref{"gone", 0, 16};
  const InferRequest request = TwoInputs();

  auto message = GrpcMessage(request, ref);
  auto grpc = DecodeInferRequest(message, &region);
  EXPECT_EQ(grpc.status().code(), StatusCode::kNotFound);
  EXPECT_NE(grpc.status().message().find("gone"), std::string::npos);
  auto http = ThroughHttp(request, ref, &region);
  EXPECT_EQ(http.status().code(), StatusCode::kNotFound);
  EXPECT_NE(http.status().message().find("gone"), std::string::npos);

  // Without a resolver both refuse shared memory as unsupported.
  EXPECT_EQ(DecodeInferRequest(message, nullptr).status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(ThroughHttp(request, ref, nullptr).status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace quiver::protocol
