#include "engine/input_validator.h"

#include "engine/model_config.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <vector>

namespace quiver::engine {
namespace {

ModelConfig Parse(const char* text) {
  ModelConfig c;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c));
  return c;
}

const char* kBatching = R"pb(
  name: "m" max_batch_size: 8
  input { name: "X" data_type: TYPE_FP32 dims: [ -1, 3 ] }
  input { name: "Y" data_type: TYPE_INT64 dims: [ 2 ] }
  input { name: "OPT" data_type: TYPE_FP32 dims: [ 1 ] optional: true }
  output { name: "Z" data_type: TYPE_FP32 dims: [ 1 ] }
)pb";

Tensor Fp32(std::string name, Shape shape) {
  std::vector<float> v(static_cast<size_t>(ElementCount(shape)), 1.0f);
  return MakeTensor<float>(std::move(name), DataType::kFp32, std::move(shape), v);
}
Tensor Int64(std::string name, Shape shape) {
  std::vector<int64_t> v(static_cast<size_t>(ElementCount(shape)), 7);
  return MakeTensor<int64_t>(std::move(name), DataType::kInt64, std::move(shape), v);
}

InferRequest Good() {
  InferRequest r;
  r.model = "m";
  r.inputs = {Fp32("X", {4, 5, 3}), Int64("Y", {4, 2})};
  return r;
}

void ExpectError(const InferRequest& r, std::vector<std::string> fragments,
                 const char* config = kBatching) {
  auto result = ValidateInferRequest(Parse(config), "1", r);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  for (const auto& f : fragments) {
    EXPECT_NE(result.status().message().find(f), std::string::npos)
        << "missing '" << f << "' in: " << result.status().message();
  }
}

TEST(InputValidatorTest, AcceptsValidRequestAndReturnsBatchSize) {
  auto result = ValidateInferRequest(Parse(kBatching), "1", Good());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(*result, 4);
}

TEST(InputValidatorTest, UnknownInput) {
  auto r = Good();
  r.inputs.push_back(Fp32("W", {4, 1}));
  ExpectError(r, {"unexpected inference input 'W' for model 'm'"});
}

TEST(InputValidatorTest, DuplicateInput) {
  auto r = Good();
  r.inputs.push_back(Int64("Y", {4, 2}));
  ExpectError(r, {"[request id: <id_unknown>] input 'Y' already exists in request"});
}

TEST(InputValidatorTest, MissingInput) {
  auto r = Good();
  r.inputs.pop_back();
  ExpectError(r, {"[request id: <id_unknown>] expected number of inputs between 2 and 3 but got "
                  "1 inputs for model 'm'. Got input(s) ['X'], but missing required input(s) "
                  "['Y']. Please provide all required input(s)."});
  r.inputs.clear();
  ExpectError(r, {"but got 0 inputs", "Got input(s) [], but missing required input(s) "
                  "['X','Y']"});
  r.id = "req-7";
  ExpectError(r, {"[request id: req-7] expected"});
}

TEST(InputValidatorTest, WrongDatatype) {
  auto r = Good();
  r.inputs[1] = Fp32("Y", {4, 2});
  ExpectError(r, {"inference input 'Y' data-type is 'FP32', but model 'm' expects 'INT64'"});
}

TEST(InputValidatorTest, WrongRank) {
  auto r = Good();
  r.inputs[0] = Fp32("X", {5, 3});
  ExpectError(r, {"unexpected shape for input 'X' for model 'm'. Expected [-1,-1,3], got [5,3]. "
                  "NOTE: Setting a non-zero max_batch_size"});
}

TEST(InputValidatorTest, WrongFixedDim) {
  auto r = Good();
  r.inputs[0] = Fp32("X", {4, 5, 2});
  ExpectError(r, {"unexpected shape for input 'X' for model 'm'. Expected [-1,-1,3], got "
                  "[4,5,2]"});
}

TEST(InputValidatorTest, BatchTooLarge) {
  auto r = Good();
  r.inputs = {Fp32("X", {9, 1, 3}), Int64("Y", {9, 2})};
  ExpectError(r, {"[request id: <id_unknown>] inference request batch-size must be <= 8 for 'm'"});
}

TEST(InputValidatorTest, BatchZero) {
  auto r = Good();
  r.inputs = {Fp32("X", {0, 1, 3}), Int64("Y", {0, 2})};
  ExpectError(r, {"batch-size must be >= 1", "got 0"});
}

TEST(InputValidatorTest, InconsistentBatch) {
  auto r = Good();
  r.inputs[1] = Int64("Y", {3, 2});
  ExpectError(r, {"input 'Y' batch size does not match other inputs for 'm'", "'X': 4"});
}

TEST(InputValidatorTest, ByteSizeMismatch) {
  auto r = Good();
  r.inputs[0].data = r.inputs[0].data.Slice(0, r.inputs[0].data.size() - 4);
  ExpectError(r, {"input byte size mismatch for input 'X' for model 'm'. Expected 240, got 236"});
}

TEST(InputValidatorTest, NegativeDimension) {
  auto r = Good();
  r.inputs[0].shape = {4, -5, 3};
  ExpectError(r, {"All input dimensions should be specified for input 'X' for model 'm', got "
                  "[4,-5,3]"});
}

TEST(InputValidatorTest, UnknownAndDuplicateRequestedOutput) {
  auto r = Good();
  r.requested_outputs = {"Q"};
  ExpectError(r, {"unexpected inference output 'Q' for model 'm'"});
  r.requested_outputs = {"Z", "Z"};
  ExpectError(r, {"output 'Z'", "more than once"});
}

const char* kNoBatch = R"pb(
  name: "s" max_batch_size: 0
  input { name: "S" data_type: TYPE_STRING dims: [ -1 ] }
  output { name: "O" data_type: TYPE_STRING dims: [ -1 ] }
)pb";

TEST(InputValidatorTest, BytesElementsCounted) {
  std::vector<std::string> words = {"a", "bc", "def"};
  InferRequest r;
  r.inputs = {Tensor{"S", DataType::kBytes, {3}, MakeBytesBuffer(words)}};
  auto ok = ValidateInferRequest(Parse(kNoBatch), "", r);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, 0);
  r.inputs[0].shape = {4};
  ExpectError(r, {"expected 4 string elements for inference input 'S' for model 's', got 3"},
              kNoBatch);
  r.inputs[0].shape = {3};
  r.inputs[0].data = r.inputs[0].data.Slice(0, r.inputs[0].data.size() - 1);
  ExpectError(r, {"input 'S'", "declares 3 bytes"}, kNoBatch);
}

TEST(InputValidatorTest, NoBatchModelRejectsExtraDimension) {
  std::vector<std::string> words = {"a"};
  InferRequest r;
  r.inputs = {Tensor{"S", DataType::kBytes, {1, 1}, MakeBytesBuffer(words)}};
  ExpectError(r, {"unexpected shape for input 'S' for model 's'. Expected [-1], got [1,1]. "},
              kNoBatch);
}

}  // namespace
}  // namespace quiver::engine

namespace quiver::engine {
namespace {

TEST(ToDataTypeTest, MatchesConfigNames) {
  for (int t = inference::DataType_MIN; t <= inference::DataType_MAX; ++t) {
    auto type = static_cast<inference::DataType>(t);
    EXPECT_EQ(ToDataType(type), DataTypeFromConfigName(inference::DataType_Name(type)))
        << inference::DataType_Name(type);
  }
}

}  // namespace
}  // namespace quiver::engine
