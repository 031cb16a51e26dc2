#include "protocol/grpc_raw_contents.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "protocol/grpc_codec.h"

namespace quiver::protocol {
namespace {

std::vector<grpc::Slice> SlicesOf(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  return slices;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::string out;
  for (const auto& s : SlicesOf(buffer)) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// A UINT8 tensor of `bytes` bytes whose memory is owned by `owner`.
Tensor Borrowed(std::string name, const std::shared_ptr<std::vector<std::byte>>& owner) {
  for (size_t i = 0; i < owner->size(); ++i) (*owner)[i] = static_cast<std::byte>(i * 7 + 1);
  return Tensor{std::move(name),
                DataType::kUint8,
                {static_cast<int64_t>(owner->size())},
                Buffer::Borrow(owner->data(), owner->size(), owner)};
}

TEST(GrpcRawContentsTest, ResponseBytesEqualTheProtobufSerialisation) {
  // Empty, small (copied in), exactly the threshold, big (borrowed) and shared-memory outputs.
  auto region = std::make_shared<std::vector<std::byte>>(64);
  std::vector<SharedMemoryOutput> shm = {
      {"SHM", "region", 8, 16, Buffer::Borrow(region->data() + 8, 16, region)}};
  InferResponse response{"m", "1", "id-7", {}};
  const std::vector<size_t> sizes = {0, 5, kBorrowSliceMinBytes, 3 * kBorrowSliceMinBytes + 1};
  for (size_t i = 0; i < sizes.size(); ++i) {
    response.outputs.push_back(
        Borrowed("OUT" + std::to_string(i), std::make_shared<std::vector<std::byte>>(sizes[i])));
  }
  response.outputs.insert(response.outputs.begin() + 2,
                          Borrowed("SHM", std::make_shared<std::vector<std::byte>>(12)));

  // Without shared memory (no parameter maps, whose order protobuf does not fix): the very
  // bytes protobuf writes for the complete message.
  {
    InferResponse plain = response;
    plain.outputs.erase(plain.outputs.begin() + 2);
    inference::ModelInferResponse expected;
    ASSERT_TRUE(EncodeInferResponse(plain, {}, expected).ok());
    grpc::ByteBuffer out;
    ASSERT_TRUE(SerializeInferResponse(plain, {}, out).ok());
    EXPECT_TRUE(Flatten(out) == expected.SerializeAsString());
  }

  inference::ModelInferResponse expected;
  ASSERT_TRUE(EncodeInferResponse(response, shm, expected).ok());
  grpc::ByteBuffer out;
  ASSERT_TRUE(SerializeInferResponse(response, shm, out).ok());
  inference::ModelInferResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(out)));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, expected));
  ASSERT_EQ(parsed.raw_output_contents_size(), 5);
  EXPECT_TRUE(parsed.raw_output_contents(2).empty());  // shared memory: aligned, empty
  EXPECT_EQ(parsed.outputs(2).parameters().at("shared_memory_byte_size").int64_param(), 12);
  EXPECT_EQ(std::memcmp(region->data() + 8, response.outputs[2].data.data(), 12), 0);
}

// ModelStreamInfer's answer: the bytes protobuf writes for a ModelStreamInferResponse whose
// infer_response is the encoded response, with a big output still borrowed.
TEST(GrpcRawContentsTest, StreamResponseBytesEqualTheProtobufSerialisation) {
  auto big = std::make_shared<std::vector<std::byte>>(2 * kBorrowSliceMinBytes);
  const InferResponse response{"m", "1", "id-9",
                               {Borrowed("SMALL", std::make_shared<std::vector<std::byte>>(3)),
                                Borrowed("BIG", big)}};
  inference::ModelStreamInferResponse expected;
  ASSERT_TRUE(EncodeInferResponse(response, {}, *expected.mutable_infer_response()).ok());
  grpc::ByteBuffer out;
  ASSERT_TRUE(SerializeStreamInferResponse(response, {}, out).ok());
  EXPECT_TRUE(Flatten(out) == expected.SerializeAsString());
  bool borrowed = false;
  for (const auto& s : SlicesOf(out)) {
    borrowed = borrowed || s.begin() == reinterpret_cast<const uint8_t*>(big->data());
  }
  EXPECT_TRUE(borrowed) << "the big output's bytes were copied";
}

TEST(GrpcRawContentsTest, BigOutputsAreSentFromTheirBufferAndKeptAlive) {
  auto owner = std::make_shared<std::vector<std::byte>>(4u << 20);
  std::weak_ptr<std::vector<std::byte>> watch = owner;
  const std::byte* const bytes = owner->data();
  grpc::ByteBuffer out;
  {
    InferResponse response{"m", "1", "", {Borrowed("OUT", owner)}};
    owner.reset();
    ASSERT_TRUE(SerializeInferResponse(response, {}, out).ok());
  }
  // The response is gone; the serialised message still holds the output's memory...
  ASSERT_FALSE(watch.expired());
  bool borrowed = false;
  for (const auto& s : SlicesOf(out)) {
    if (s.begin() == reinterpret_cast<const uint8_t*>(bytes)) {
      borrowed = true;
      EXPECT_EQ(s.size(), 4u << 20);
    }
  }
  EXPECT_TRUE(borrowed) << "the output's bytes were copied";
  // ...until gRPC drops it.
  out.Clear();
  EXPECT_TRUE(watch.expired());
}

TEST(GrpcRawContentsTest, OutputTooLargeForItsRegionIsRejected) {
  auto region = std::make_shared<std::vector<std::byte>>(4);
  std::vector<SharedMemoryOutput> shm = {
      {"OUT", "region", 0, 4, Buffer::Borrow(region->data(), 4, region)}};
  InferResponse response{"m", "1", "", {}};
  response.outputs.push_back(
      MakeTensor<float>("OUT", DataType::kFp32, {2}, std::vector<float>{1, 2}));
  grpc::ByteBuffer out;
  Status s = SerializeInferResponse(response, shm, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quiver::protocol
