// Endpoint, error-path and connection tests of HttpServer over real sockets, with the
// Engine and identity models behind it.

#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include "frontend/http_server.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "frontend/http_test_util.h"
#include "protocol/http_compression.h"

namespace quiver::frontend {
namespace {

using testing::HttpEngineFixture;
using testing::ShmObject;
using testing::TestClient;
using testing::TestResponse;
using json = nlohmann::json;

std::string ErrorOf(const TestResponse& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("error")) return "<no error JSON: " + r.body + ">";
  return j["error"].get<std::string>();
}

class HttpServerTest : public HttpEngineFixture {};

TEST_F(HttpServerTest, HealthAndServerMetadata) {
  TestClient c = Client();
  EXPECT_EQ(c.Get("/v2/health/live").status, 200);
  EXPECT_EQ(c.Get("/v2/health/ready").status, 200);
  TestResponse meta = c.Get("/v2");
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.Header("content-type"), "application/json");
  auto j = json::parse(meta.body);
  EXPECT_EQ(j["name"], "quiver");
  const auto& ext = j["extensions"];
  for (const char* e : {"binary_tensor_data", "system_shared_memory", "model_repository",
                        "statistics", "model_configuration"}) {
    EXPECT_NE(std::find(ext.begin(), ext.end(), e), ext.end()) << e;
  }
  // Query strings (tritonclient's query_params) are ignored for routing.
  EXPECT_EQ(c.Get("/v2/health/live?x=1&y=2").status, 200);
}

TEST_F(HttpServerTest, ModelMetadataConfigAndReady) {
  TestClient c = Client();
  TestResponse meta = c.Get("/v2/models/identity_fp32");
  ASSERT_EQ(meta.status, 200) << meta.body;
  auto j = json::parse(meta.body);
  EXPECT_EQ(j["name"], "identity_fp32");
  EXPECT_EQ(j["versions"], json::parse(R"(["1"])"));
  EXPECT_EQ(j["platform"], "identity");
  EXPECT_EQ(j["inputs"][0], json::parse(R"({"name":"INPUT0","datatype":"FP32","shape":[-1]})"));
  EXPECT_EQ(j["outputs"][0]["name"], "OUTPUT0");

  EXPECT_EQ(c.Get("/v2/models/identity_fp32/versions/1").status, 200);
  EXPECT_EQ(c.Get("/v2/models/identity_fp32/ready").status, 200);
  EXPECT_EQ(c.Get("/v2/models/identity_fp32/versions/1/ready").status, 200);

  TestResponse config = c.Get("/v2/models/id_batch/config");
  ASSERT_EQ(config.status, 200) << config.body;
  auto cj = json::parse(config.body);
  EXPECT_EQ(cj["name"], "id_batch");
  EXPECT_EQ(cj["max_batch_size"], 4);
  EXPECT_EQ(cj["input"][0]["dims"], json::parse("[2]"));
  EXPECT_EQ(cj["input"][0]["data_type"], "TYPE_INT32");
  EXPECT_EQ(c.Get("/v2/models/id_batch/versions/1/config").status, 200);

  // A percent-encoded name (tritonclient quotes model names) is decoded.
  EXPECT_EQ(c.Get("/v2/models/identity%5Ffp32").status, 200);
}

TEST_F(HttpServerTest, UnknownModelOrVersionIs404OnEveryModelEndpoint) {
  TestClient c = Client();
  // Except readiness, which is a 400 with Triton's fixed text (HandleModelReady).
  for (const char* path : {"/v2/models/nope/ready", "/v2/models/identity_fp32/versions/7/ready"}) {
    TestResponse r = c.Get(path);
    EXPECT_EQ(r.status, 400) << path << " " << r.body;
    EXPECT_EQ(ErrorOf(r), "Model version not ready") << path;
  }
  for (const char* path :
       {"/v2/models/nope", "/v2/models/nope/config", "/v2/models/nope/stats",
        "/v2/models/identity_fp32/versions/7", "/v2/models/identity_fp32/versions/7/config",
        "/v2/models/identity_fp32/versions/7/stats"}) {
    TestResponse r = c.Get(path);
    EXPECT_EQ(r.status, 404) << path << " " << r.body;
    const std::string error = ErrorOf(r);
    EXPECT_TRUE(error.find("nope") != std::string::npos || error.find("7") != std::string::npos)
        << path << ": " << r.body;
  }
  const std::string body = R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1]}]})";
  EXPECT_EQ(c.Post("/v2/models/nope/infer", body).status, 404);
  EXPECT_EQ(c.Post("/v2/models/identity_fp32/versions/9/infer", body).status, 404);
  // A version that is not a number does not match any route at all.
  TestResponse bad = c.Get("/v2/models/identity_fp32/versions/latest");
  EXPECT_EQ(bad.status, 404);
  EXPECT_EQ(ErrorOf(bad), "Not Found");
}

