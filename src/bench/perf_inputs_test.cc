#include "bench/perf_inputs.h"

#include <gtest/gtest.h>

#include <cstring>

namespace quiver::bench {
namespace {

ModelMetadata Meta(std::vector<TensorMetadata> inputs) {
  ModelMetadata m;
  m.name = "m";
  m.inputs = std::move(inputs);
  return m;
}

TEST(PerfInputsTest, VariableDimsComeFromShape) {
  const auto meta = Meta({{"INPUT0", DataType::kFp32, {-1}}});
  auto missing = ResolveInputs(meta, 0, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--shape INPUT0"), std::string::npos);
  auto specs = ResolveInputs(meta, 0, {{"INPUT0", {16}}});
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 1u);
  EXPECT_EQ((*specs)[0].dims, (Shape{16}));
  EXPECT_EQ((*specs)[0].datatype, DataType::kFp32);
}

TEST(PerfInputsTest, BatchDimensionIsDropped) {
  // A batching model's metadata shape starts with -1 for the batch.
  const auto meta = Meta({{"INPUT__0", DataType::kFp32, {-1, 32}}});
  auto specs = ResolveInputs(meta, 256, {});
  ASSERT_TRUE(specs.ok());
  EXPECT_EQ((*specs)[0].dims, (Shape{32}));
  EXPECT_TRUE(ResolveInputs(meta, 256, {{"INPUT__0", {32}}}).ok());
  EXPECT_FALSE(ResolveInputs(meta, 256, {{"INPUT__0", {16}}}).ok());     // contradicts 32
  EXPECT_FALSE(ResolveInputs(meta, 256, {{"INPUT__0", {1, 32}}}).ok());  // rank
  EXPECT_FALSE(ResolveInputs(meta, 256, {{"OTHER", {1}}}).ok());         // no such input
}

TEST(PerfInputsTest, SyntheticDataHasTheRightSizeAndIsSeeded) {
  const std::vector<InputSpec> specs{
      {"F", DataType::kFp32, {2, 3}}, {"I", DataType::kInt64, {4}}, {"S", DataType::kBytes, {2}}};
  const auto a = SyntheticSample(specs, false, 5, 7);
  const auto b = SyntheticSample(specs, false, 5, 7);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].data.size(), 24u);
  EXPECT_EQ(a[0].shape, (Shape{2, 3}));
  EXPECT_EQ(a[1].data.size(), 32u);
  EXPECT_EQ(a[2].data.size(), 2u * (4 + 5));  // two length-prefixed 5-letter strings
  EXPECT_EQ(std::memcmp(a[0].data.data(), b[0].data.data(), 24), 0);
  for (int i = 0; i < 6; ++i) {
    const float v = a[0].data_as<float>()[i];
    EXPECT_GE(v, 0.0f);
    EXPECT_LT(v, 1.0f);
  }
  const auto zero = SyntheticSample(specs, true, 5, 7);
  for (size_t i = 0; i < zero[0].data.size(); ++i) EXPECT_EQ(zero[0].data.data()[i], std::byte{0});
  EXPECT_EQ(zero[2].data.size(), 2u * 4);  // empty strings
}

TEST(PerfInputsTest, JsonEntriesBecomeSamples) {
  const std::vector<InputSpec> specs{{"INPUT0", DataType::kFp32, {4}},
                                     {"NAMES", DataType::kBytes, {1}}};
  auto samples = SamplesFromJson(R"({"data": [
      {"INPUT0": [1, 2, 3, 4], "NAMES": ["a"]},
      {"INPUT0": {"content": [[5, 6], [7, 8]], "shape": [2, 2]}, "NAMES": ["bc"]}]})",
                                 specs);
  ASSERT_TRUE(samples.ok()) << samples.status().ToString();
  ASSERT_EQ(samples->size(), 2u);
  EXPECT_EQ((*samples)[0][0].shape, (Shape{4}));
  EXPECT_EQ((*samples)[0][0].data_as<float>()[3], 4.0f);
  EXPECT_EQ((*samples)[1][0].shape, (Shape{2, 2}));
  EXPECT_EQ((*samples)[1][0].data_as<float>()[2], 7.0f);
  EXPECT_EQ((*samples)[1][1].data.size(), 4u + 2);
}

TEST(PerfInputsTest, JsonErrorsNameTheEntry) {
  const std::vector<InputSpec> specs{{"INPUT0", DataType::kInt32, {2}}};
  for (const char* bad :
       {"not json", "{}", R"({"data": []})", R"({"data": [[1]]})", R"({"data": [{}]})",
        R"({"data": [{"INPUT0": [1, 2, 3]}]})", R"({"data": [{"INPUT0": ["x", "y"]}]})",
        R"({"data": [{"INPUT0": {"b64": "AAAA"}}]})"}) {
    auto r = SamplesFromJson(bad, specs);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("--input-data"), std::string::npos) << bad;
    }
  }
  auto r = SamplesFromJson(R"({"data": [{"INPUT0": [1, 2]}, {"INPUT0": [1]}]})", specs);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("data[1].INPUT0"), std::string::npos);
}

TEST(PerfInputsTest, RequestsRepeatTheSampleAlongTheBatch) {
  const std::vector<InputSpec> specs{{"X", DataType::kInt32, {2}}};
  auto samples = SamplesFromJson(R"({"data": [{"X": [1, 2]}, {"X": [3, 4]}]})", specs);
  ASSERT_TRUE(samples.ok());
  const auto batched = MakeRequests("m", "1", *samples, 3, /*batching=*/true);
  ASSERT_EQ(batched.size(), 2u);
  EXPECT_EQ(batched[0].model, "m");
  EXPECT_EQ(batched[0].version, "1");
  const Tensor& t = batched[1].inputs[0];
  EXPECT_EQ(t.shape, (Shape{3, 2}));
  ASSERT_EQ(t.data.size(), 24u);
  EXPECT_EQ(t.data_as<int32_t>()[0], 3);
  EXPECT_EQ(t.data_as<int32_t>()[5], 4);
  const auto plain = MakeRequests("m", "", *samples, 1, /*batching=*/false);
  EXPECT_EQ(plain[0].inputs[0].shape, (Shape{2}));
}

}  // namespace
}  // namespace quiver::bench
