#include "protocol/http_infer_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace quiver::protocol {
namespace {

// Owns a copy of `text` with padding, like the HTTP frontend's bodies.
struct OwnedBody {
  std::shared_ptr<std::vector<std::byte>> storage;
  InferBody body;

  explicit OwnedBody(std::string_view text, std::optional<uint64_t> header_length = {},
                     size_t padding = kJsonPadding) {
    storage = std::make_shared<std::vector<std::byte>>(text.size() + padding);
    if (!text.empty()) std::memcpy(storage->data(), text.data(), text.size());
    body.bytes = std::span<const std::byte>(storage->data(), text.size());
    body.padding = padding;
    body.keepalive = storage;
    body.header_length = header_length;
  }
};

// Regions backed by plain vectors.
class FakeResolver final : public SharedMemoryResolver {
 public:
  std::vector<std::byte>& Add(const std::string& name, size_t size) {
    auto& r = regions_[name];
    r = std::make_shared<std::vector<std::byte>>(size);
    return *r;
  }
  Result<Buffer> Resolve(std::string_view region, uint64_t offset,
                         uint64_t byte_size) const override {
    auto it = regions_.find(std::string(region));
    if (it == regions_.end()) return Status::NotFound("no region " + std::string(region));
    const uint64_t size = it->second->size();
    if (offset > size || byte_size > size - offset) {
      return Status::InvalidArgument("out of bounds");
    }
    return Buffer::Borrow(it->second->data() + offset, byte_size, it->second);
  }

 private:
  std::map<std::string, std::shared_ptr<std::vector<std::byte>>> regions_;
};

template <typename T>
std::vector<T> Values(const Buffer& b) {
  std::vector<T> out(b.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), b.data(), out.size() * sizeof(T));
  return out;
}

std::string Text(const Buffer& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

Result<ParsedInferRequest> Parse(std::string_view json, const SharedMemoryResolver* shm = nullptr) {
  OwnedBody b(json);
  return ParseInferRequest(b.body, "m", "", shm);
}

void ExpectInvalid(std::string_view json, std::string_view fragment,
                   StatusCode code = StatusCode::kInvalidArgument) {
  auto r = Parse(json);
  ASSERT_FALSE(r.ok()) << json;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos)
      << "message: " << r.status().message() << "\nexpected fragment: " << fragment;
}