TEST_F(HttpServerTest, UnknownPathAndWrongMethod) {
  TestClient c = Client();
  for (const char* path : {"/", "/v1/models", "/v2/", "/v2/models", "/v2/modelz/x",
                                  "/v2/models/identity_fp32/explode", "/v2//models", "/metrics"}) {
    TestResponse r = c.Get(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(ErrorOf(r), "Not Found") << path;
  }
  struct Case {
    const char* method;
    const char* path;
  };
  for (const Case& k : {Case{"POST", "/v2/health/live"}, Case{"POST", "/v2"},
                        Case{"GET", "/v2/models/identity_fp32/infer"},
                        Case{"POST", "/v2/models/identity_fp32"}, Case{"PUT", "/v2/models/identity_fp32/config"},
                        Case{"GET", "/v2/repository/index"},
                        Case{"GET", "/v2/repository/models/identity_fp32/load"},
                        Case{"POST", "/v2/systemsharedmemory/status"},
                        Case{"GET", "/v2/systemsharedmemory/region/r/register"},
                        Case{"DELETE", "/v2/models/stats"}}) {
    TestResponse r = c.Request(k.method, k.path);
    EXPECT_EQ(r.status, 405) << k.method << " " << k.path;
    EXPECT_EQ(ErrorOf(r), "Method Not Allowed");
  }
}

TEST_F(HttpServerTest, InferJsonAsTritonClientSendsIt) {
  TestClient c = Client();
  // What tritonclient.http sends for binary_data=False inputs and outputs.
  TestResponse r = c.Post(
      "/v2/models/id_multi/infer",
      R"({"id":"42","inputs":[{"name":"A","shape":[3],"datatype":"FP32","data":[1.5,-2.0,3.25]},)"
      R"({"name":"B","shape":[2],"datatype":"BYTES","data":["hi","there"]}],)"
      R"("outputs":[{"name":"A_OUT","parameters":{"binary_data":false}},)"
      R"({"name":"B_OUT","parameters":{"binary_data":false}}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("inference-header-content-length"), "");
  EXPECT_EQ(r.body,
            R"({"id":"42","model_name":"id_multi","model_version":"1","outputs":[)"
            R"({"name":"A_OUT","datatype":"FP32","shape":[3],"data":[1.5,-2.0,3.25]},)"
            R"({"name":"B_OUT","datatype":"BYTES","shape":[2],"data":["hi","there"]}]})");
}

TEST_F(HttpServerTest, InferBinaryAsTritonClientSendsIt) {
  TestClient c = Client();
  // tritonclient with binary inputs and no outputs listed: binary_data_output=true.
  const std::string header =
      R"({"inputs":[{"name":"INPUT0","shape":[4],"datatype":"INT32","parameters":{"binary_data_size":16}}],)"
      R"("parameters":{"binary_data_output":true}})";
  const int32_t values[4] = {1, -2, 3, 1 << 30};
  std::string body = header + std::string(reinterpret_cast<const char*>(values), 16);
  TestResponse r = c.Post("/v2/models/identity_int32/infer", body,
                          {{"Inference-Header-Content-Length", std::to_string(header.size())},
                           {"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/octet-stream");
  const size_t json_len = std::stoul(r.Header("inference-header-content-length"));
  ASSERT_EQ(r.body.size(), json_len + 16);
  EXPECT_EQ(r.body.substr(0, json_len),
            R"({"model_name":"identity_int32","model_version":"1","outputs":[)"
            R"({"name":"OUTPUT0","datatype":"INT32","shape":[4],"parameters":{"binary_data_size":16}}]})");
  EXPECT_EQ(r.body.substr(json_len), std::string(reinterpret_cast<const char*>(values), 16));
}

TEST_F(HttpServerTest, InferErrorsAreCleanJson400s) {
  TestClient c = Client();
  struct Case {
    std::string body;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"{not json", "failed to parse the request JSON"},
      {R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FLOAT","data":[1]}]})",
       "unknown datatype 'FLOAT'"},
      {R"({"inputs":[{"name":"INPUT0","shape":[3],"datatype":"FP32","data":[1,2]}]})",
       "the shape has 3 elements but 'data' has 2"},
      {R"({"inputs":[{"name":"INPUT0","shape":[2],"datatype":"INT32","data":[1,2]}]})",
       "INPUT0"},  // the engine's validator: wrong datatype for the model
      {R"({"inputs":[{"name":"WRONG","shape":[1],"datatype":"FP32","data":[1]}]})", "WRONG"},
      {R"({"inputs":[{"name":"INPUT0","shape":[1,1],"datatype":"FP32","data":[1]}]})",
       "shape"},
  };
  for (const Case& k : cases) {
    TestResponse r = c.Post("/v2/models/identity_fp32/infer", k.body);
    EXPECT_EQ(r.status, 400) << k.body << " -> " << r.body;
    EXPECT_NE(ErrorOf(r).find(k.fragment), std::string::npos)
        << k.body << " -> " << ErrorOf(r);
  }
  // Binary sizes that do not add up to what follows the header.
  const std::string header =
      R"({"inputs":[{"name":"INPUT0","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]})";
  TestResponse short_body =
      c.Post("/v2/models/identity_fp32/infer", header + std::string(4, 'x'),
             {{"Inference-Header-Content-Length", std::to_string(header.size())}});
  EXPECT_EQ(short_body.status, 400);
  EXPECT_NE(ErrorOf(short_body).find("expecting 4 additional bytes"), std::string::npos);
  TestResponse long_body =
      c.Post("/v2/models/identity_fp32/infer", header + std::string(12, 'x'),
             {{"Inference-Header-Content-Length", std::to_string(header.size())}});
  EXPECT_EQ(long_body.status, 400);
  EXPECT_NE(ErrorOf(long_body).find("unexpected additional input data"), std::string::npos);
  TestResponse bad_header = c.Post("/v2/models/identity_fp32/infer", header + std::string(8, 'x'),
                                   {{"Inference-Header-Content-Length", "abc"}});
  EXPECT_EQ(bad_header.status, 400);
  EXPECT_NE(ErrorOf(bad_header).find("Inference-Header-Content-Length"), std::string::npos);
  TestResponse too_long_header =
      c.Post("/v2/models/identity_fp32/infer", header + std::string(8, 'x'),
             {{"Inference-Header-Content-Length", "100000"}});
  EXPECT_EQ(too_long_header.status, 400);
  // FP16 cannot be returned as JSON (as Triton): asked for JSON output explicitly.
  const std::string fp16 =
      R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP16","parameters":{"binary_data_size":2}}],)"
      R"("outputs":[{"name":"OUTPUT0","parameters":{"binary_data":false}}]})";
  TestResponse half = c.Post("/v2/models/identity_fp16/infer", fp16 + std::string("\x00\x3c", 2),
                             {{"Inference-Header-Content-Length", std::to_string(fp16.size())}});
  EXPECT_EQ(half.status, 400);
  EXPECT_NE(ErrorOf(half).find("FP16"), std::string::npos);
  // Unknown content codings are a clear 501; corrupt gzip is a 400.
  TestResponse br = c.Post("/v2/models/identity_fp32/infer", "xx", {{"Content-Encoding", "br"}});
  EXPECT_EQ(br.status, 501);
  EXPECT_NE(ErrorOf(br).find("'br'"), std::string::npos);
  EXPECT_EQ(br.Header("accept-encoding"), "gzip, deflate");
  TestResponse gz = c.Post("/v2/models/identity_fp32/infer", "xx", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(gz.status, 400);
  EXPECT_NE(ErrorOf(gz).find("decompress"), std::string::npos);
  // The connection survived every error.
  EXPECT_EQ(c.Get("/v2/health/ready").status, 200);
}

TEST_F(HttpServerTest, CompressedRequestsAndResponses) {
  using protocol::ContentEncoding;
  TestClient c = Client();
  const std::string header =
      R"({"inputs":[{"name":"INPUT0","shape":[3],"datatype":"INT16","parameters":{"binary_data_size":6}}],)"
      R"("outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]})";
  const int16_t values[3] = {-5, 6, 7};
  const std::string plain = header + std::string(reinterpret_cast<const char*>(values), 6);
  for (ContentEncoding e : {ContentEncoding::kGzip, ContentEncoding::kDeflate}) {
    const std::string name(protocol::ContentEncodingName(e));
    std::vector<std::span<const std::byte>> pieces = {
        {reinterpret_cast<const std::byte*>(plain.data()), plain.size()}};
    auto packed = protocol::Compress(e, pieces);
    ASSERT_TRUE(packed.ok());
    TestResponse r = c.Post("/v2/models/identity_int16/infer", *packed,
                            {{"Content-Encoding", name},
                             {"Accept-Encoding", name},
                             {"Inference-Header-Content-Length", std::to_string(header.size())}});
    ASSERT_EQ(r.status, 200) << name << ": " << r.body;
    EXPECT_EQ(r.Header("content-encoding"), name);
    auto body = protocol::Decompress(
        e, {reinterpret_cast<const std::byte*>(r.body.data()), r.body.size()}, 1 << 20, 0);
    ASSERT_TRUE(body.ok()) << body.status().ToString();
    const std::string text(reinterpret_cast<const char*>(body->data()), body->size());
    const size_t json_len = std::stoul(r.Header("inference-header-content-length"));
    ASSERT_EQ(text.size(), json_len + 6);
    EXPECT_EQ(text.substr(json_len), std::string(reinterpret_cast<const char*>(values), 6));
  }
  // A body that inflates beyond max_body_bytes is refused.
  const std::string zeros(4 << 20, '0');
  std::vector<std::span<const std::byte>> pieces = {
      {reinterpret_cast<const std::byte*>(zeros.data()), zeros.size()}};
  auto bomb = protocol::Compress(ContentEncoding::kGzip, pieces);
  ASSERT_TRUE(bomb.ok());
  EXPECT_EQ(c.Post("/v2/models/identity_int16/infer", *bomb, {{"Content-Encoding", "gzip"}}).status,
            503);  // RESOURCE_EXHAUSTED: Triton has no such kind, 503 like its full queue
}

