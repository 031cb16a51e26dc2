#include "protocol/grpc_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace quiver::protocol {
namespace {

using Request = inference::ModelInferRequest;

std::shared_ptr<Request> NewRequest() {
  auto r = std::make_shared<Request>();
  r->set_model_name("m");
  r->set_id("req-1");
  return r;
}

Request::InferInputTensor* AddInput(Request& r, const std::string& name,
                                    const std::string& datatype, std::vector<int64_t> shape) {
  auto* in = r.add_inputs();
  in->set_name(name);
  in->set_datatype(datatype);
  for (int64_t d : shape) in->add_shape(d);
  return in;
}

template <typename T>
std::string RawOf(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string BytesOf(const Buffer& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

const SharedMemoryResolver* NoShm() { return nullptr; }

// Resolves region "region" to a slice of `memory` (a stand-in for SharedMemoryManager).
class FakeResolver final : public SharedMemoryResolver {
 public:
  explicit FakeResolver(std::shared_ptr<std::vector<std::byte>> memory)
      : memory_(std::move(memory)) {}
  Result<Buffer> Resolve(std::string_view region, uint64_t offset,
                         uint64_t size) const override {
    if (region != "region") return Status::NotFound("no region " + std::string(region));
    if (offset + size > memory_->size()) return Status::InvalidArgument("out of bounds");
    return Buffer::Borrow(memory_->data() + offset, size, memory_);
  }

 private:
  std::shared_ptr<std::vector<std::byte>> memory_;
};

std::unique_ptr<SharedMemoryResolver> FakeShm(std::shared_ptr<std::vector<std::byte>> memory) {
  return std::make_unique<FakeResolver>(std::move(memory));
}

void SetShmParams(google::protobuf::Map<std::string, inference::InferParameter>& params,
                  const std::string& region, int64_t offset, int64_t size) {
  params["shared_memory_region"].set_string_param(region);
  params["shared_memory_offset"].set_int64_param(offset);
  params["shared_memory_byte_size"].set_int64_param(size);
}

TEST(GrpcCodecTest, RawInputsAreBorrowedFromTheMessage) {
  auto r = NewRequest();
  AddInput(*r, "A", "FP32", {2});
  AddInput(*r, "B", "INT64", {1});
  r->add_raw_input_contents(RawOf(std::vector<float>{1.5f, -2.0f}));
  r->add_raw_input_contents(RawOf(std::vector<int64_t>{42}));
  r->add_outputs()->set_name("OUT");
  (*r->mutable_parameters())["priority"].set_uint64_param(2);
  (*r->mutable_parameters())["timeout"].set_int64_param(5000);
  (*r->mutable_parameters())["sequence_id"].set_int64_param(0);

  auto decoded = DecodeInferRequest(r, NoShm());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const InferRequest& req = decoded->request;
  EXPECT_EQ(req.model, "m");
  EXPECT_EQ(req.id, "req-1");
  EXPECT_EQ(req.priority, 2u);
  EXPECT_EQ(req.timeout_us, 5000u);
  ASSERT_EQ(req.inputs.size(), 2u);
  EXPECT_EQ(req.inputs[0].datatype, DataType::kFp32);
  EXPECT_EQ(req.inputs[0].shape, (Shape{2}));
  // Zero-copy: the tensor points into the message's string.
  EXPECT_EQ(static_cast<const void*>(req.inputs[0].data.data()),
            static_cast<const void*>(r->raw_input_contents(0).data()));
  EXPECT_EQ(req.inputs[1].data_as<int64_t>()[0], 42);
  EXPECT_EQ(req.requested_outputs, (std::vector<std::string>{"OUT"}));
  EXPECT_TRUE(decoded->shm_outputs.empty());
}

TEST(GrpcCodecTest, DecodedBuffersKeepTheMessageAlive) {
  auto r = NewRequest();
  AddInput(*r, "A", "INT32", {3});
  r->add_raw_input_contents(RawOf(std::vector<int32_t>{7, 8, 9}));
  std::weak_ptr<Request> weak = r;
  auto decoded = DecodeInferRequest(std::move(r), NoShm());
  ASSERT_TRUE(decoded.ok());
  EXPECT_FALSE(weak.expired());
  Buffer kept = decoded->request.inputs[0].data;
  decoded = Status::Internal("dropped");
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(reinterpret_cast<const int32_t*>(kept.data())[2], 9);
  kept = Buffer();
  EXPECT_TRUE(weak.expired());
}

// Typed contents and raw bytes of the same values decode to the same tensor bytes.
TEST(GrpcCodecTest, TypedContentsMatchRawForEveryType) {
  struct Case {
    std::string datatype;
    std::function<void(inference::InferTensorContents&)> fill;
    std::string raw;
  };
  std::vector<Case> cases = {
      {"BOOL",
       [](auto& c) {
         c.add_bool_contents(true);
         c.add_bool_contents(false);
         c.add_bool_contents(true);
       },
       RawOf(std::vector<uint8_t>{1, 0, 1})},
      {"INT8",
       [](auto& c) {
         c.add_int_contents(-1);
         c.add_int_contents(127);
         c.add_int_contents(-128);
       },
       RawOf(std::vector<int8_t>{-1, 127, -128})},
      {"INT16",
       [](auto& c) {
         c.add_int_contents(-300);
         c.add_int_contents(32767);
         c.add_int_contents(0);
       },
       RawOf(std::vector<int16_t>{-300, 32767, 0})},
      {"INT32",
       [](auto& c) {
         c.add_int_contents(-70000);
         c.add_int_contents(1);
         c.add_int_contents(2);
       },
       RawOf(std::vector<int32_t>{-70000, 1, 2})},
      {"INT64",
       [](auto& c) {
         c.add_int64_contents(-(int64_t{1} << 40));
         c.add_int64_contents(3);
         c.add_int64_contents(4);
       },
       RawOf(std::vector<int64_t>{-(int64_t{1} << 40), 3, 4})},
      {"UINT8",
       [](auto& c) {
         c.add_uint_contents(255);
         c.add_uint_contents(0);
         c.add_uint_contents(7);
       },
       RawOf(std::vector<uint8_t>{255, 0, 7})},
      {"UINT16",
       [](auto& c) {
         c.add_uint_contents(65535);
         c.add_uint_contents(1);
         c.add_uint_contents(2);
       },
       RawOf(std::vector<uint16_t>{65535, 1, 2})},
      {"UINT32",
       [](auto& c) {
         c.add_uint_contents(4000000000u);
         c.add_uint_contents(1);
         c.add_uint_contents(2);
       },
       RawOf(std::vector<uint32_t>{4000000000u, 1, 2})},
      {"UINT64",
       [](auto& c) {
         c.add_uint64_contents(uint64_t{1} << 63);
         c.add_uint64_contents(1);
         c.add_uint64_contents(2);
       },
       RawOf(std::vector<uint64_t>{uint64_t{1} << 63, 1, 2})},
      {"FP32",
       [](auto& c) {
         c.add_fp32_contents(0.5f);
         c.add_fp32_contents(-1e30f);
         c.add_fp32_contents(3.25f);
       },
       RawOf(std::vector<float>{0.5f, -1e30f, 3.25f})},
      {"FP64",
       [](auto& c) {
         c.add_fp64_contents(0.1);
         c.add_fp64_contents(-2.0);
         c.add_fp64_contents(1e300);
       },
       RawOf(std::vector<double>{0.1, -2.0, 1e300})},
      {"BYTES",
       [](auto& c) {
         c.add_bytes_contents("ab");
         c.add_bytes_contents("");
         c.add_bytes_contents(std::string("x\0y", 3));
       },
       std::string("\x02\x00\x00\x00"
                   "ab"
                   "\x00\x00\x00\x00"
                   "\x03\x00\x00\x00"
                   "x\0y",
                   4 + 2 + 4 + 4 + 3)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.datatype);
    auto typed = NewRequest();
    c.fill(*AddInput(*typed, "IN", c.datatype, {3})->mutable_contents());
    auto raw = NewRequest();
    AddInput(*raw, "IN", c.datatype, {3});
    raw->add_raw_input_contents(c.raw);

    auto t = DecodeInferRequest(typed, NoShm());
    auto w = DecodeInferRequest(raw, NoShm());
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_EQ(BytesOf(t->request.inputs[0].data), c.raw);
    EXPECT_EQ(BytesOf(w->request.inputs[0].data), c.raw);
    EXPECT_EQ(t->request.inputs[0].datatype, DataTypeFromName(c.datatype));
  }
}

TEST(GrpcCodecTest, TypedContentsWithTheTensorLayoutAreBorrowed) {
  auto r = NewRequest();
  auto* c = AddInput(*r, "IN", "FP32", {2})->mutable_contents();
  c->add_fp32_contents(1.0f);
  c->add_fp32_contents(2.0f);
  auto decoded = DecodeInferRequest(r, NoShm());
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(static_cast<const void*>(decoded->request.inputs[0].data.data()),
            static_cast<const void*>(r->inputs(0).contents().fp32_contents().data()));
}

TEST(GrpcCodecTest, EmptyTensorsDecode) {
  auto r = NewRequest();
  AddInput(*r, "A", "FP32", {0, 4})->mutable_contents();
  AddInput(*r, "B", "BYTES", {0})->mutable_contents();
  auto decoded = DecodeInferRequest(r, NoShm());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->request.inputs[0].data.size(), 0u);
  EXPECT_EQ(decoded->request.inputs[1].data.size(), 0u);
}

// Every malformed request is INVALID_ARGUMENT and names the tensor at fault.
TEST(GrpcCodecTest, MalformedInputsNameTheTensor) {
  struct Case {
    std::string what;
    std::function<void(Request&)> build;
    std::string must_mention;
  };
  std::vector<Case> cases = {
      {"unknown datatype",
       [](Request& r) {
         AddInput(r, "IN0", "FLOAT", {1});
         r.add_raw_input_contents(std::string(4, '\0'));
       },
       "IN0"},
      {"negative dimension",
       [](Request& r) {
         AddInput(r, "IN0", "FP32", {-1});
         r.add_raw_input_contents("");
       },
       "IN0"},
      {"typed count does not match shape",
       [](Request& r) {
         auto* c = AddInput(r, "IN0", "FP32", {3})->mutable_contents();
         c->add_fp32_contents(1);
         c->add_fp32_contents(2);
       },
       "IN0"},
      {"typed field of another type",
       [](Request& r) { AddInput(r, "IN0", "FP32", {1})->mutable_contents()->add_int_contents(1); },
       "fp32_contents"},
      {"two typed fields",
       [](Request& r) {
         auto* c = AddInput(r, "IN0", "INT32", {1})->mutable_contents();
         c->add_int_contents(1);
         c->add_fp32_contents(1);
       },
       "IN0"},
      {"typed FP16",
       [](Request& r) {
         AddInput(r, "IN0", "FP16", {1})->mutable_contents()->add_fp32_contents(1);
       },
       "IN0"},
      {"typed and raw together",
       [](Request& r) {
         AddInput(r, "IN0", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
         AddInput(r, "IN1", "FP32", {1});
         r.add_raw_input_contents(std::string(4, '\0'));
       },
       "IN0"},
      {"raw byte size does not match shape",
       [](Request& r) {
         AddInput(r, "IN0", "FP32", {2});
         r.add_raw_input_contents(std::string(12, '\0'));
       },
       "IN0"},
      {"fewer raw entries than inputs",
       [](Request& r) {
         AddInput(r, "IN0", "FP32", {1});
         AddInput(r, "IN1", "FP32", {1});
         r.add_raw_input_contents(std::string(4, '\0'));
       },
       "IN1"},
      {"more raw entries than inputs",
       [](Request& r) {
         AddInput(r, "IN0", "FP32", {1});
         r.add_raw_input_contents(std::string(4, '\0'));
         r.add_raw_input_contents(std::string(4, '\0'));
       },
       "raw_input_contents"},
      {"truncated BYTES",
       [](Request& r) {
         AddInput(r, "IN0", "BYTES", {1});
         r.add_raw_input_contents(
             std::string("\x09\x00\x00\x00"
                         "abc",
                         7));
       },
       "IN0"},
      {"BYTES element count",
       [](Request& r) {
         AddInput(r, "IN0", "BYTES", {2});
         r.add_raw_input_contents(
             std::string("\x01\x00\x00\x00"
                         "a",
                         5));
       },
       "IN0"},
      {"negative priority",
       [](Request& r) { (*r.mutable_parameters())["priority"].set_int64_param(-1); }, "priority"},
      {"string timeout",
       [](Request& r) { (*r.mutable_parameters())["timeout"].set_string_param("soon"); },
       "timeout"},
      {"shm region without byte size",
       [](Request& r) {
         (*AddInput(r, "IN0", "FP32", {1})->mutable_parameters())["shared_memory_region"]
             .set_string_param("region");
       },
       "IN0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = NewRequest();
    c.build(*r);
    auto decoded = DecodeInferRequest(r, NoShm());
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(decoded.status().message().find(c.must_mention), std::string::npos)
        << decoded.status().message();
  }
}

TEST(GrpcCodecTest, SharedMemoryNeedsAResolver) {
  auto r = NewRequest();
  SetShmParams(*AddInput(*r, "IN0", "FP32", {1})->mutable_parameters(), "region", 0, 4);
  auto decoded = DecodeInferRequest(r, NoShm());
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kUnsupported);
}

TEST(GrpcCodecTest, ClassificationIsUnsupported) {
  auto r = NewRequest();
  AddInput(*r, "IN0", "FP32", {1});
  r->add_raw_input_contents(std::string(4, '\0'));
  auto* out = r->add_outputs();
  out->set_name("OUT");
  (*out->mutable_parameters())["classification"].set_int64_param(3);
  auto decoded = DecodeInferRequest(r, NoShm());
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kUnsupported);
}

TEST(GrpcCodecTest, SharedMemoryInputsAndOutputsUseTheResolver) {
  auto memory = std::make_shared<std::vector<std::byte>>(64);
  const float in[2] = {3.0f, 4.0f};
  std::memcpy(memory->data() + 8, in, sizeof(in));

  auto r = NewRequest();
  SetShmParams(*AddInput(*r, "IN0", "FP32", {2})->mutable_parameters(), "region", 8, 8);
  AddInput(*r, "IN1", "INT32", {1});
  r->add_raw_input_contents(RawOf(std::vector<int32_t>{5}));  // raw index skips IN0
  auto* out = r->add_outputs();
  out->set_name("OUT0");
  SetShmParams(*out->mutable_parameters(), "region", 32, 16);
  r->add_outputs()->set_name("OUT1");

  auto decoded = DecodeInferRequest(r, FakeShm(memory).get());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->request.inputs[0].data.data(), memory->data() + 8);
  EXPECT_EQ(decoded->request.inputs[1].data_as<int32_t>()[0], 5);
  ASSERT_EQ(decoded->shm_outputs.size(), 1u);
  EXPECT_EQ(decoded->shm_outputs[0].name, "OUT0");
  EXPECT_EQ(decoded->shm_outputs[0].target.data(), memory->data() + 32);

  // Encode: OUT0 goes to shared memory, OUT1 into the message; raw entries stay aligned.
  InferResponse response{
      "m", "1", "req-1", {decoded->request.inputs[0], decoded->request.inputs[1]}};
  response.outputs[0].name = "OUT0";
  response.outputs[1].name = "OUT1";
  inference::ModelInferResponse msg;
  ASSERT_TRUE(EncodeInferResponse(response, decoded->shm_outputs, msg).ok());
  ASSERT_EQ(msg.outputs_size(), 2);
  ASSERT_EQ(msg.raw_output_contents_size(), 2);
  EXPECT_TRUE(msg.raw_output_contents(0).empty());
  EXPECT_EQ(msg.raw_output_contents(1), RawOf(std::vector<int32_t>{5}));
  const auto& params = msg.outputs(0).parameters();
  EXPECT_EQ(params.at("shared_memory_region").string_param(), "region");
  EXPECT_EQ(params.at("shared_memory_offset").int64_param(), 32);
  EXPECT_EQ(params.at("shared_memory_byte_size").int64_param(), 8);
  float copied[2];
  std::memcpy(copied, memory->data() + 32, sizeof(copied));
  EXPECT_EQ(copied[0], 3.0f);
  EXPECT_EQ(copied[1], 4.0f);
}

TEST(GrpcCodecTest, SharedMemoryErrorsPassThrough) {
  auto memory = std::make_shared<std::vector<std::byte>>(16);
  auto r = NewRequest();
  SetShmParams(*AddInput(*r, "IN0", "FP32", {1})->mutable_parameters(), "nope", 0, 4);
  auto decoded = DecodeInferRequest(r, FakeShm(memory).get());
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kNotFound);
  EXPECT_NE(decoded.status().message().find("IN0"), std::string::npos);
}

