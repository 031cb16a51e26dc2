#include "engine/backends/torch_backend.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/files.h"
#include "engine/backends/default_backends.h"
#include "engine/engine.h"

namespace quiver::engine {
namespace {

namespace fs = std::filesystem;

const fs::path kSourceDir = QUIVER_SOURCE_DIR;
const fs::path kTestData = kSourceDir / "src/engine/backends/testdata";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

ModelConfig ParseConfig(const std::string& text) {
  ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

// The input and expected output written by python/models/make_simple_mlp.py.
struct Reference {
  Shape input_shape;
  Shape output_shape;
  std::vector<float> input;
  std::vector<float> output;
};

Reference ReadReference() {
  const std::string bytes = ReadFile(kTestData / "simple_mlp_reference.bin");
  Reference ref;
  size_t pos = 0;
  auto take = [&](void* out, size_t n) {
    if (pos + n > bytes.size()) throw std::runtime_error("truncated reference file");
    std::memcpy(out, bytes.data() + pos, n);
    pos += n;
  };
  char magic[8];
  take(magic, 8);
  EXPECT_EQ(std::string(magic, 8), "QVREF001");
  for (Shape* shape : {&ref.input_shape, &ref.output_shape}) {
    int32_t rank = 0;
    take(&rank, 4);
    shape->resize(static_cast<size_t>(rank));
    take(shape->data(), 8 * shape->size());
  }
  ref.input.resize(static_cast<size_t>(ElementCount(ref.input_shape)));
  ref.output.resize(static_cast<size_t>(ElementCount(ref.output_shape)));
  take(ref.input.data(), 4 * ref.input.size());
  take(ref.output.data(), 4 * ref.output.size());
  EXPECT_EQ(pos, bytes.size());
  return ref;
}

class TorchBackendTest : public ::testing::Test {
 protected:
  // Creates an instance of `config` whose model file is `file` in testdata (the config's
  // default_model_filename is set to it).
  Result<std::unique_ptr<BackendInstance>> Create(ModelConfig& config, const std::string& file,
                                                  DeviceKind device = DeviceKind::kCpu) {
    config.set_default_model_filename(file);
    return CreateIn(config, kTestData, device);
  }
  Result<std::unique_ptr<BackendInstance>> CreateIn(const ModelConfig& config, const fs::path& dir,
                                                    DeviceKind device = DeviceKind::kCpu) {
    InstanceContext context;
    context.config = &config;
    context.version_dir = dir;
    context.version = 1;
    context.device = device;
    return backend_.CreateInstance(context);
  }

  TorchBackend backend_;
};

ModelConfig SimpleMlpConfig() {
  return ParseConfig(ReadFile(kSourceDir / "models/simple_mlp/config.pbtxt"));
}

// Runs the shipped simple_mlp on `batch` rows taken cyclically from the reference input
// and compares every row with the reference output.
void ExpectSimpleMlpMatches(BackendInstance& instance, const Reference& ref, int64_t batch) {
  const int64_t in_width = ref.input_shape[1];
  const int64_t out_width = ref.output_shape[1];
  const int64_t rows = ref.input_shape[0];
  std::vector<float> input(static_cast<size_t>(batch * in_width));
  for (int64_t b = 0; b < batch; ++b) {
    std::memcpy(&input[static_cast<size_t>(b * in_width)],
                &ref.input[static_cast<size_t>((b % rows) * in_width)], 4 * in_width);
  }
  const std::vector<Tensor> inputs = {
      MakeTensor<float>("INPUT__0", DataType::kFp32, {batch, in_width}, input)};
  const std::vector<std::string> requested = {"OUTPUT__0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  const Status s = instance.Execute({inputs, requested, batch}, outputs, times);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].name, "OUTPUT__0");
  EXPECT_EQ(outputs[0].datatype, DataType::kFp32);
  ASSERT_EQ(outputs[0].shape, (Shape{batch, out_width}));
  ASSERT_EQ(outputs[0].data.size(), static_cast<size_t>(4 * batch * out_width));
  const float* got = outputs[0].data_as<float>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < out_width; ++j) {
      const float want = ref.output[static_cast<size_t>((b % rows) * out_width + j)];
      ASSERT_NEAR(got[b * out_width + j], want, 1e-5) << "row " << b << " column " << j;
    }
  }
  EXPECT_GT(times.infer_ns, 0u);
}

TEST_F(TorchBackendTest, SimpleMlpMatchesPythonReference) {
  const Reference ref = ReadReference();
  ASSERT_EQ(ref.input_shape, (Shape{5, 32}));
  ASSERT_EQ(ref.output_shape, (Shape{5, 8}));
  const ModelConfig config = SimpleMlpConfig();
  ASSERT_TRUE(backend_.ValidateConfig(config).ok());
  auto instance = CreateIn(config, kSourceDir / "models/simple_mlp/1");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  ExpectSimpleMlpMatches(**instance, ref, 5);
}

TEST_F(TorchBackendTest, SimpleMlpRunsBatchSizes1And64) {
  const Reference ref = ReadReference();
  const ModelConfig config = SimpleMlpConfig();
  auto instance = CreateIn(config, kSourceDir / "models/simple_mlp/1");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  ExpectSimpleMlpMatches(**instance, ref, 1);
  ExpectSimpleMlpMatches(**instance, ref, 64);
  ExpectSimpleMlpMatches(**instance, ref, 1);
}

TEST_F(TorchBackendTest, AppliesInputAndOutputReshape) {
  const Reference ref = ReadReference();
  ModelConfig config = ParseConfig(R"cfg(
    name: "mlp_reshaped"
    platform: "pytorch_libtorch"
    max_batch_size: 8
    input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4, 8 ] reshape { shape: [ 32 ] } }
    output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2, -1 ] reshape { shape: [ 8 ] } }
  )cfg");
  auto instance = CreateIn(config, kSourceDir / "models/simple_mlp/1");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<Tensor> inputs = {
      MakeTensor<float>("INPUT__0", DataType::kFp32, {5, 4, 8}, ref.input)};
  const std::vector<std::string> requested = {"OUTPUT__0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  const Status s = (*instance)->Execute({inputs, requested, 5}, outputs, times);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].shape, (Shape{5, 2, 4}));
  for (size_t i = 0; i < ref.output.size(); ++i) {
    EXPECT_NEAR(outputs[0].data_as<float>()[i], ref.output[i], 1e-5);
  }
}