TEST_F(HttpServerTest, StatisticsCountInferences) {
  TestClient c = Client();
  const std::string body =
      R"({"inputs":[{"name":"INPUT0","shape":[2,2],"datatype":"INT32","data":[1,2,3,4]}]})";
  ASSERT_EQ(c.Post("/v2/models/id_batch/infer", body).status, 200);
  ASSERT_EQ(c.Post("/v2/models/id_batch/infer", body).status, 200);
  TestResponse r = c.Get("/v2/models/id_batch/stats");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json::parse(r.body);
  ASSERT_EQ(j["model_stats"].size(), 1u);
  const auto& s = j["model_stats"][0];
  EXPECT_EQ(s["name"], "id_batch");
  EXPECT_EQ(s["version"], "1");
  EXPECT_EQ(s["inference_stats"]["success"]["count"], 2);
  EXPECT_EQ(s["inference_count"], 4);  // batch size 2, twice
  EXPECT_GT(s["last_inference"].get<uint64_t>(), 0u);
  EXPECT_FALSE(s["batch_stats"].empty());

  TestResponse all = c.Get("/v2/models/stats");
  ASSERT_EQ(all.status, 200);
  EXPECT_GE(json::parse(all.body)["model_stats"].size(), 16u);
  EXPECT_EQ(c.Get("/v2/models/id_batch/versions/1/stats").status, 200);
}