TEST(HttpInferCodecTest, ParsesJsonInputsOfEveryJsonType) {
  auto r = Parse(R"({"id":"req-1","inputs":[
    {"name":"F","shape":[2,2],"datatype":"FP32","data":[[1.5,-2],[3,4.25]]},
    {"name":"D","shape":[2],"datatype":"FP64","data":[1e300,-0.5]},
    {"name":"I8","shape":[3],"datatype":"INT8","data":[-128,0,127]},
    {"name":"U16","shape":[1],"datatype":"UINT16","data":[65535]},
    {"name":"I64","shape":[2],"datatype":"INT64","data":[-9223372036854775808,9223372036854775807]},
    {"name":"U64","shape":[1],"datatype":"UINT64","data":[18446744073709551615]},
    {"name":"B","shape":[3],"datatype":"BOOL","data":[true,false,true]},
    {"name":"S","shape":[2],"datatype":"BYTES","data":["hello","\u00e9\n"]}
  ]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const InferRequest& q = r->request;
  EXPECT_EQ(q.id, "req-1");
  EXPECT_EQ(q.model, "m");
  ASSERT_EQ(q.inputs.size(), 8u);
  EXPECT_EQ(q.inputs[0].shape, (Shape{2, 2}));
  EXPECT_EQ(Values<float>(q.inputs[0].data), (std::vector<float>{1.5f, -2.f, 3.f, 4.25f}));
  EXPECT_EQ(Values<double>(q.inputs[1].data), (std::vector<double>{1e300, -0.5}));
  EXPECT_EQ(Values<int8_t>(q.inputs[2].data), (std::vector<int8_t>{-128, 0, 127}));
  EXPECT_EQ(Values<uint16_t>(q.inputs[3].data), (std::vector<uint16_t>{65535}));
  EXPECT_EQ(Values<int64_t>(q.inputs[4].data),
            (std::vector<int64_t>{INT64_MIN, INT64_MAX}));
  EXPECT_EQ(Values<uint64_t>(q.inputs[5].data), (std::vector<uint64_t>{UINT64_MAX}));
  EXPECT_EQ(Values<uint8_t>(q.inputs[6].data), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(Text(q.inputs[7].data), std::string("\x05\0\0\0hello\x03\0\0\0\xc3\xa9\n", 16));
  EXPECT_TRUE(q.requested_outputs.empty());
  EXPECT_EQ(r->plan.default_transport, Transport::kJson);
}

TEST(HttpInferCodecTest, BinaryInputsBorrowTheBody) {
  const std::string json =
      R"({"inputs":[{"name":"A","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},)"
      R"({"name":"B","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}],)"
      R"("parameters":{"binary_data_output":true}})";
  std::string body = json;
  const float a[2] = {1.f, 2.f};
  body.append(reinterpret_cast<const char*>(a), sizeof(a));
  body.append(std::string("\x03\0\0\0abc", 7));
  OwnedBody b(body, json.size());
  auto r = ParseInferRequest(b.body, "m", "3", nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request.version, "3");
  ASSERT_EQ(r->request.inputs.size(), 2u);
  // Zero copy: the tensor points into the received body.
  EXPECT_EQ(r->request.inputs[0].data.data(), b.storage->data() + json.size());
  EXPECT_EQ(Values<float>(r->request.inputs[0].data), (std::vector<float>{1.f, 2.f}));
  EXPECT_EQ(Text(r->request.inputs[1].data), std::string("\x03\0\0\0abc", 7));
  EXPECT_EQ(r->plan.default_transport, Transport::kBinary);
}

TEST(HttpInferCodecTest, ParsesWithoutPaddingByCopyingOnlyTheHeader) {
  const std::string json =
      R"({"inputs":[{"name":"A","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}}]})";
  std::string body = json + std::string("\x2a\0\0\0", 4);
  OwnedBody b(body, json.size(), /*padding=*/0);
  auto r = ParseInferRequest(b.body, "m", "", nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int32_t>(r->request.inputs[0].data), (std::vector<int32_t>{42}));
}

TEST(HttpInferCodecTest, ParsesParametersAndOutputs) {
  FakeResolver shm;
  shm.Add("out", 64);
  auto r = Parse(R"({"inputs":[],"parameters":{"timeout":1500,"priority":2,"custom":"x",
      "sequence_id":0,"sequence_start":false},
      "outputs":[{"name":"O1","parameters":{"binary_data":true}},{"name":"O2"},
                 {"name":"O3","parameters":{"shared_memory_region":"out","shared_memory_byte_size":16,
                  "shared_memory_offset":8,"binary_data":false}}]})",
                 &shm);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request.timeout_us, 1500u);
  EXPECT_EQ(r->request.priority, 2u);
  EXPECT_EQ(r->request.requested_outputs, (std::vector<std::string>{"O1", "O2", "O3"}));
  ASSERT_EQ(r->plan.outputs.size(), 3u);
  EXPECT_EQ(r->plan.outputs[0].transport, Transport::kBinary);
  EXPECT_EQ(r->plan.outputs[1].transport, Transport::kJson);
  EXPECT_EQ(r->plan.outputs[2].transport, Transport::kSharedMemory);
  EXPECT_EQ(r->plan.outputs[2].shm.region, "out");
  EXPECT_EQ(r->plan.outputs[2].shm.offset, 8u);
  EXPECT_EQ(r->plan.outputs[2].shm.byte_size, 16u);
  EXPECT_EQ(r->plan.Find("O2"), &r->plan.outputs[1]);
  EXPECT_EQ(r->plan.Find("nope"), nullptr);
}

