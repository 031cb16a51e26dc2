#include "engine/model_config.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "testing/temp_repository.h"

namespace quiver::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

const fs::path kConfigs = fs::path(QUIVER_SOURCE_DIR) / "src/engine/testdata/configs";
constexpr std::string_view kSource = "models/m/config.pbtxt";

// A valid configuration for directory "m"; tests add to it or replace parts of it.
constexpr std::string_view kInput =
    R"(input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ])";
const std::string kBase = std::string(R"(platform: "pytorch_libtorch"
max_batch_size: 8
)") + std::string(kInput) +
                          R"(
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
)";

std::string Replace(std::string text, std::string_view from, std::string_view to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Parses and normalizes `text` as if it were models/<dir>/config.pbtxt.
Result<LoadedConfig> ParseAndNormalize(std::string_view text, std::string_view dir = "m") {
  Result<LoadedConfig> loaded = ParseModelConfig(text, kSource);
  if (!loaded.ok()) return loaded;
  QUIVER_RETURN_IF_ERROR(NormalizeModelConfig(loaded->config, dir, kSource, loaded->warnings));
  return loaded;
}

// The INVALID_ARGUMENT message for `text`, or a note that there was none.
std::string ErrorFor(std::string_view text) {
  Result<LoadedConfig> loaded = ParseAndNormalize(text);
  if (loaded.ok()) return "(no error)";
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument) << loaded.status().ToString();
  return loaded.status().message();
}

// 1-based line of the first line of `text` containing `needle`.
int LineOf(std::string_view text, std::string_view needle) {
  const size_t at = text.find(needle);
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
}

// A fresh directory under the system temp dir, removed when the test ends.
struct TempDir : quiver::testing::TempRepository {
  TempDir() : TempRepository("model-config") {}
};

TEST(ModelConfigTest, LoadsResnetWithEveryField) {
  auto loaded = LoadModelConfig(kConfigs / "resnet50_libtorch");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.name(), "resnet50_libtorch");
  EXPECT_EQ(c.platform(), "pytorch_libtorch");
  EXPECT_EQ(c.backend(), "pytorch");
  EXPECT_EQ(c.default_model_filename(), "model.pt");
  EXPECT_EQ(c.max_batch_size(), 32);
  ASSERT_EQ(c.input_size(), 2);
  EXPECT_EQ(c.input(0).name(), "INPUT__0");
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(c.input(0).format(), inference::ModelInput::FORMAT_NCHW);
  EXPECT_THAT(c.input(0).dims(), ElementsAre(3, 224, 224));
  EXPECT_EQ(c.input(1).data_type(), inference::TYPE_INT32);
  EXPECT_TRUE(c.input(1).optional());
  EXPECT_TRUE(c.input(1).has_reshape());
  EXPECT_THAT(c.input(1).reshape().shape(), SizeIs(0));
  ASSERT_EQ(c.output_size(), 1);
  EXPECT_THAT(c.output(0).dims(), ElementsAre(1000));
  EXPECT_EQ(c.output(0).label_filename(), "imagenet_labels.txt");
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).count(), 2);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_GPU);
  EXPECT_THAT(c.instance_group(0).gpus(), ElementsAre(0));
  EXPECT_EQ(c.instance_group(0).name(), "resnet50_libtorch_0");
  ASSERT_TRUE(c.has_dynamic_batching());
  EXPECT_THAT(c.dynamic_batching().preferred_batch_size(), ElementsAre(4, 8));
  EXPECT_EQ(c.dynamic_batching().max_queue_delay_microseconds(), 100u);
  EXPECT_EQ(c.parameters().at("INFERENCE_MODE").string_value(), "true");
  EXPECT_EQ(c.parameters().at("DISABLE_OPTIMIZED_EXECUTION").string_value(), "false");
  ASSERT_TRUE(c.version_policy().has_latest());
  EXPECT_EQ(c.version_policy().latest().num_versions(), 1u);
  EXPECT_THAT(loaded->text, HasSubstr("# ResNet-50"));
}

TEST(ModelConfigTest, WarnsOncePerUnsupportedFieldWithFileLineAndName) {
  auto loaded = LoadModelConfig(kConfigs / "resnet50_libtorch");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const std::string source = (kConfigs / "resnet50_libtorch" / "config.pbtxt").string();
  auto expected = [&](std::string_view field) {
    return fmt::format("{}:{}:1: field '{}' is not supported by Quiver and is ignored", source,
                       LineOf(loaded->text, std::string(field) + " "), field);
  };
  EXPECT_THAT(loaded->warnings, ElementsAre(expected("optimization"), expected("model_warmup"),
                                            expected("response_cache")));
}