TEST_F(HttpServerTest, RepositoryIndexLoadAndUnload) {
  TestClient c = Client();
  TestResponse index = c.Post("/v2/repository/index", "");
  ASSERT_EQ(index.status, 200) << index.body;
  auto j = json::parse(index.body);
  EXPECT_GE(j.size(), 16u);
  bool found = false;
  for (const auto& e : j) {
    if (e["name"] == "identity_int8") {
      found = true;
      EXPECT_EQ(e["version"], "1");
      EXPECT_EQ(e["state"], "READY");
    }
  }
  EXPECT_TRUE(found);

  TestResponse unload = c.Post("/v2/repository/models/identity_int8/unload",
                               R"({"parameters":{"unload_dependents":false}})");
  ASSERT_EQ(unload.status, 200) << unload.body;
  EXPECT_EQ(c.Get("/v2/models/identity_int8/ready").status, 400);
  // As Triton: unloading what is not loaded (or not known) succeeds.
  EXPECT_EQ(c.Post("/v2/repository/models/identity_int8/unload", "").status, 200);
  EXPECT_EQ(c.Post("/v2/repository/models/missing/unload", "").status, 200);
  auto ready_only = json::parse(c.Post("/v2/repository/index", R"({"ready":true})").body);
  for (const auto& e : ready_only) EXPECT_NE(e["name"], "identity_int8");

  TestResponse load = c.Post("/v2/repository/models/identity_int8/load", "");
  ASSERT_EQ(load.status, 200) << load.body;
  EXPECT_EQ(c.Get("/v2/models/identity_int8/ready").status, 200);

  // As Triton: a model the repository does not have is INTERNAL "failed to poll".
  TestResponse missing = c.Post("/v2/repository/models/missing/load", "{}");
  EXPECT_EQ(missing.status, 500);
  EXPECT_NE(ErrorOf(missing).find("failed to load 'missing', failed to poll from model repository"),
            std::string::npos)
      << missing.body;
  EXPECT_EQ(c.Post("/v2/repository/models/identity_int8/load", R"({"parameters":{"config":"{}"}})")
                .status,
            501);
  EXPECT_EQ(c.Post("/v2/repository/myrepo/index", "").status, 501);
  EXPECT_EQ(c.Post("/v2/repository/index", "[").status, 400);
}