TEST(HttpInferCodecTest, SharedMemoryInputsResolveThroughTheResolver) {
  FakeResolver shm;
  auto& region = shm.Add("in", 32);
  const int16_t v[3] = {-1, 2, 300};
  std::memcpy(region.data() + 4, v, sizeof(v));
  auto r = Parse(R"({"inputs":[{"name":"X","shape":[3],"datatype":"INT16","parameters":
      {"shared_memory_region":"in","shared_memory_byte_size":6,"shared_memory_offset":4}}]})",
                 &shm);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request.inputs[0].data.data(), region.data() + 4);
  EXPECT_EQ(Values<int16_t>(r->request.inputs[0].data), (std::vector<int16_t>{-1, 2, 300}));

  auto unknown = Parse(R"({"inputs":[{"name":"X","shape":[1],"datatype":"INT16","parameters":
      {"shared_memory_region":"nope","shared_memory_byte_size":2}}]})",
                       &shm);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("input 'X'"), std::string::npos);

  auto oob = Parse(R"({"inputs":[{"name":"X","shape":[16],"datatype":"INT16","parameters":
      {"shared_memory_region":"in","shared_memory_byte_size":32,"shared_memory_offset":2}}]})",
                   &shm);
  EXPECT_EQ(oob.status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpInferCodecTest, MalformedRequestsAreInvalidArgumentNamingTheProblem) {
  ExpectInvalid("", "failed to parse the request JSON");
  ExpectInvalid("{\"inputs\":[", "failed to parse the request JSON");
  ExpectInvalid("[1,2]", "must be an object");
  ExpectInvalid("{}", "'inputs'");
  ExpectInvalid(R"({"inputs":{}})", "expected an array");
  ExpectInvalid(R"({"inputs":[7]})", "input 0");
  ExpectInvalid(R"({"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]})", "'name'");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP33","data":[1]}]})",
                "unknown datatype 'FP33'");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"data":[1]}]})", "'datatype'");
  ExpectInvalid(R"({"inputs":[{"name":"X","datatype":"FP32","data":[1]}]})", "'shape'");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[-1],"datatype":"FP32","data":[1]}]})",
                "non-negative");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[3],"datatype":"FP32","data":[1,2]}]})",
                "the shape has 3 elements but 'data' has 2");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[[1],[2]]}]})",
                "the shape has 1 elements but 'data' has 2");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"UINT8","data":[256]}]})",
                "input 'X': element 0 is an integer 256, expected an integer in [0, 255]");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"INT32","data":[1.5]}]})",
                "element 0 is a number 1.5");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"BOOL","data":[1]}]})",
                "expected a boolean");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"BYTES","data":[1]}]})",
                "expected a string");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":["1"]}]})",
                "expected a number");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP16","data":[1.0]}]})",
                "receiving FP16 data via JSON is not supported");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP32"}]})",
                "no field is set");
  ExpectInvalid(
      R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]})",
      "set 'data' 'binary_data_size'");
  ExpectInvalid(
      R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP32","parameters":{"shared_memory_region":"r"}}]})",
      "without 'shared_memory_byte_size'");
  ExpectInvalid(
      R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]})",
      "must specify valid 'Inference-Header-Content-Length'");
  ExpectInvalid(R"({"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[1]},
                              {"name":"X","shape":[1],"datatype":"FP32","data":[2]}]})",
                "appears more than once");
  ExpectInvalid(R"({"id":5,"inputs":[]})", "'id'");
  ExpectInvalid(R"({"inputs":[],"parameters":{"triton_x":1}})", "reserved");
  ExpectInvalid(R"({"inputs":[],"parameters":{"timeout":-1}})", "'timeout'");
  ExpectInvalid(R"({"inputs":[],"outputs":[{"parameters":{}}]})", "'name' of output 0");
  ExpectInvalid(
      R"({"inputs":[],"outputs":[{"name":"O","parameters":{"binary_data":true,"shared_memory_region":"r","shared_memory_byte_size":4}}]})",
      "can't set both 'shared_memory_region' and 'binary_data'");
  ExpectInvalid(R"({"inputs":[],"parameters":{"sequence_id":7}})", "sequence",
                StatusCode::kUnsupported);
  ExpectInvalid(R"({"inputs":[],"outputs":[{"name":"O","parameters":{"classification":3}}]})",
                "classification", StatusCode::kUnsupported);
}