TEST(ModelConfigTest, SkipsSequenceBatchingWithNestedLists) {
  auto loaded = LoadModelConfig(kConfigs / "stateful_rnn");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.platform(), "pytorch_libtorch");  // filled in from backend "pytorch"
  EXPECT_THAT(c.input(0).dims(), ElementsAre(-1, 64));
  EXPECT_EQ(c.instance_group(0).count(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  ASSERT_THAT(loaded->warnings, SizeIs(1));
  EXPECT_THAT(loaded->warnings[0],
              AllOf(HasSubstr("stateful_rnn/config.pbtxt:"), HasSubstr("'sequence_batching'")));
}

TEST(ModelConfigTest, FillsDefaultsAndWarnsAboutIgnoredBatchingOptions) {
  auto loaded = LoadModelConfig(kConfigs / "text_classifier");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.name(), "text_classifier");  // from the directory
  EXPECT_EQ(c.default_model_filename(), "classifier.pt");
  EXPECT_THAT(c.version_policy().specific().versions(), ElementsAre(1, 3));
  ASSERT_EQ(c.instance_group_size(), 2);
  EXPECT_EQ(c.instance_group(0).name(), "cpu_pool");
  EXPECT_EQ(c.instance_group(0).count(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(c.instance_group(1).name(), "text_classifier_1");
  EXPECT_EQ(c.instance_group(1).kind(), inference::ModelInstanceGroup::KIND_GPU);
  EXPECT_EQ(c.metric_tags().at("team"), "search");
  ASSERT_THAT(loaded->warnings, SizeIs(3));
  EXPECT_THAT(loaded->warnings[0],
              AllOf(HasSubstr("text_classifier/config.pbtxt:"), HasSubstr("'allow_ragged_batch'")));
  EXPECT_THAT(loaded->warnings[1], AllOf(HasSubstr("text_classifier/config.pbtxt"),
                                         HasSubstr("priority_levels"), HasSubstr("FIFO")));
  EXPECT_THAT(loaded->warnings[2], AllOf(HasSubstr("text_classifier/config.pbtxt"),
                                         HasSubstr("timeout_action"), HasSubstr("DELAY")));
}

TEST(ModelConfigTest, LoadsIdentityBackendWithoutPlatform) {
  auto loaded = LoadModelConfig(kConfigs / "identity_bytes");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.backend(), "identity");
  EXPECT_EQ(c.platform(), "");
  EXPECT_EQ(c.default_model_filename(), "");
  EXPECT_EQ(c.max_batch_size(), 0);
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_STRING);
  EXPECT_TRUE(c.version_policy().has_all());
  EXPECT_THAT(loaded->warnings, SizeIs(0));
}