TEST_F(HttpServerTest, SystemSharedMemoryEndpoints) {
  ShmObject obj(4096);
  TestClient c = Client();
  EXPECT_EQ(c.Get("/v2/systemsharedmemory/status").body, "[]");
  const std::string reg = R"({"key":")" + obj.key() + R"(","offset":0,"byte_size":1024})";
  ASSERT_EQ(c.Post("/v2/systemsharedmemory/region/in/register", reg).status, 200);
  ASSERT_EQ(c.Post("/v2/systemsharedmemory/region/out/register",
                   R"({"key":")" + obj.key() + R"(","offset":1024,"byte_size":2048})")
                .status,
            200);
  TestResponse dup = c.Post("/v2/systemsharedmemory/region/in/register", reg);
  EXPECT_EQ(dup.status, 400);  // ALREADY_EXISTS is a 400 in Triton
  EXPECT_NE(ErrorOf(dup).find("already"), std::string::npos);

  auto all = json::parse(c.Get("/v2/systemsharedmemory/status").body);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], json::parse(R"({"name":"in","key":")" + obj.key() +
                                R"(","offset":0,"byte_size":1024})"));
  auto one = json::parse(c.Get("/v2/systemsharedmemory/region/out/status").body);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]["offset"], 1024);
  EXPECT_EQ(c.Get("/v2/systemsharedmemory/region/none/status").status, 404);

  EXPECT_EQ(c.Post("/v2/systemsharedmemory/region/bad/register",
                   R"({"key":"/quiver-no-such-object","byte_size":8})")
                .status,
            400);
  EXPECT_EQ(c.Post("/v2/systemsharedmemory/region/big/register",
                   R"({"key":")" + obj.key() + R"(","offset":4000,"byte_size":1000})")
                .status,
            400);
  EXPECT_EQ(c.Post("/v2/systemsharedmemory/region/nokey/register", R"({"byte_size":8})").status,
            400);

  EXPECT_EQ(c.Post("/v2/systemsharedmemory/region/in/unregister").status, 200);
  EXPECT_EQ(c.Post("/v2/systemsharedmemory/region/in/unregister").status, 200);  // as Triton
  EXPECT_EQ(json::parse(c.Get("/v2/systemsharedmemory/status").body).size(), 1u);
  EXPECT_EQ(c.Post("/v2/systemsharedmemory/unregister").status, 200);
  EXPECT_EQ(c.Get("/v2/systemsharedmemory/status").body, "[]");

  // No CUDA: answered as a Triton built without GPU support.
  TestResponse cuda = c.Get("/v2/cudasharedmemory/status");
  EXPECT_EQ(cuda.status, 200);
  EXPECT_EQ(cuda.body, "[]");
  TestResponse cuda_one = c.Get("/v2/cudasharedmemory/region/x/status");
  EXPECT_EQ(cuda_one.status, 404);
  EXPECT_EQ(ErrorOf(cuda_one), "Unable to find cuda shared memory region: 'x'");
  TestResponse cuda_reg = c.Post("/v2/cudasharedmemory/region/x/register", "{}");
  EXPECT_EQ(cuda_reg.status, 400);
  EXPECT_EQ(ErrorOf(cuda_reg),
            "failed to register CUDA shared memory region: 'x', GPUs not supported");
  EXPECT_EQ(c.Post("/v2/cudasharedmemory/unregister").status, 200);
  EXPECT_EQ(c.Post("/v2/cudasharedmemory/region/x/unregister").status, 200);
}

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  TestClient c = Client();
  for (int i = 0; i < 50; ++i) {
    TestResponse r = c.Post(
        "/v2/models/identity_int64/infer",
        R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"INT64","data":[)" +
            std::to_string(i) + "]}]}");
    ASSERT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("\"data\":[" + std::to_string(i) + "]"), std::string::npos);
    EXPECT_TRUE(r.keep_alive);
  }
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  TestClient c = Client();
  std::string both;
  for (int i = 0; i < 3; ++i) {
    const std::string body = R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"INT64","data":[)" +
                             std::to_string(i) + "]}]}";
    both += "POST /v2/models/identity_int64/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  c.SendRaw(both);
  for (int i = 0; i < 3; ++i) {
    auto r = c.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_NE(r->body.find("\"data\":[" + std::to_string(i) + "]"), std::string::npos);
  }
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
  TestClient c = Client();
  TestResponse r = c.Request("GET", "/v2/health/live", {}, {{"Connection", "close"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(c.PeerClosed());
}

TEST_F(HttpServerTest, Expect100ContinueIsAnswered) {
  TestClient c = Client();
  const std::string body =
      R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[2.5]}]})";
  c.SendRaw("POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n");
  auto interim = c.Read();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  c.SendRaw(body);
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(HttpServerTest, OversizedBodyGets413AndServerKeepsServing) {
  TestClient c = Client();
  // Announce 2 MiB (limit 1 MiB) and send a little of it.
  c.SendRaw("POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n" +
            std::string(1000, '{'));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(ErrorOf(*r).find("exceeds"), std::string::npos);
  EXPECT_FALSE(r->keep_alive);
  c.Close();
  // Chunked bodies are limited too.
  TestClient chunked = Client();
  std::string big(600 * 1024, 'a');
  chunked.SendRaw("POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n");
  auto hex = [](size_t n) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%zx", n);
    return std::string(buf);
  };
  chunked.SendRaw(hex(big.size()) + "\r\n" + big + "\r\n" + hex(big.size()) + "\r\n" + big +
                  "\r\n0\r\n\r\n");
  auto r2 = chunked.Read();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 413);
  EXPECT_EQ(Client().Get("/v2/health/live").status, 200);
}