TEST(HttpInferCodecTest, BinarySizesMustAddUpToTheBody) {
  const std::string json =
      R"({"inputs":[{"name":"A","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]})";
  {
    OwnedBody b(json + std::string(4, '\0'), json.size());
    auto r = ParseInferRequest(b.body, "m", "", nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("expecting 4 additional bytes for model 'm'"),
              std::string::npos)
        << r.status().message();
  }
  {
    OwnedBody b(json + std::string(12, '\0'), json.size());
    auto r = ParseInferRequest(b.body, "m", "", nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("unexpected additional input data"), std::string::npos);
  }
  {
    OwnedBody b(json + std::string(8, '\0'), json.size() + 100);
    auto r = ParseInferRequest(b.body, "m", "", nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("inference header size"), std::string::npos);
  }
  {
    const std::string wrong =
        R"({"inputs":[{"name":"A","shape":[3],"datatype":"FP32","parameters":{"binary_data_size":8}}]})";
    OwnedBody b(wrong + std::string(8, '\0'), wrong.size());
    auto r = ParseInferRequest(b.body, "m", "", nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("binary_data_size is 8 bytes but the shape needs 12"),
              std::string::npos)
        << r.status().message();
  }
  {
    OwnedBody b(json + std::string(8, '\0'), 0);
    EXPECT_EQ(ParseInferRequest(b.body, "m", "", nullptr).status().code(),
              StatusCode::kUnsupported);
  }
}

TEST(HttpInferCodecTest, EncodesJsonBinaryAndSharedMemoryOutputs) {
  FakeResolver shm;
  auto& region = shm.Add("r", 16);
  InferResponse response;
  response.model = "m";
  response.version = "1";
  response.id = "abc";
  const float f[3] = {0.5f, -1.f, 3.f};
  response.outputs.push_back(MakeTensor<float>("J", DataType::kFp32, {3}, f));
  const std::vector<std::string> strings = {"a\"b", ""};
  response.outputs.push_back(Tensor{"S", DataType::kBytes, {2}, MakeBytesBuffer(strings)});
  const int32_t ints[2] = {7, -8};
  response.outputs.push_back(MakeTensor<int32_t>("B", DataType::kInt32, {1, 2}, ints));
  response.outputs.push_back(MakeTensor<int32_t>("M", DataType::kInt32, {2}, ints));

  ResponsePlan plan;
  plan.default_transport = Transport::kJson;
  plan.outputs.emplace_back("B", Transport::kBinary);
  plan.outputs.emplace_back("M", Transport::kSharedMemory, SharedMemoryRef{"r", 4, 8});
  auto encoded = EncodeInferResponse(response, plan, &shm);
  ASSERT_TRUE(encoded.ok()) << encoded.status().ToString();
  EXPECT_EQ(encoded->json,
            R"({"id":"abc","model_name":"m","model_version":"1","outputs":[)"
            R"({"name":"J","datatype":"FP32","shape":[3],"data":[0.5,-1.0,3.0]},)"
            R"({"name":"S","datatype":"BYTES","shape":[2],"data":["a\"b",""]},)"
            R"({"name":"B","datatype":"INT32","shape":[1,2],"parameters":{"binary_data_size":8}},)"
            R"({"name":"M","datatype":"INT32","shape":[2]}]})");
  ASSERT_EQ(encoded->binary.size(), 1u);
  // Zero copy: the binary chunk is the output Buffer itself.
  EXPECT_EQ(encoded->binary[0].data(), response.outputs[2].data.data());
  EXPECT_EQ(encoded->header_length(), encoded->json.size());
  int32_t in_shm[2];
  std::memcpy(in_shm, region.data() + 4, sizeof(in_shm));
  EXPECT_EQ(in_shm[0], 7);
  EXPECT_EQ(in_shm[1], -8);

  // Without binary outputs there is no header length.
  ResponsePlan json_only;
  auto plain = EncodeInferResponse(response, json_only, &shm);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->header_length().has_value());
}

