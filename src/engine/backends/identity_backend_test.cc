#include "engine/backends/identity_backend.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace quiver::engine {
namespace {

ModelConfig ParseConfig(const std::string& text) {
  ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

// A two-input identity config whose tensors have `type`.
ModelConfig PairConfig(inference::DataType type) {
  ModelConfig config;
  config.set_name("ident");
  config.set_backend("identity");
  for (int i = 0; i < 2; ++i) {
    auto* in = config.add_input();
    in->set_name("IN" + std::to_string(i));
    in->set_data_type(type);
    in->add_dims(-1);
    auto* out = config.add_output();
    out->set_name("OUT" + std::to_string(i));
    out->set_data_type(type);
    out->add_dims(-1);
  }
  return config;
}

std::unique_ptr<BackendInstance> MakeInstance(const IdentityBackend& backend,
                                              const ModelConfig& config) {
  InstanceContext context;
  context.config = &config;
  auto instance = backend.CreateInstance(context);
  EXPECT_TRUE(instance.ok()) << instance.status().ToString();
  return instance.ok() ? std::move(instance).value() : nullptr;
}

TEST(IdentityBackendTest, EveryDataTypeRoundTripsZeroCopy) {
  IdentityBackend backend;
  for (int t = inference::TYPE_BOOL; t <= inference::DataType_MAX; ++t) {
    const auto config_type = static_cast<inference::DataType>(t);
    const DataType type = DataTypeFromConfigName(inference::DataType_Name(config_type));
    ASSERT_NE(type, DataType::kInvalid) << inference::DataType_Name(config_type);
    SCOPED_TRACE(std::string(DataTypeName(type)));
    const ModelConfig config = PairConfig(config_type);
    ASSERT_TRUE(backend.ValidateConfig(config).ok());
    auto instance = MakeInstance(backend, config);
    ASSERT_NE(instance, nullptr);

    Tensor in0;
    Tensor in1;
    if (type == DataType::kBytes) {
      const std::array<std::string, 3> strings = {"a", "", "quiver"};
      in0 = Tensor{"IN0", type, {3}, MakeBytesBuffer(strings)};
      in1 = Tensor{"IN1", type, {1}, MakeBytesBuffer(std::span(strings).first(1))};
    } else {
      const size_t size = DataTypeSize(type);
      in0 = Tensor{"IN0", type, {2, 3}, Buffer::Allocate(6 * size)};
      in1 = Tensor{"IN1", type, {4}, Buffer::Allocate(4 * size)};
      std::memset(in0.data.mutable_data(), 1, in0.data.size());
      std::memset(in1.data.mutable_data(), 2, in1.data.size());
    }
    // Inputs arrive in any order.
    const std::vector<Tensor> inputs = {in1, in0};
    const std::vector<std::string> requested = {"OUT0", "OUT1"};
    std::vector<Tensor> outputs;
    ComputeTimes times;
    ASSERT_TRUE(instance->Execute({inputs, requested, 0}, outputs, times).ok());
    ASSERT_EQ(outputs.size(), 2u);
    EXPECT_EQ(outputs[0].name, "OUT0");
    EXPECT_EQ(outputs[0].datatype, type);
    EXPECT_EQ(outputs[0].shape, in0.shape);
    EXPECT_EQ(outputs[0].data.data(), in0.data.data());
    EXPECT_EQ(outputs[0].data.size(), in0.data.size());
    EXPECT_EQ(outputs[1].name, "OUT1");
    EXPECT_EQ(outputs[1].shape, in1.shape);
    EXPECT_EQ(outputs[1].data.data(), in1.data.data());
  }
}

TEST(IdentityBackendTest, OutputOutlivesInputTensor) {
  IdentityBackend backend;
  const ModelConfig config = PairConfig(inference::TYPE_STRING);
  auto instance = MakeInstance(backend, config);
  ASSERT_NE(instance, nullptr);
  std::vector<Tensor> outputs;
  {
    const std::array<std::string, 2> strings = {"hello", "world"};
    const std::vector<Tensor> inputs = {
        Tensor{"IN0", DataType::kBytes, {2}, MakeBytesBuffer(strings)},
        Tensor{"IN1", DataType::kBytes, {0}, MakeBytesBuffer({})}};
    const std::vector<std::string> requested = {"OUT0"};
    ComputeTimes times;
    ASSERT_TRUE(instance->Execute({inputs, requested, 0}, outputs, times).ok());
  }
  ASSERT_EQ(outputs.size(), 1u);
  auto offsets = BytesElementOffsets(outputs[0].data.bytes());
  ASSERT_TRUE(offsets.ok());
  ASSERT_EQ(offsets->size(), 3u);
  const auto* p = reinterpret_cast<const char*>(outputs[0].data.data());
  EXPECT_EQ(std::string(p + 4, 5), "hello");
  EXPECT_EQ(std::string(p + 13, 5), "world");
}

TEST(IdentityBackendTest, ReturnsRequestedSubsetInRequestedOrder) {
  IdentityBackend backend;
  ModelConfig config = PairConfig(inference::TYPE_INT32);
  auto* in = config.add_input();
  in->set_name("IN2");
  in->set_data_type(inference::TYPE_INT32);
  auto* out = config.add_output();
  out->set_name("OUT2");
  out->set_data_type(inference::TYPE_INT32);
  auto instance = MakeInstance(backend, config);
  ASSERT_NE(instance, nullptr);

  const std::vector<int32_t> v0 = {1, 2};
  const std::vector<int32_t> v2 = {7};
  // IN1 is absent: outputs that need it are not requested.
  const std::vector<Tensor> inputs = {MakeTensor<int32_t>("IN2", DataType::kInt32, {1}, v2),
                                      MakeTensor<int32_t>("IN0", DataType::kInt32, {2}, v0)};
  const std::vector<std::string> requested = {"OUT2", "OUT0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  ASSERT_TRUE(instance->Execute({inputs, requested, 0}, outputs, times).ok());
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].name, "OUT2");
  EXPECT_EQ(outputs[0].data.data(), inputs[0].data.data());
  EXPECT_EQ(outputs[1].name, "OUT0");
  EXPECT_EQ(outputs[1].data.data(), inputs[1].data.data());
  EXPECT_EQ(outputs[1].data_as<int32_t>()[1], 2);
}

TEST(IdentityBackendTest, KeepsBatchDimension) {
  IdentityBackend backend;
  const ModelConfig config = ParseConfig(R"cfg(
    name: "batched"
    backend: "identity"
    max_batch_size: 8
    input { name: "INPUT0" data_type: TYPE_FP32 dims: [ 3 ] }
    output { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 3 ] }
  )cfg");
  auto instance = MakeInstance(backend, config);
  ASSERT_NE(instance, nullptr);
  const std::vector<float> v(12, 0.5f);
  const std::vector<Tensor> inputs = {MakeTensor<float>("INPUT0", DataType::kFp32, {4, 3}, v)};
  const std::vector<std::string> requested = {"OUTPUT0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  ASSERT_TRUE(instance->Execute({inputs, requested, 4}, outputs, times).ok());
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].shape, (Shape{4, 3}));
}