TEST_F(HttpServerTest, TruncatedBodyAndDisconnectsDoNotHurtTheServer) {
  {
    TestClient c = Client();
    c.SendRaw("POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n"
              R"({"inputs":[)");
    c.Close();  // disconnect mid-body
  }
  {
    TestClient c = Client();
    c.SendRaw("GET /v2/health/li");  // mid-header
    c.Close();
  }
  {
    // Disconnect right after a complete infer request, before reading the reply.
    TestClient c = Client();
    const std::string body =
        R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1]}]})";
    c.SendRaw("POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body);
    c.Close();
  }
  {
    // Garbage instead of HTTP: 400 and close.
    TestClient c = Client();
    c.SendRaw("BLAH\x01\x02 / HTTP/9.9\r\n\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 400);
    EXPECT_NE(ErrorOf(*r).find("malformed"), std::string::npos);
  }
  TestClient c = Client();
  EXPECT_EQ(c.Get("/v2/health/ready").status, 200);
  EXPECT_EQ(c.Post("/v2/models/identity_fp32/infer",
                   R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1]}]})")
                .status,
            200);
}

TEST_F(HttpServerTest, MutatedRawRequestsNeverHurtTheServer) {
  const std::string body =
      R"({"inputs":[{"name":"INPUT0","shape":[2],"datatype":"FP32","data":[1,2]}]})";
  const std::string seeds[] = {
      "POST /v2/models/identity_fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body,
      "GET /v2/models/identity_fp32/config HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /v2/systemsharedmemory/region/r/register HTTP/1.1\r\nContent-Length: 30\r\n\r\n"
      R"({"key":"/nope","byte_size":1})",
      "POST /v2/models/identity_fp32/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"in\r\n0\r\n\r\n",
  };
  std::mt19937 rng(99);
  int answered = 0;
  for (int i = 0; i < 200; ++i) {
    std::string raw = seeds[rng() % std::size(seeds)];
    for (int e = 0; e < 1 + static_cast<int>(rng() % 3); ++e) {
      const size_t pos = rng() % raw.size();
      switch (rng() % 3) {
        case 0: raw[pos] = static_cast<char>(rng()); break;
        case 1: raw.erase(pos, 1 + rng() % 5); break;
        default: {
          std::string edited;
          edited.reserve(raw.size() + 1);
          edited.append(raw, 0, pos);
          edited.push_back("\r\n:{}[]0 \"%"[rng() % 12]);
          edited.append(raw, pos, std::string::npos);
          raw.swap(edited);
        }
      }
      if (raw.empty()) raw.push_back('x');
    }
    TestClient c = Client();
    c.SendRaw(raw);
    c.ShutdownSend();  // incomplete requests end here instead of waiting for more bytes
    while (auto r = c.Read()) {
      ++answered;
      EXPECT_GE(r->status, 200);
      EXPECT_LT(r->status, 600);
    }
  }
  EXPECT_GT(answered, 0);
  TestClient c = Client();
  EXPECT_EQ(c.Get("/v2/health/ready").status, 200);
  EXPECT_EQ(c.Post("/v2/models/identity_fp32/infer", body).status, 200);
}