TEST(HttpInferCodecTest, ResponseErrors) {
  FakeResolver shm;
  shm.Add("small", 4);
  InferResponse response;
  const int32_t ints[2] = {1, 2};
  response.outputs.push_back(MakeTensor<int32_t>("O", DataType::kInt32, {2}, ints));
  ResponsePlan plan;
  plan.outputs.emplace_back("O", Transport::kSharedMemory, SharedMemoryRef{"small", 0, 4});
  auto r = EncodeInferResponse(response, plan, &shm);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("should be at least 8 bytes"), std::string::npos);

  InferResponse half;
  const uint16_t h[1] = {0x3c00};
  half.outputs.push_back(MakeTensor<uint16_t>("H", DataType::kFp16, {1}, h));
  auto fp16 = EncodeInferResponse(half, ResponsePlan{}, nullptr);
  ASSERT_FALSE(fp16.ok());
  EXPECT_NE(fp16.status().message().find("sending FP16 data via JSON is not supported"),
            std::string::npos);
  ResponsePlan binary;
  binary.default_transport = Transport::kBinary;
  EXPECT_TRUE(EncodeInferResponse(half, binary, nullptr).ok());

  InferResponse broken;
  broken.outputs.push_back(Tensor{"X", DataType::kFp32, {4}, Buffer::Allocate(8)});
  EXPECT_EQ(EncodeInferResponse(broken, ResponsePlan{}, nullptr).status().code(),
            StatusCode::kInternal);
}

TEST(HttpInferCodecTest, DoublesKeepFullPrecisionAndSpecialValues) {
  InferResponse response;
  const double d[5] = {0.1, 1e300, -0.0, NAN, -INFINITY};
  response.outputs.push_back(MakeTensor<double>("D", DataType::kFp64, {5}, d));
  const float f[1] = {0.1f};
  response.outputs.push_back(MakeTensor<float>("F", DataType::kFp32, {1}, f));
  auto r = EncodeInferResponse(response, ResponsePlan{}, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->json.find(R"("data":[0.1,1e+300,-0.0,NaN,-Infinity])"), std::string::npos)
      << r->json;
  // FP32 is widened to double, as Triton does; reading it back as float is exact.
  EXPECT_NE(r->json.find(R"("data":[0.10000000149011612])"), std::string::npos) << r->json;
}

// Every datatype, every transport: what the client encodes, the server decodes bit for
// bit; what the server encodes, the client decodes bit for bit.
class CodecRoundTripTest : public ::testing::TestWithParam<DataType> {};

Tensor SampleTensor(DataType type) {
  Tensor t;
  t.name = "T";
  t.datatype = type;
  t.shape = {2, 3};
  if (type == DataType::kBytes) {
    std::vector<std::string> s = {"", "a", "hello world", std::string("\0\x01\x7f", 3), "\"q\"",
                                  "\xc3\xa9t\xc3\xa9"};
    t.data = MakeBytesBuffer(s);
    return t;
  }
  const size_t n = 6 * DataTypeSize(type);
  t.data = Buffer::Allocate(n);
  for (size_t i = 0; i < n; ++i) t.data.mutable_data()[i] = static_cast<std::byte>(i * 37 + 11);
  if (type == DataType::kBool) {
    for (size_t i = 0; i < n; ++i) t.data.mutable_data()[i] = static_cast<std::byte>(i % 2);
  }
  if (type == DataType::kFp32) {
    const float v[6] = {0.1f, -2.5f, 3.4028235e38f, 1e-45f, 0.f, 123456.789f};
    std::memcpy(t.data.mutable_data(), v, sizeof(v));
  }
  if (type == DataType::kFp64) {
    const double v[6] = {0.1, -2.5, 1.7976931348623157e308, 5e-324, -0.0, 1.0 / 3};
    std::memcpy(t.data.mutable_data(), v, sizeof(v));
  }
  return t;
}

bool JsonCapable(DataType t) { return t != DataType::kFp16 && t != DataType::kBf16; }

