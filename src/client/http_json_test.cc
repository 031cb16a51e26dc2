// The client-side JSON parsers read back what the server-side writers
// (protocol/json_messages.h) produce, and reject what no server sends.

#include "client/http_json.h"

#include <gtest/gtest.h>

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include "protocol/json_messages.h"

namespace quiver::client {
namespace {

TEST(HttpJsonTest, ServerMetadataRoundTrips) {
  ServerMetadata m{"quiver", "0.1.0", {"binary_tensor_data", "statistics"}};
  auto parsed = ParseServerMetadataJson(protocol::ServerMetadataJson(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->name, m.name);
  EXPECT_EQ(parsed->version, m.version);
  EXPECT_EQ(parsed->extensions, m.extensions);
}

TEST(HttpJsonTest, ModelMetadataRoundTrips) {
  ModelMetadata m;
  m.name = "tagger";
  m.versions = {"1", "3"};
  m.platform = "pytorch_libtorch";
  m.inputs = {{"INPUT__0", DataType::kFp32, {-1, 64, 8}}};
  m.outputs = {{"OUTPUT__0", DataType::kBf16, {-1, 2}}, {"S", DataType::kBytes, {1}}};
  auto parsed = ParseModelMetadataJson(protocol::ModelMetadataJson(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->name, m.name);
  EXPECT_EQ(parsed->versions, m.versions);
  EXPECT_EQ(parsed->platform, m.platform);
  ASSERT_EQ(parsed->inputs.size(), 1u);
  EXPECT_EQ(parsed->inputs[0].name, "INPUT__0");
  EXPECT_EQ(parsed->inputs[0].datatype, DataType::kFp32);
  EXPECT_EQ(parsed->inputs[0].shape, (Shape{-1, 64, 8}));
  ASSERT_EQ(parsed->outputs.size(), 2u);
  EXPECT_EQ(parsed->outputs[1].datatype, DataType::kBytes);
}

TEST(HttpJsonTest, ModelConfigRoundTrips) {
  ModelConfig config;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"(name: "m" platform: "pytorch_libtorch" max_batch_size: 256
         input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 64, 8 ] }
         output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] }
         instance_group { count: 2 kind: KIND_CPU }
         dynamic_batching { preferred_batch_size: [ 64, 128 ]
                            max_queue_delay_microseconds: 200 })",
      &config));
  auto json = protocol::ModelConfigJson(config);
  ASSERT_TRUE(json.ok());
  auto parsed = ParseModelConfigJson(*json);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*parsed, config))
      << parsed->DebugString();
  // Fields from a newer Triton are ignored.
  auto extra = ParseModelConfigJson(R"({"name":"m","model_warmup":[],"max_batch_size":"8"})");
  ASSERT_TRUE(extra.ok()) << extra.status().ToString();
  EXPECT_EQ(extra->max_batch_size(), 8);
  EXPECT_EQ(ParseModelConfigJson("{").status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpJsonTest, RepositoryIndexRoundTrips) {
  RepositoryIndex index = {{"a", "1", "READY", ""}, {"b", "", "UNAVAILABLE", "bad config"}};
  auto parsed = ParseRepositoryIndexJson(protocol::RepositoryIndexJson(index, false));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].name, "a");
  EXPECT_EQ((*parsed)[0].version, "1");
  EXPECT_EQ((*parsed)[0].state, "READY");
  EXPECT_EQ((*parsed)[1].version, "");
  EXPECT_EQ((*parsed)[1].reason, "bad config");
}

TEST(HttpJsonTest, StatisticsRoundTrip) {
  ModelStatistics s;
  s.name = "m";
  s.version = "2";
  s.last_inference_ms = 1700000000000;
  s.inference_count = 10;
  s.execution_count = 4;
  s.success = {10, 12345};
  s.fail = {1, 7};
  s.queue = {10, 99};
  s.compute_input = {4, 1};
  s.compute_infer = {4, 2};
  s.compute_output = {4, 3};
  s.batch_stats = {{2, {1, 10}, {1, 20}, {1, 30}}, {4, {3, 11}, {3, 21}, {3, 31}}};
  std::vector<ModelStatistics> all = {s};
  auto parsed = ParseStatisticsJson(protocol::StatisticsJson(all));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 1u);
  const ModelStatistics& p = (*parsed)[0];
  EXPECT_EQ(p.name, "m");
  EXPECT_EQ(p.version, "2");
  EXPECT_EQ(p.last_inference_ms, s.last_inference_ms);
  EXPECT_EQ(p.inference_count, 10u);
  EXPECT_EQ(p.execution_count, 4u);
  EXPECT_EQ(p.success.ns, 12345u);
  EXPECT_EQ(p.fail.count, 1u);
  EXPECT_EQ(p.queue.ns, 99u);
  EXPECT_EQ(p.compute_output.ns, 3u);
  ASSERT_EQ(p.batch_stats.size(), 2u);
  EXPECT_EQ(p.batch_stats[1].batch_size, 4u);
  EXPECT_EQ(p.batch_stats[1].compute_infer.ns, 21u);
}

TEST(HttpJsonTest, RejectsWhatNoServerSends) {
  EXPECT_EQ(ParseServerMetadataJson("[]").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseModelMetadataJson(R"({"versions":[]})").status().code(),
            StatusCode::kInvalidArgument);
  auto bad_type = ParseModelMetadataJson(
      R"({"name":"m","inputs":[{"name":"x","datatype":"FP8","shape":[1]}]})");
  EXPECT_EQ(bad_type.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_type.status().message().find("FP8"), std::string::npos);
  EXPECT_EQ(ParseRepositoryIndexJson("{}").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseStatisticsJson(R"({"model_stats":[{"name":"m","inference_count":-1}]})")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseStatisticsJson("nope").status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpJsonTest, ErrorsFromHttpResponses) {
  EXPECT_EQ(ErrorFromHttpResponse(404, protocol::ErrorJson("no model 'x'")),
            Status::NotFound("no model 'x'"));
  EXPECT_EQ(ErrorFromHttpResponse(400, R"({"error":"bad"})"), Status::InvalidArgument("bad"));
  EXPECT_EQ(ErrorFromHttpResponse(503, "  overloaded\n"), Status::Unavailable("overloaded"));
  EXPECT_EQ(ErrorFromHttpResponse(500, ""), Status::Internal("HTTP 500"));
  EXPECT_EQ(ErrorFromHttpResponse(504, R"({"other":1})").code(), StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace quiver::client