TEST_F(HttpServerTest, ConcurrentClients) {
  constexpr int kClients = 8;
  constexpr int kRequests = 40;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      TestClient c = Client();
      for (int i = 0; i < kRequests; ++i) {
        const std::string v = std::to_string(t * 1000 + i);
        TestResponse r = c.Post(
            "/v2/models/identity_int32/infer",
            R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"INT32","data":[)" + v + "]}]}");
        if (r.status == 200 && r.body.find("[" + v + "]") != std::string::npos) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
}

TEST_F(HttpServerTest, StartFailsOnABusyPort) {
  HttpServerOptions options;
  options.port = server_->port();
  HttpServer second(*engine_, shm_, options);
  Status s = second.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(server_->Start().code(), StatusCode::kAlreadyExists);
  HttpServerOptions bad;
  bad.address = "not-an-address";
  bad.port = 0;
  EXPECT_EQ(HttpServer(*engine_, shm_, bad).Start().code(), StatusCode::kUnavailable);
}

TEST_F(HttpServerTest, StopClosesIdleConnectionsAndRefusesNewOnes) {
  TestClient idle = Client();
  EXPECT_EQ(idle.Get("/v2/health/live").status, 200);
  const uint16_t port = server_->port();
  server_->Stop();
  EXPECT_TRUE(idle.PeerClosed());
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
  EXPECT_TRUE(ec) << "a stopped server must not accept connections";
  server_->Stop();  // idempotent
}

}  // namespace
}  // namespace quiver::frontend