TEST_P(CodecRoundTripTest, RequestAndResponseRoundTrip) {
  const DataType type = GetParam();
  const Tensor input = SampleTensor(type);
  for (Transport transport : {Transport::kJson, Transport::kBinary, Transport::kSharedMemory}) {
    if (transport == Transport::kJson && !JsonCapable(type)) continue;
    SCOPED_TRACE(std::string(DataTypeName(type)) + " transport " +
                 std::to_string(static_cast<int>(transport)));
    FakeResolver shm;
    auto& in_region = shm.Add("in", 256);
    shm.Add("out", 256);
    if (transport == Transport::kSharedMemory) {
      std::memcpy(in_region.data() + 8, input.data.data(), input.data.size());
    }
    InferRequest request;
    request.id = "rt";
    request.inputs.push_back(input);
    InputEncoding enc;
    enc.transport = transport;
    enc.shm = {"in", 8, input.data.size()};
    ResponsePlan plan;
    plan.outputs.emplace_back("T", transport, SharedMemoryRef{"out", 16, 200});
    auto encoded = EncodeInferRequest(request, std::span<const InputEncoding>(&enc, 1), plan);
    ASSERT_TRUE(encoded.ok()) << encoded.status().ToString();
    OwnedBody body(encoded->Flatten(), encoded->header_length());
    auto parsed = ParseInferRequest(body.body, "model", "", &shm);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    ASSERT_EQ(parsed->request.inputs.size(), 1u);
    const Tensor& got = parsed->request.inputs[0];
    EXPECT_EQ(got.datatype, type);
    EXPECT_EQ(got.shape, input.shape);
    EXPECT_EQ(Text(got.data), Text(input.data));
    EXPECT_EQ(parsed->plan.outputs.at(0).transport, transport);

    // Identity "model": the output is the input.
    InferResponse response{"model", "1", "rt", {Tensor{"T", type, got.shape, got.data}}};
    auto out = EncodeInferResponse(response, parsed->plan, &shm);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    OwnedBody out_body(out->Flatten(), out->header_length());
    auto decoded = ParseInferResponse(out_body.body);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(decoded->id, "rt");
    EXPECT_EQ(decoded->version, "1");
    ASSERT_EQ(decoded->outputs.size(), 1u);
    EXPECT_EQ(decoded->outputs[0].shape, input.shape);
    EXPECT_EQ(decoded->outputs[0].datatype, type);
    if (transport == Transport::kSharedMemory) {
      EXPECT_TRUE(decoded->outputs[0].data.empty());
      const auto* region = shm.Resolve("out", 16, input.data.size())->data();
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(region), input.data.size()),
                Text(input.data));
    } else {
      EXPECT_EQ(Text(decoded->outputs[0].data), Text(input.data));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CodecRoundTripTest,
                         ::testing::Values(DataType::kBool, DataType::kUint8, DataType::kUint16,
                                           DataType::kUint32, DataType::kUint64,
                                           DataType::kInt8, DataType::kInt16, DataType::kInt32,
                                           DataType::kInt64, DataType::kFp16, DataType::kBf16,
                                           DataType::kFp32, DataType::kFp64, DataType::kBytes),
                         [](const auto& param_info) { return std::string(DataTypeName(param_info.param)); });

TEST(HttpInferCodecTest, EncodeRequestWithoutOutputsAsksForBinaryByDefault) {
  InferRequest request;
  request.timeout_us = 10;
  request.priority = 1;
  const float v[1] = {1.f};
  request.inputs.push_back(MakeTensor<float>("X", DataType::kFp32, {1}, v));
  ResponsePlan plan;
  plan.default_transport = Transport::kBinary;
  auto e = EncodeInferRequest(request, {}, plan);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->json,
            R"({"parameters":{"priority":1,"timeout":10,"binary_data_output":true},)"
            R"("inputs":[{"name":"X","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]})");
  ASSERT_EQ(e->binary.size(), 1u);
  OwnedBody body(e->Flatten(), e->header_length());
  auto parsed = ParseInferRequest(body.body, "m", "", nullptr);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->request.timeout_us, 10u);
  EXPECT_EQ(parsed->request.priority, 1u);
  EXPECT_EQ(parsed->plan.default_transport, Transport::kBinary);
}

}  // namespace
}  // namespace quiver::protocol