TEST(ModelConfigTest, NormalizeFillsDefaults) {
  auto loaded = ParseAndNormalize(kBase + "version_policy { latest { num_versions: 0 } }\n" +
                                  "instance_group [ { count: 0 } ]\n");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.name(), "m");
  EXPECT_EQ(c.backend(), "pytorch");
  EXPECT_EQ(c.default_model_filename(), "model.pt");
  EXPECT_EQ(c.version_policy().latest().num_versions(), 1u);
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).count(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(c.instance_group(0).name(), "m_0");

  auto bare = ParseAndNormalize(kBase);
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_EQ(bare->config.version_policy().latest().num_versions(), 1u);
  ASSERT_EQ(bare->config.instance_group_size(), 1);
  EXPECT_EQ(bare->config.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
}

TEST(ModelConfigTest, ListWithoutSpaceBeforeBracketIsSkippedAndLocated) {
  auto loaded = ParseAndNormalize(kBase + "model_warmup[ { name: \"w\" batch_size: 1 } ]\n" +
                                  "\tresponse_cache { enable: true }\n");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_THAT(loaded->warnings,
              ElementsAre(fmt::format("{}:5:1: field 'model_warmup' is not supported by Quiver "
                                      "and is ignored",
                                      kSource),
                          fmt::format("{}:6:9: field 'response_cache' is not supported by "
                                      "Quiver and is ignored",
                                      kSource)));
}

TEST(ModelConfigTest, BadEnumNameIsAnErrorListingTheValidNames) {
  const std::string message = ErrorFor(Replace(kBase, "TYPE_FP32", "TYPE_FLOAT32"));
  EXPECT_THAT(message, AllOf(HasSubstr(std::string(kSource) + ":3:"), HasSubstr("TYPE_FLOAT32"),
                             HasSubstr("data_type"), HasSubstr("TYPE_FP32"),
                             Not(HasSubstr("TYPE_INVALID"))));
}

TEST(ModelConfigTest, StringForIntegerIsAnErrorNamingTheField) {
  const std::string message =
      ErrorFor(Replace(kBase, "max_batch_size: 8", "max_batch_size: \"8\""));
  EXPECT_THAT(message, AllOf(HasSubstr(std::string(kSource) + ":2:17:"),
                             HasSubstr("max_batch_size"), HasSubstr("integer")));
}

TEST(ModelConfigTest, SyntaxErrorHasLineAndColumn) {
  const std::string message =
      ErrorFor(kBase + "dynamic_batching { max_queue_delay_microseconds: 1\n");
  EXPECT_THAT(message, HasSubstr(std::string(kSource) + ":6:1:"));
}

// Each rule violation: the config, then substrings the error must contain besides the file.
struct InvalidCase {
  std::string config;
  std::vector<std::string> mentions;
};

TEST(ModelConfigTest, InvalidValuesNameFileFieldAndValue) {
  const std::string no_dims = Replace(kBase, "dims: [ 4 ] } ]\noutput", "} ]\noutput");
  const std::vector<InvalidCase> cases = {
      {kBase + "instance_group [ { count: -1 } ]", {"'instance_group[0].count'", "-1"}},
      {kBase + "instance_group [ { kind: KIND_CPU gpus: [ 0 ] } ]",
       {"'instance_group[0].gpus'", "KIND_CPU"}},
      {kBase + "dynamic_batching { preferred_batch_size: [ 4, 16 ] }",
       {"'dynamic_batching.preferred_batch_size[1]'", "16", "max_batch_size = 8"}},
      {Replace(kBase, "max_batch_size: 8", "max_batch_size: 0") + "dynamic_batching { }",
       {"'dynamic_batching'", "max_batch_size is 0", "max_batch_size > 0"}},
      {Replace(kBase, "max_batch_size: 8", "max_batch_size: -2"), {"'max_batch_size'", "-2"}},
      {no_dims, {"'input[0].dims'", "INPUT__0", "at least one dimension"}},
      {Replace(kBase, "dims: [ 4 ]", "dims: [ 4, 0 ]"), {"'input[0].dims'", "[4,0]", "-1"}},
      {kBase + R"(input { name: "INPUT__0" data_type: TYPE_INT32 dims: [ 1 ] })",
       {"'input[1].name'", "INPUT__0", "input[0]", "unique"}},
      {kBase + R"(output { name: "" data_type: TYPE_INT32 dims: [ 1 ] })",
       {"'output[1].name'", "empty"}},
      {kBase + R"(output { name: "OUTPUT__1" dims: [ 1 ] })",
       {"'output[1].data_type'", "OUTPUT__1", "TYPE_FP32"}},
      {Replace(kBase, "dims: [ 4 ]", "dims: [ 4 ] reshape { shape: [ 2, 3 ] }"),
       {"'input[0].reshape.shape'", "[2,3]", "[4]"}},
      {Replace(kBase, kInput, ""), {"'input'", "at least one input"}},
      {kBase + "name: \"resnet\"", {"'name'", "\"resnet\"", "\"m\""}},
      {Replace(kBase, "platform: \"pytorch_libtorch\"", ""),
       {"'platform'", "pytorch_libtorch", "backend: \"identity\""}},
      {Replace(kBase, "pytorch_libtorch", "onnxruntime_onnx"), {"'platform'", "onnxruntime_onnx"}},
      {kBase + "backend: \"identity\"", {"'backend'", "\"identity\"", "pytorch"}},
      {kBase + "version_policy { specific { } }", {"'version_policy.specific.versions'"}},
  };
  for (const InvalidCase& c : cases) {
    const std::string message = ErrorFor(c.config);
    EXPECT_THAT(message, HasSubstr(std::string(kSource) + ": field ")) << c.config;
    for (const std::string& mention : c.mentions) {
      EXPECT_THAT(message, HasSubstr(mention)) << c.config;
    }
  }
}

TEST(ModelConfigTest, ReshapeWithSameElementCountOrWildcardIsValid) {
  EXPECT_TRUE(
      ParseAndNormalize(Replace(kBase, "dims: [ 4 ]", "dims: [ 4 ] reshape { shape: [ 2, 2 ] }"))
          .ok());
  EXPECT_TRUE(
      ParseAndNormalize(Replace(kBase, "dims: [ 4 ]", "dims: [ -1 ] reshape { shape: [ 2, -1 ] }"))
          .ok());
}

TEST(ModelConfigTest, MissingConfigForTorchScriptModelShowsAnExample) {
  TempDir dir;
  dir.Write("resnet/1/model.pt", "not really torchscript");
  auto loaded = LoadModelConfig(dir.path() / "resnet");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  const std::string message = loaded.status().message();
  EXPECT_THAT(message, AllOf(HasSubstr((dir.path() / "resnet" / "config.pbtxt").string()),
                             HasSubstr("pytorch_libtorch"), HasSubstr("auto-generate"),
                             HasSubstr("INPUT__0"), HasSubstr("OUTPUT__0")));
  // The example itself is a valid configuration for this directory.
  const std::string example = message.substr(message.find("For example:\n") + 13);
  auto parsed = ParseAndNormalize(example, "resnet");
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << example;
}

TEST(ModelConfigTest, MissingConfigWithoutModelFileStillSaysWhatToWrite) {
  TempDir dir;
  dir.MakeDir("empty/1");
  auto loaded = LoadModelConfig(dir.path() / "empty");
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(),
              AllOf(HasSubstr("config.pbtxt"), HasSubstr("pytorch_libtorch")));
  EXPECT_EQ(LoadModelConfig(dir.path() / "absent").status().code(), StatusCode::kNotFound);
}

TEST(ModelConfigTest, LoadUsesTheDirectoryNameEvenWithTrailingSlash) {
  TempDir dir;
  dir.Write("m/config.pbtxt", kBase);
  auto loaded = LoadModelConfig(dir.path().string() + "/m/");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->config.name(), "m");
  EXPECT_EQ(loaded->text, kBase);
}

}  // namespace
}  // namespace quiver::engine