TEST(IdentityBackendTest, UnknownOutputOrMissingInputIsAnError) {
  IdentityBackend backend;
  const ModelConfig config = PairConfig(inference::TYPE_FP32);
  auto instance = MakeInstance(backend, config);
  ASSERT_NE(instance, nullptr);
  const std::vector<float> v = {1};
  const std::vector<Tensor> inputs = {MakeTensor<float>("IN0", DataType::kFp32, {1}, v)};
  std::vector<Tensor> outputs;
  ComputeTimes times;

  const std::vector<std::string> unknown = {"NOPE"};
  Status s = instance->Execute({inputs, unknown, 0}, outputs, times);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("NOPE"), std::string::npos) << s.message();

  const std::vector<std::string> needs_missing = {"OUT1"};
  s = instance->Execute({inputs, needs_missing, 0}, outputs, times);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("IN1"), std::string::npos) << s.message();
}

TEST(IdentityBackendTest, RejectsCountMismatch) {
  IdentityBackend backend;
  ModelConfig config = PairConfig(inference::TYPE_FP32);
  config.mutable_output()->RemoveLast();
  const Status s = backend.ValidateConfig(config);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ident"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("2 inputs and 1 outputs"), std::string::npos) << s.message();

  InstanceContext context;
  context.config = &config;
  EXPECT_EQ(backend.CreateInstance(context).status().code(), StatusCode::kInvalidArgument);
}

TEST(IdentityBackendTest, RejectsTypeMismatch) {
  IdentityBackend backend;
  ModelConfig config = PairConfig(inference::TYPE_FP32);
  config.mutable_output(1)->set_data_type(inference::TYPE_FP16);
  const Status s = backend.ValidateConfig(config);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  for (const char* part : {"ident", "OUT1", "IN1", "TYPE_FP16", "TYPE_FP32"}) {
    EXPECT_NE(s.message().find(part), std::string::npos) << part << " in " << s.message();
  }
}

TEST(IdentityBackendTest, ShippedConfigsAreValid) {
  IdentityBackend backend;
  for (const char* model : {"identity_fp32", "identity_bytes"}) {
    const std::string path = std::string(QUIVER_SOURCE_DIR) + "/models/" + model + "/config.pbtxt";
    std::FILE* f = std::fopen(path.c_str(), "rb");
    ASSERT_NE(f, nullptr) << path;
    std::string text;
    char chunk[4096];
    size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) text.append(chunk, n);
    std::fclose(f);
    const ModelConfig config = ParseConfig(text);
    EXPECT_EQ(config.name(), model);
    EXPECT_EQ(config.backend(), "identity");
    EXPECT_TRUE(backend.ValidateConfig(config).ok()) << model;
  }
}

}  // namespace
}  // namespace quiver::engine