ModelConfig AddMulConfig(const std::string& text) {
  ModelConfig config = ParseConfig(text);
  config.set_name("add_mul");
  config.set_platform("pytorch_libtorch");
  return config;
}

// Runs add_mul-like models: x = {1, 2, 3}, y = {10, 20, 30} under the given input names.
std::vector<Tensor> RunXY(BackendInstance& instance, const std::string& x_name,
                          const std::string& y_name, const std::vector<std::string>& requested,
                          Status* status = nullptr) {
  const std::vector<float> x = {1, 2, 3};
  const std::vector<float> y = {10, 20, 30};
  // y first: the batch's input order must not matter.
  const std::vector<Tensor> inputs = {MakeTensor<float>(y_name, DataType::kFp32, {3}, y),
                                      MakeTensor<float>(x_name, DataType::kFp32, {3}, x)};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  const Status s = instance.Execute({inputs, requested, 0}, outputs, times);
  if (status != nullptr) {
    *status = s;
  } else {
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  return outputs;
}

std::vector<float> Values(const Tensor& t) {
  const float* p = t.data_as<float>();
  return {p, p + t.data.size() / sizeof(float)};
}

TEST_F(TorchBackendTest, BindsInputsByArgumentName) {
  // Config order (y, x) differs from forward(self, x, y): names decide.
  ModelConfig config = AddMulConfig(R"cfg(
    input { name: "y" data_type: TYPE_FP32 dims: [ -1 ] }
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SUM" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "PRODUCT" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "add_mul.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const auto outputs = RunXY(**instance, "x", "y", {"SUM", "PRODUCT"});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].name, "SUM");
  EXPECT_EQ(outputs[0].shape, (Shape{3}));
  EXPECT_EQ(Values(outputs[0]), (std::vector<float>{11, 22, 33}));
  EXPECT_EQ(outputs[1].name, "PRODUCT");
  EXPECT_EQ(Values(outputs[1]), (std::vector<float>{10, 40, 90}));
}