TEST(GrpcCodecTest, OutputTooLargeForItsRegionIsRejected) {
  auto memory = std::make_shared<std::vector<std::byte>>(16);
  std::vector<SharedMemoryOutput> shm = {
      {"OUT", "region", 0, 4, Buffer::Borrow(memory->data(), 4, memory)}};
  InferResponse response{"m", "1", "", {}};
  response.outputs.push_back(
      MakeTensor<float>("OUT", DataType::kFp32, {2}, std::vector<float>{1, 2}));
  inference::ModelInferResponse msg;
  Status s = EncodeInferResponse(response, shm, msg);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("OUT"), std::string::npos);
}

TEST(GrpcCodecTest, ClientDirectionRoundTrips) {
  InferRequest request;
  request.model = "m";
  request.version = "2";
  request.id = "x";
  request.priority = 3;
  request.timeout_us = 100;
  request.inputs.push_back(
      MakeTensor<double>("IN", DataType::kFp64, {1, 2}, std::vector<double>{1.0, 2.0}));
  request.requested_outputs = {"OUT"};
  auto msg = std::make_shared<Request>();
  EncodeInferRequest(request, *msg);
  auto decoded = DecodeInferRequest(msg, NoShm());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->request.version, "2");
  EXPECT_EQ(decoded->request.priority, 3u);
  EXPECT_EQ(decoded->request.timeout_us, 100u);
  EXPECT_EQ(decoded->request.inputs[0].shape, (Shape{1, 2}));
  EXPECT_EQ(decoded->request.inputs[0].data_as<double>()[1], 2.0);

  InferResponse response{"m", "2", "x", {decoded->request.inputs[0]}};
  auto out = std::make_shared<inference::ModelInferResponse>();
  ASSERT_TRUE(EncodeInferResponse(response, {}, *out).ok());
  auto back = DecodeInferResponse(out);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, "x");
  ASSERT_EQ(back->outputs.size(), 1u);
  EXPECT_EQ(back->outputs[0].datatype, DataType::kFp64);
  EXPECT_EQ(back->outputs[0].data_as<double>()[0], 1.0);
}