TEST_F(TorchBackendTest, BindsInputsPositionallyByIndexSuffix) {
  // INPUT__1 first in the config: the suffix, not the config order, decides. Outputs by
  // suffix too: OUTPUT__1 is the second tuple element (x * y).
  ModelConfig config = AddMulConfig(R"cfg(
    input { name: "INPUT__1" data_type: TYPE_FP32 dims: [ -1 ] }
    input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "add_mul.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  // x = INPUT__0, y = INPUT__1; x - y would differ, x + y / x * y are symmetric, so use a
  // model whose result depends on order too (list_out below). Here check suffix outputs.
  const auto outputs = RunXY(**instance, "INPUT__0", "INPUT__1", {"OUTPUT__0", "OUTPUT__1"});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].name, "OUTPUT__0");
  EXPECT_EQ(Values(outputs[0]), (std::vector<float>{11, 22, 33}));
  EXPECT_EQ(outputs[1].name, "OUTPUT__1");
  EXPECT_EQ(Values(outputs[1]), (std::vector<float>{10, 40, 90}));
}

TEST_F(TorchBackendTest, PositionalBindingFollowsSuffixNotConfigOrder) {
  // list_out: forward(self, a, b) -> [a - b, b - a].
  ModelConfig config = ParseConfig(R"cfg(
    name: "list_out"
    input { name: "INPUT__1" data_type: TYPE_FP32 dims: [ -1 ] }
    input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "list_out.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const auto outputs = RunXY(**instance, "INPUT__0", "INPUT__1", {"OUTPUT__1", "OUTPUT__0"});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].name, "OUTPUT__1");
  EXPECT_EQ(Values(outputs[0]), (std::vector<float>{9, 18, 27}));  // b - a
  EXPECT_EQ(outputs[1].name, "OUTPUT__0");
  EXPECT_EQ(Values(outputs[1]), (std::vector<float>{-9, -18, -27}));  // a - b
}

TEST_F(TorchBackendTest, ReturnsRequestedSubsetOfTupleOutputs) {
  ModelConfig config = AddMulConfig(R"cfg(
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    input { name: "y" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SUM" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "PRODUCT" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "add_mul.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const auto outputs = RunXY(**instance, "x", "y", {"PRODUCT"});
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].name, "PRODUCT");
  EXPECT_EQ(Values(outputs[0]), (std::vector<float>{10, 40, 90}));
}

TEST_F(TorchBackendTest, MoreConfigOutputsThanResultsIsInternal) {
  ModelConfig config = AddMulConfig(R"cfg(
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    input { name: "y" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SUM" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "PRODUCT" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "EXTRA" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "add_mul.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  Status s;
  RunXY(**instance, "x", "y", {"EXTRA"}, &s);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("EXTRA"), std::string::npos) << s.message();
}

TEST_F(TorchBackendTest, RunsInt64Model) {
  ModelConfig config = ParseConfig(R"cfg(
    name: "int64_scale"
    max_batch_size: 4
    input { name: "INPUT__0" data_type: TYPE_INT64 dims: [ 2 ] }
    output { name: "OUTPUT__0" data_type: TYPE_INT64 dims: [ 2 ] }
  )cfg");
  auto instance = Create(config, "int64_scale.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<int64_t> v = {1, -2, 3, 1LL << 40};
  const std::vector<Tensor> inputs = {MakeTensor<int64_t>("INPUT__0", DataType::kInt64, {2, 2}, v)};
  const std::vector<std::string> requested = {"OUTPUT__0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  ASSERT_TRUE((*instance)->Execute({inputs, requested, 2}, outputs, times).ok());
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].datatype, DataType::kInt64);
  EXPECT_EQ(outputs[0].shape, (Shape{2, 2}));
  const int64_t* p = outputs[0].data_as<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(p, p + 4), (std::vector<int64_t>{3, -6, 9, 3LL << 40}));
}

TEST_F(TorchBackendTest, OutputDtypeMismatchIsInternal) {
  ModelConfig config = ParseConfig(R"cfg(
    name: "to_double"
    input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "to_double.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<float> v = {1, 2};
  const std::vector<Tensor> inputs = {MakeTensor<float>("INPUT__0", DataType::kFp32, {2}, v)};
  const std::vector<std::string> requested = {"OUTPUT__0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  const Status s = (*instance)->Execute({inputs, requested, 0}, outputs, times);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  for (const char* part : {"OUTPUT__0", "FP32", "Double"}) {
    EXPECT_NE(s.message().find(part), std::string::npos) << part << " in " << s.message();
  }
}

TEST_F(TorchBackendTest, ForwardThatThrowsIsInternalAndInstanceSurvives) {
  ModelConfig config = ParseConfig(R"cfg(
    name: "matmul4"
    max_batch_size: 8
    input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] }
  )cfg");
  auto instance = Create(config, "matmul4.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<std::string> requested = {"OUTPUT__0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;

  const std::vector<float> wrong(6, 1.0f);
  const std::vector<Tensor> bad = {MakeTensor<float>("INPUT__0", DataType::kFp32, {2, 3}, wrong)};
  const Status s = (*instance)->Execute({bad, requested, 2}, outputs, times);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("matmul4"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("cannot be multiplied"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();

  const std::vector<float> right(8, 1.0f);
  const std::vector<Tensor> good = {MakeTensor<float>("INPUT__0", DataType::kFp32, {2, 4}, right)};
  ASSERT_TRUE((*instance)->Execute({good, requested, 2}, outputs, times).ok());
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(Values(outputs[0]), (std::vector<float>{4, 4, 4, 4}));
}

TEST_F(TorchBackendTest, OutputAliasingAnInputKeepsTheInputAlive) {
  // passthrough: forward(self, x, scale: float = 2.0) -> (x, x * scale); scale unbound.
  ModelConfig config = ParseConfig(R"cfg(
    name: "passthrough"
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SAME" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SCALED" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "passthrough.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4});
  std::weak_ptr<std::vector<float>> weak = owner;
  std::vector<Tensor> outputs;
  {
    const std::vector<Tensor> inputs = {
        Tensor{"x", DataType::kFp32, {4}, Buffer::Borrow(owner->data(), 16, owner)}};
    owner.reset();
    const std::vector<std::string> requested = {"SAME", "SCALED"};
    ComputeTimes times;
    const Status s = (*instance)->Execute({inputs, requested, 0}, outputs, times);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  instance->reset();  // outputs outlive the instance too
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(Values(outputs[0]), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(Values(outputs[1]), (std::vector<float>{2, 4, 6, 8}));
  outputs.clear();
  EXPECT_TRUE(weak.expired());
}

TEST_F(TorchBackendTest, InputsAreNotCopied) {
  // The zero-copy output of passthrough points at the request's bytes.
  ModelConfig config = ParseConfig(R"cfg(
    name: "passthrough"
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SAME" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "passthrough.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<float> v = {5, 6};
  const std::vector<Tensor> inputs = {MakeTensor<float>("x", DataType::kFp32, {2}, v)};
  const std::vector<std::string> requested = {"SAME"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  ASSERT_TRUE((*instance)->Execute({inputs, requested, 0}, outputs, times).ok());
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].data.data(), inputs[0].data.data());
}

TEST_F(TorchBackendTest, CopiesMisalignedInputs) {
  // Bytes at an odd offset (as inside a network message) are copied, not wrapped.
  ModelConfig config = ParseConfig(R"cfg(
    name: "passthrough"
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SAME" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SCALED" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "passthrough.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<float> v = {1.5f, -2.0f, 3.0f};
  Buffer message = Buffer::Allocate(1 + sizeof(float) * v.size());
  std::memcpy(message.mutable_data() + 1, v.data(), sizeof(float) * v.size());
  const std::vector<Tensor> inputs = {
      Tensor{"x", DataType::kFp32, {3}, message.Slice(1, sizeof(float) * v.size())}};
  const std::vector<std::string> requested = {"SAME", "SCALED"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  ASSERT_TRUE((*instance)->Execute({inputs, requested, 0}, outputs, times).ok());
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_NE(outputs[0].data.data(), inputs[0].data.data());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(outputs[0].data.data()) % alignof(float), 0u);
  EXPECT_EQ(Values(outputs[0]), v);
  EXPECT_EQ(Values(outputs[1]), (std::vector<float>{3.0f, -4.0f, 6.0f}));
}

TEST_F(TorchBackendTest, MissingRequiredInputIsInvalidArgument) {
  ModelConfig config = AddMulConfig(R"cfg(
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    input { name: "y" data_type: TYPE_FP32 dims: [ -1 ] optional: true }
    output { name: "SUM" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "add_mul.pt");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<float> v = {1};
  const std::vector<Tensor> inputs = {MakeTensor<float>("x", DataType::kFp32, {1}, v)};
  const std::vector<std::string> requested = {"SUM"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  const Status s = (*instance)->Execute({inputs, requested, 0}, outputs, times);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'y'"), std::string::npos) << s.message();
}

TEST_F(TorchBackendTest, MissingModelFileNamesThePath) {
  ModelConfig config = SimpleMlpConfig();
  const fs::path dir = kSourceDir / "models/simple_mlp/does_not_exist";
  auto instance = CreateIn(config, dir);
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(instance.status().message().find((dir / "model.pt").string()), std::string::npos)
      << instance.status().message();
}

TEST_F(TorchBackendTest, CorruptModelFileNamesThePathWithoutBacktrace) {
  const fs::path dir = fs::path(::testing::TempDir()) / "quiver_torch_corrupt";
  fs::create_directories(dir);
  std::ofstream(dir / "model.pt") << "this is not a TorchScript archive";
  ModelConfig config = SimpleMlpConfig();
  auto instance = CreateIn(config, dir);
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.status().code(), StatusCode::kInvalidArgument);
  const std::string message = instance.status().message();
  EXPECT_NE(message.find((dir / "model.pt").string()), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  RemoveTree(dir);
}

TEST_F(TorchBackendTest, UnknownInputNameListsForwardArguments) {
  ModelConfig config = AddMulConfig(R"cfg(
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    input { name: "z" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SUM" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "add_mul.pt");
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.status().code(), StatusCode::kInvalidArgument);
  const std::string message = instance.status().message();
  EXPECT_NE(message.find("'z'"), std::string::npos) << message;
  EXPECT_NE(message.find("forward(x, y)"), std::string::npos) << message;
}

TEST_F(TorchBackendTest, PositionalIndexOutOfRangeIsAnError) {
  ModelConfig config = AddMulConfig(R"cfg(
    input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
    input { name: "INPUT__2" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "add_mul.pt");
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(instance.status().message().find("INPUT__2"), std::string::npos);
  EXPECT_NE(instance.status().message().find("forward(x, y)"), std::string::npos);
}

TEST_F(TorchBackendTest, UnboundArgumentWithoutDefaultIsAnError) {
  ModelConfig config = AddMulConfig(R"cfg(
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SUM" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "add_mul.pt");
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(instance.status().message().find("'y'"), std::string::npos)
      << instance.status().message();
}

TEST_F(TorchBackendTest, GpuInstanceWithoutCudaIsUnsupported) {
#ifdef QUIVER_WITH_CUDA
  GTEST_SKIP() << "this build has CUDA";
#else
  ModelConfig config = SimpleMlpConfig();
  auto instance = CreateIn(config, kSourceDir / "models/simple_mlp/1", DeviceKind::kGpu);
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(instance.status().message().find("KIND_CPU"), std::string::npos);

  config.mutable_instance_group(0)->set_kind(inference::ModelInstanceGroup::KIND_GPU);
  EXPECT_EQ(backend_.ValidateConfig(config).code(), StatusCode::kUnsupported);
#endif
}

// simple_mlp inputs: `batch` rows of 32 pseudo-random values, fixed by `seed`.
std::vector<float> MlpInput(int64_t batch, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> values(static_cast<size_t>(batch * 32));
  for (float& v : values) v = dist(rng);
  return values;
}

// simple_mlp's OUTPUT__0 for `input` (batch x 32 in `bytes`) on `instance`.
std::vector<float> RunMlp(BackendInstance& instance, int64_t batch, Buffer bytes) {
  const std::vector<Tensor> inputs = {
      Tensor{"INPUT__0", DataType::kFp32, {batch, 32}, std::move(bytes)}};
  const std::vector<std::string> requested = {"OUTPUT__0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  const Status s = instance.Execute({inputs, requested, batch}, outputs, times);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok() || outputs.size() != 1) return {};
  EXPECT_EQ(outputs[0].datatype, DataType::kFp32);
  EXPECT_EQ(outputs[0].shape, (Shape{batch, 8}));
  EXPECT_EQ(outputs[0].data.size(), static_cast<size_t>(4 * batch * 8));
  EXPECT_GT(times.infer_ns, 0u);
  // Reading the bytes here shows that they are in host memory.
  const float* data = outputs[0].data_as<float>();
  return std::vector<float>(data, data + outputs[0].data.size() / 4);
}

// GPU and CPU results agree to 1e-4 relative (1e-5 absolute near zero): the matrix
// products accumulate in another order, nothing more (no TF32 by libtorch's default).
::testing::AssertionResult CloseToCpu(const std::vector<float>& gpu,
                                      const std::vector<float>& cpu) {
  if (gpu.size() != cpu.size()) {
    return ::testing::AssertionFailure() << "sizes " << gpu.size() << " vs " << cpu.size();
  }
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double excess = std::abs(double(gpu[i]) - cpu[i]) - (1e-4 * std::abs(cpu[i]) + 1e-5);
    if (excess > worst) {
      worst = excess;
      worst_at = i;
    }
  }
  if (worst > 0) {
    return ::testing::AssertionFailure() << "element " << worst_at << ": GPU " << gpu[worst_at]
                                         << " vs CPU " << cpu[worst_at];
  }
  return ::testing::AssertionSuccess();
}

#ifdef QUIVER_WITH_CUDA
bool HasCudaDevice() { return at::hasCUDA() && at::getNumGPUs() > 0; }
#define QUIVER_SKIP_WITHOUT_CUDA_DEVICE() \
  if (!HasCudaDevice()) GTEST_SKIP() << "libtorch sees no CUDA device"
#else
#define QUIVER_SKIP_WITHOUT_CUDA_DEVICE() GTEST_SKIP() << "built without QUIVER_WITH_CUDA"
#endif

TEST_F(TorchBackendTest, GpuInstanceOnAMissingDeviceIsUnavailable) {
#ifndef QUIVER_WITH_CUDA
  GTEST_SKIP() << "built without QUIVER_WITH_CUDA";
#else
  ModelConfig config = SimpleMlpConfig();
  config.mutable_instance_group(0)->set_kind(inference::ModelInstanceGroup::KIND_GPU);
  EXPECT_TRUE(backend_.ValidateConfig(config).ok());
  InstanceContext context;
  context.config = &config;
  context.version_dir = kSourceDir / "models/simple_mlp/1";
  context.version = 1;
  context.device = DeviceKind::kGpu;
  context.device_id = at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0;
  auto instance = backend_.CreateInstance(context);
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(instance.status().message().find("CUDA device"), std::string::npos)
      << instance.status().message();
#endif
}

TEST_F(TorchBackendTest, GpuInstanceMatchesCpuInstance) {
  QUIVER_SKIP_WITHOUT_CUDA_DEVICE();
  ModelConfig config = SimpleMlpConfig();
  config.mutable_instance_group(0)->set_kind(inference::ModelInstanceGroup::KIND_GPU);
  ASSERT_TRUE(backend_.ValidateConfig(config).ok());
  const fs::path dir = kSourceDir / "models/simple_mlp/1";
  auto cpu = CreateIn(config, dir, DeviceKind::kCpu);
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
  auto gpu = CreateIn(config, dir, DeviceKind::kGpu);
  ASSERT_TRUE(gpu.ok()) << gpu.status().ToString();
  // Several runs per size: TorchScript's profiling executor optimises the graph after the
  // first runs (on CUDA it may fuse kernels), and each version must agree.
  for (int64_t batch : {1, 64, 256, 7}) {
    const std::vector<float> input = MlpInput(batch, static_cast<unsigned>(batch));
    const Buffer bytes = Buffer::Copy(input.data(), 4 * input.size());
    const std::vector<float> want = RunMlp(**cpu, batch, bytes);
    for (int run = 0; run < 3; ++run) {
      EXPECT_TRUE(CloseToCpu(RunMlp(**gpu, batch, bytes), want))
          << "batch " << batch << " run " << run;
    }
    // Misaligned request bytes take the copying path before the transfer.
    Buffer shifted = Buffer::Allocate(bytes.size() + 1);
    std::memcpy(shifted.mutable_data() + 1, bytes.data(), bytes.size());
    EXPECT_TRUE(CloseToCpu(RunMlp(**gpu, batch, shifted.Slice(1, bytes.size())), want))
        << "misaligned, batch " << batch;
  }
}

TEST_F(TorchBackendTest, GpuOutputsOutliveLaterBatchesAndTheInstance) {
  QUIVER_SKIP_WITHOUT_CUDA_DEVICE();
  // On a GPU both outputs come back through the instance's pinned staging buffers, which
  // later batches reuse (and grow): a response is a copy and must not change with them.
  ModelConfig config = ParseConfig(R"cfg(
    name: "passthrough"
    input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SAME" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "SCALED" data_type: TYPE_FP32 dims: [ -1 ] }
  )cfg");
  auto instance = Create(config, "passthrough.pt", DeviceKind::kGpu);
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<std::string> requested = {"SAME", "SCALED"};
  auto run = [&](const std::vector<float>& v) {
    const std::vector<Tensor> inputs = {
        MakeTensor<float>("x", DataType::kFp32, {static_cast<int64_t>(v.size())}, v)};
    std::vector<Tensor> outputs;
    ComputeTimes times;
    const Status s = (*instance)->Execute({inputs, requested, 0}, outputs, times);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(outputs.size(), 2u);
    if (!outputs.empty()) {
      EXPECT_NE(outputs[0].data.data(), inputs[0].data.data());
    }
    return outputs;
  };
  const std::vector<Tensor> first = run({1, 2, 3, 4});
  const std::vector<Tensor> second = run({-1, -2, -3, -4, -5, -6, -7, -8});
  const std::vector<Tensor> third = run({0.5f});
  instance->reset();
  ASSERT_EQ(first.size(), 2u);
  ASSERT_EQ(second.size(), 2u);
  ASSERT_EQ(third.size(), 2u);
  EXPECT_EQ(Values(first[0]), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(Values(first[1]), (std::vector<float>{2, 4, 6, 8}));
  EXPECT_EQ(Values(second[0]), (std::vector<float>{-1, -2, -3, -4, -5, -6, -7, -8}));
  EXPECT_EQ(Values(second[1]), (std::vector<float>{-2, -4, -6, -8, -10, -12, -14, -16}));
  EXPECT_EQ(Values(third[0]), (std::vector<float>{0.5f}));
  EXPECT_EQ(Values(third[1]), (std::vector<float>{1.0f}));
}

TEST_F(TorchBackendTest, GpuInstanceSurvivesAFailingForward) {
  QUIVER_SKIP_WITHOUT_CUDA_DEVICE();
  // The input's copy to the device is in flight when forward() throws; the instance waits
  // for it before its staging buffer serves the next batch.
  ModelConfig config = ParseConfig(R"cfg(
    name: "matmul4"
    max_batch_size: 8
    input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] }
    output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] }
  )cfg");
  auto instance = Create(config, "matmul4.pt", DeviceKind::kGpu);
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  const std::vector<std::string> requested = {"OUTPUT__0"};
  std::vector<Tensor> outputs;
  ComputeTimes times;
  const std::vector<float> wrong(6, 1.0f);
  const std::vector<Tensor> bad = {MakeTensor<float>("INPUT__0", DataType::kFp32, {2, 3}, wrong)};
  const Status s = (*instance)->Execute({bad, requested, 2}, outputs, times);
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  const std::vector<float> right(8, 1.0f);
  const std::vector<Tensor> good = {MakeTensor<float>("INPUT__0", DataType::kFp32, {2, 4}, right)};
  const Status ok = (*instance)->Execute({good, requested, 2}, outputs, times);
  ASSERT_TRUE(ok.ok()) << ok.ToString();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(Values(outputs[0]), (std::vector<float>{4, 4, 4, 4}));
}

TEST_F(TorchBackendTest, EngineServesAGpuInstanceGroup) {
  QUIVER_SKIP_WITHOUT_CUDA_DEVICE();
  const fs::path root =
      fs::path(::testing::TempDir()) / ("quiver_torch_gpu_" + std::to_string(::getpid()));
  RemoveTree(root);
  fs::create_directories(root / "simple_mlp/1");
  fs::copy_file(kSourceDir / "models/simple_mlp/1/model.pt", root / "simple_mlp/1/model.pt");
  ModelConfig config = SimpleMlpConfig();
  config.clear_instance_group();
  auto* group = config.add_instance_group();
  group->set_count(2);
  group->set_kind(inference::ModelInstanceGroup::KIND_GPU);
  group->add_gpus(0);
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(config, &text));
  std::ofstream(root / "simple_mlp/config.pbtxt") << text;

  EngineOptions options;
  options.model_repositories = {root};
  options.backends = DefaultBackendRegistry();
  auto engine = Engine::Create(std::move(options));
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  auto index = (*engine)->Index();
  ASSERT_TRUE(index.ok());
  for (const auto& entry : *index) EXPECT_EQ(entry.state, "READY") << entry.reason;
  ASSERT_TRUE((*engine)->ModelReady("simple_mlp", ""));

  const ModelConfig cpu_config = SimpleMlpConfig();
  auto cpu = CreateIn(cpu_config, kSourceDir / "models/simple_mlp/1");
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();

  // Concurrent requests of different sizes, so that the dynamic batcher joins some of them
  // on the GPU instances; every response must match the CPU instance row for row.
  constexpr int kRequests = 24;
  std::vector<std::vector<float>> inputs;
  std::vector<std::promise<Result<InferResponse>>> promises(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    const int64_t rows = 1 + i % 5;
    inputs.push_back(MlpInput(rows, 100 + static_cast<unsigned>(i)));
    InferRequest request;
    request.model = "simple_mlp";
    request.id = std::to_string(i);
    request.inputs = {MakeTensor<float>("INPUT__0", DataType::kFp32, {rows, 32}, inputs.back())};
    (*engine)->Infer(std::move(request), [&promises, i](Result<InferResponse> r) {
      promises[static_cast<size_t>(i)].set_value(std::move(r));
    });
  }
  // Every callback has run before any assertion can return (and destroy `promises`).
  std::vector<Result<InferResponse>> responses;
  for (auto& promise : promises) responses.push_back(promise.get_future().get());
  for (int i = 0; i < kRequests; ++i) {
    const auto& response = responses[static_cast<size_t>(i)];
    ASSERT_TRUE(response.ok()) << "request " << i << ": " << response.status().ToString();
    ASSERT_EQ(response->outputs.size(), 1u);
    const Tensor& out = response->outputs[0];
    const int64_t rows = 1 + i % 5;
    EXPECT_EQ(out.name, "OUTPUT__0");
    ASSERT_EQ(out.shape, (Shape{rows, 8}));
    ASSERT_EQ(out.data.size(), static_cast<size_t>(4 * rows * 8));
    const std::vector<float>& in = inputs[static_cast<size_t>(i)];
    const std::vector<float> want = RunMlp(**cpu, rows, Buffer::Copy(in.data(), 4 * in.size()));
    // Reading the response's bytes here shows that they are in host memory.
    const std::vector<float> got(out.data_as<float>(), out.data_as<float>() + rows * 8);
    EXPECT_TRUE(CloseToCpu(got, want)) << "request " << i;
  }
  engine->reset();
  RemoveTree(root);
}

TEST_F(TorchBackendTest, RejectsTypesLibtorchCannotHold) {
  for (auto type : {inference::TYPE_UINT16, inference::TYPE_UINT32, inference::TYPE_UINT64,
                    inference::TYPE_STRING}) {
    ModelConfig config = SimpleMlpConfig();
    config.mutable_output(0)->set_data_type(type);
    const Status s = backend_.ValidateConfig(config);
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_NE(s.message().find("OUTPUT__0"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(inference::DataType_Name(type)), std::string::npos) << s.message();
  }
  ModelConfig config = SimpleMlpConfig();
  config.mutable_input(0)->set_data_type(inference::TYPE_STRING);
  EXPECT_EQ(backend_.ValidateConfig(config).code(), StatusCode::kUnsupported);
}

TEST_F(TorchBackendTest, IntraOpThreadCountParameter) {
  ModelConfig config = SimpleMlpConfig();
  (*config.mutable_parameters())["INTRA_OP_THREAD_COUNT"].set_string_value("two");
  EXPECT_EQ(backend_.ValidateConfig(config).code(), StatusCode::kInvalidArgument);

  const int before = at::get_num_threads();
  (*config.mutable_parameters())["INTRA_OP_THREAD_COUNT"].set_string_value("2");
  ASSERT_TRUE(backend_.ValidateConfig(config).ok());
  auto instance = CreateIn(config, kSourceDir / "models/simple_mlp/1");
  ASSERT_TRUE(instance.ok()) << instance.status().ToString();
  EXPECT_EQ(at::get_num_threads(), 2);
  at::set_num_threads(before);
}

}  // namespace
}  // namespace quiver::engine