TEST(GrpcCodecTest, StatusMapsThroughTheOneTable) {
  EXPECT_TRUE(ToGrpcStatus(Status::Ok()).ok());
  grpc::Status nf = ToGrpcStatus(Status::NotFound("no model 'x'"));
  EXPECT_EQ(nf.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(nf.error_message(), "no model 'x'");
  EXPECT_EQ(ToGrpcStatus(Status::InvalidArgument("")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(Status::Unavailable("")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(Status::Unsupported("")).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  Status back = FromGrpcStatus(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "full"));
  EXPECT_EQ(back.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(back.message(), "full");
}

TEST(GrpcCodecTest, MetadataIndexAndStatisticsRoundTrip) {
  ServerMetadata server{"quiver", "0.1.0", {"model_repository", "statistics"}};
  inference::ServerMetadataResponse sm;
  EncodeServerMetadata(server, sm);
  EXPECT_EQ(DecodeServerMetadata(sm).extensions, server.extensions);

  ModelMetadata model{"m",
                      {"1", "2"},
                      "pytorch_libtorch",
                      {{"IN", DataType::kFp32, {-1, 3}}},
                      {{"OUT", DataType::kBytes, {-1}}}};
  inference::ModelMetadataResponse mm;
  EncodeModelMetadata(model, mm);
  EXPECT_EQ(mm.inputs(0).datatype(), "FP32");
  EXPECT_EQ(mm.outputs(0).datatype(), "BYTES");
  ModelMetadata back = DecodeModelMetadata(mm);
  EXPECT_EQ(back.versions, model.versions);
  EXPECT_EQ(back.inputs[0].shape, (Shape{-1, 3}));

  RepositoryIndex index = {{"a", "1", "READY", ""}, {"b", "", "UNAVAILABLE", "unloaded"}};
  inference::RepositoryIndexResponse all, ready;
  EncodeRepositoryIndex(index, false, all);
  EncodeRepositoryIndex(index, true, ready);
  EXPECT_EQ(all.models_size(), 2);
  ASSERT_EQ(ready.models_size(), 1);
  EXPECT_EQ(ready.models(0).name(), "a");
  EXPECT_EQ(DecodeRepositoryIndex(all)[1].reason, "unloaded");

  ModelStatistics s;
  s.name = "m";
  s.version = "1";
  s.inference_count = 10;
  s.execution_count = 4;
  s.success = {10, 1000};
  s.queue = {10, 50};
  s.batch_stats.push_back({4, {2, 10}, {2, 20}, {2, 30}});
  inference::ModelStatisticsResponse sr;
  EncodeStatistics(std::vector<ModelStatistics>{s}, sr);
  ASSERT_EQ(sr.model_stats_size(), 1);
  EXPECT_EQ(sr.model_stats(0).inference_stats().success().ns(), 1000u);
  EXPECT_TRUE(sr.model_stats(0).inference_stats().has_cache_hit());
  auto decoded = DecodeStatistics(sr);
  EXPECT_EQ(decoded[0].execution_count, 4u);
  EXPECT_EQ(decoded[0].batch_stats[0].compute_output.ns, 30u);
}

}  // namespace
}  // namespace quiver::protocol
