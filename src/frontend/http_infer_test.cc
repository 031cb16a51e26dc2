// Inference through HttpServer: every datatype through JSON, binary and shared memory
// gives the same bytes; mixed transports; asynchronous completion, graceful stop and
// status-code mapping with a service that holds requests until told to answer.

#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "frontend/http_server.h"
#include "frontend/http_test_util.h"
#include "protocol/http_infer_codec.h"
#include "testing/fake_inference_service.h"

namespace quiver::frontend {
namespace {

using protocol::InputEncoding;
using protocol::ResponsePlan;
using protocol::SharedMemoryRef;
using protocol::Transport;
using testing::HttpEngineFixture;
using quiver::testing::IdentityModelName;
using quiver::testing::kAllTypes;
using testing::ShmObject;
using testing::TestClient;
using testing::TestResponse;
using json = nlohmann::json;

std::string Bytes(const void* p, size_t n) { return {static_cast<const char*>(p), n}; }

Tensor Sample(DataType type) {
  Tensor t{"INPUT0", type, {6}, {}};
  if (type == DataType::kBytes) {
    std::vector<std::string> s = {"", "x", "hello", std::string("\0\x01\x7f", 3), "\"\\", "end"};
    t.data = MakeBytesBuffer(s);
    return t;
  }
  const size_t n = 6 * DataTypeSize(type);
  t.data = Buffer::Allocate(n);
  for (size_t i = 0; i < n; ++i) t.data.mutable_data()[i] = static_cast<std::byte>(i * 29 + 3);
  if (type == DataType::kBool) {
    for (size_t i = 0; i < n; ++i) t.data.mutable_data()[i] = static_cast<std::byte>(i % 3 == 0);
  } else if (type == DataType::kFp32) {
    const float v[6] = {0.1f, -7.25f, 1e30f, -1e-30f, 0.f, 65504.f};
    std::memcpy(t.data.mutable_data(), v, sizeof(v));
  } else if (type == DataType::kFp64) {
    const double v[6] = {0.1, -7.25, 1e300, -1e-300, 0.0, 1.0 / 7};
    std::memcpy(t.data.mutable_data(), v, sizeof(v));
  }
  return t;
}

// Sends an encoded request and parses the response with the client-side codec.
struct InferOutcome {
  TestResponse http;
  std::shared_ptr<std::string> body;
  Result<InferResponse> response = Status::Unknown("not parsed");
};

InferOutcome Infer(TestClient& c, const std::string& model, const InferRequest& request,
                   std::span<const InputEncoding> inputs, const ResponsePlan& plan) {
  InferOutcome out;
  auto encoded = protocol::EncodeInferRequest(request, inputs, plan);
  EXPECT_TRUE(encoded.ok()) << encoded.status().ToString();
  if (!encoded.ok()) return out;
  std::vector<std::pair<std::string, std::string>> headers;
  if (auto hl = encoded->header_length()) {
    headers.emplace_back("Inference-Header-Content-Length", std::to_string(*hl));
  }
  out.http = c.Post("/v2/models/" + model + "/infer", encoded->Flatten(), headers);
  if (out.http.status != 200) return out;
  out.body = std::make_shared<std::string>(out.http.body);
  protocol::InferBody body;
  body.bytes = std::span<const std::byte>(reinterpret_cast<const std::byte*>(out.body->data()),
                                          out.body->size());
  body.keepalive = out.body;
  const std::string hl = out.http.Header("inference-header-content-length");
  if (!hl.empty()) body.header_length = std::stoull(hl);
  out.response = protocol::ParseInferResponse(body);
  return out;
}

class HttpInferTest : public HttpEngineFixture {
 protected:
  void Register(TestClient& c, const std::string& name, const ShmObject& obj, uint64_t offset,
                uint64_t size) {
    const std::string body = R"({"key":")" + obj.key() + R"(","offset":)" +
                             std::to_string(offset) + R"(,"byte_size":)" + std::to_string(size) +
                             "}";
    TestResponse r = c.Post("/v2/systemsharedmemory/region/" + name + "/register", body);
    ASSERT_EQ(r.status, 200) << r.body;
  }
};

TEST_F(HttpInferTest, EveryDatatypeGivesTheSameBytesThroughJsonBinaryAndSharedMemory) {
  ShmObject obj(1 << 16);
  TestClient c = Client();
  Register(c, "in", obj, 0, 4096);
  Register(c, "out", obj, 8192, 4096);
  for (DataType type : kAllTypes) {
    const std::string model = IdentityModelName(type);
    const Tensor input = Sample(type);
    std::vector<std::string> results;
    for (Transport t : {Transport::kJson, Transport::kBinary, Transport::kSharedMemory}) {
      const bool json_capable = type != DataType::kFp16 && type != DataType::kBf16;
      if (t == Transport::kJson && !json_capable) continue;
      SCOPED_TRACE(model + " transport " + std::to_string(static_cast<int>(t)));
      InferRequest request;
      request.inputs.push_back(input);
      InputEncoding enc{t, {"in", 128, input.data.size()}};
      if (t == Transport::kSharedMemory) {
        std::memcpy(obj.data() + 128, input.data.data(), input.data.size());
        std::memset(obj.data() + 8192 + 64, 0xEE, 1024);
      }
      ResponsePlan plan;
      plan.outputs.emplace_back("OUTPUT0", t, SharedMemoryRef{"out", 64, 1024});
      InferOutcome outcome = Infer(c, model, request, std::span<const InputEncoding>(&enc, 1), plan);
      ASSERT_EQ(outcome.http.status, 200) << outcome.http.body;
      ASSERT_TRUE(outcome.response.ok()) << outcome.response.status().ToString();
      const InferResponse& response = *outcome.response;
      EXPECT_EQ(response.model, model);
      EXPECT_EQ(response.version, "1");
      ASSERT_EQ(response.outputs.size(), 1u);
      const Tensor& out = response.outputs[0];
      EXPECT_EQ(out.name, "OUTPUT0");
      EXPECT_EQ(out.datatype, type);
      EXPECT_EQ(out.shape, input.shape);
      if (t == Transport::kSharedMemory) {
        // Reported without data or binary size; the bytes are in the region.
        EXPECT_EQ(outcome.http.body.find("\"data\""), std::string::npos);
        EXPECT_EQ(outcome.http.body.find("binary_data_size"), std::string::npos);
        EXPECT_TRUE(out.data.empty());
        results.push_back(Bytes(obj.data() + 8192 + 64, input.data.size()));
      } else {
        results.push_back(Bytes(out.data.data(), out.data.size()));
      }
      if (t == Transport::kBinary) {
        EXPECT_EQ(outcome.http.Header("content-type"), "application/octet-stream");
      }
      EXPECT_EQ(results.back(), Bytes(input.data.data(), input.data.size()));
    }
    for (const std::string& r : results) EXPECT_EQ(r, results.front()) << model;
  }
}

TEST_F(HttpInferTest, MixedTransportsInOneRequest) {
  ShmObject obj(4096);
  TestClient c = Client();
  Register(c, "o", obj, 0, 4096);
  const float a[3] = {1.f, 2.f, 3.f};
  const std::vector<std::string> b = {"alpha", "beta"};
  InferRequest request;
  request.id = "mixed";
  request.inputs.push_back(MakeTensor<float>("A", DataType::kFp32, {3}, a));
  request.inputs.push_back(Tensor{"B", DataType::kBytes, {2}, MakeBytesBuffer(b)});
  const InputEncoding enc[2] = {{Transport::kBinary, {}}, {Transport::kJson, {}}};
  ResponsePlan plan;
  plan.outputs.emplace_back("B_OUT", Transport::kBinary);
  plan.outputs.emplace_back("A_OUT", Transport::kSharedMemory, SharedMemoryRef{"o", 100, 12});
  InferOutcome outcome = Infer(c, "id_multi", request, enc, plan);
  ASSERT_EQ(outcome.http.status, 200) << outcome.http.body;
  ASSERT_TRUE(outcome.response.ok());
  EXPECT_EQ(outcome.response->id, "mixed");
  ASSERT_EQ(outcome.response->outputs.size(), 2u);
  EXPECT_EQ(outcome.response->outputs[0].name, "B_OUT");
  EXPECT_EQ(Bytes(outcome.response->outputs[0].data.data(), outcome.response->outputs[0].data.size()),
            Bytes(request.inputs[1].data.data(), request.inputs[1].data.size()));
  float in_shm[3];
  std::memcpy(in_shm, obj.data() + 100, sizeof(in_shm));
  EXPECT_EQ(in_shm[2], 3.f);
  // Only the requested outputs come back.
  EXPECT_EQ(outcome.http.body.find("A\""), std::string::npos);
}

TEST_F(HttpInferTest, AllOutputsInBinaryWhenNoneAreListed) {
  TestClient c = Client();
  InferRequest request;
  request.inputs.push_back(Sample(DataType::kFp16));
  ResponsePlan plan;
  plan.default_transport = Transport::kBinary;  // tritonclient's binary_data_output
  InferOutcome outcome = Infer(c, "identity_fp16", request, {}, plan);
  ASSERT_EQ(outcome.http.status, 200) << outcome.http.body;
  ASSERT_TRUE(outcome.response.ok());
  EXPECT_EQ(Bytes(outcome.response->outputs[0].data.data(), 12),
            Bytes(request.inputs[0].data.data(), 12));
}

TEST_F(HttpInferTest, SharedMemoryErrors) {
  ShmObject obj(4096);
  TestClient c = Client();
  Register(c, "small", obj, 0, 8);
  const std::string unknown =
      R"({"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","parameters":)"
      R"({"shared_memory_region":"nope","shared_memory_byte_size":4}}]})";
  TestResponse r1 = c.Post("/v2/models/identity_fp32/infer", unknown);
  EXPECT_EQ(r1.status, 404);
  EXPECT_NE(r1.body.find("nope"), std::string::npos);
  const std::string out_of_bounds =
      R"({"inputs":[{"name":"INPUT0","shape":[4],"datatype":"FP32","parameters":)"
      R"({"shared_memory_region":"small","shared_memory_byte_size":16}}]})";
  EXPECT_EQ(c.Post("/v2/models/identity_fp32/infer", out_of_bounds).status, 400);
  const std::string too_small_output =
      R"({"inputs":[{"name":"INPUT0","shape":[4],"datatype":"FP32","data":[1,2,3,4]}],)"
      R"("outputs":[{"name":"OUTPUT0","parameters":{"shared_memory_region":"small",)"
      R"("shared_memory_byte_size":8}}]})";
  TestResponse r3 = c.Post("/v2/models/identity_fp32/infer", too_small_output);
  EXPECT_EQ(r3.status, 400);
  EXPECT_NE(r3.body.find("should be at least 16 bytes"), std::string::npos) << r3.body;
  // Unregistered while a request could still use it: later requests fail cleanly.
  ASSERT_EQ(c.Post("/v2/systemsharedmemory/region/small/unregister").status, 200);
  EXPECT_EQ(c.Post("/v2/models/identity_fp32/infer", too_small_output).status, 404);
}

const std::string kEchoBody =
    R"({"id":"e","inputs":[{"name":"X","shape":[2],"datatype":"INT8","data":[1,2]}]})";

class HttpAsyncTest : public ::testing::Test {
 protected:
  void Start(std::chrono::milliseconds stop_timeout = std::chrono::seconds(30)) {
    HttpServerOptions o;
    o.port = 0;
    o.threads = 2;
    o.stop_timeout = stop_timeout;
    server_ = std::make_unique<HttpServer>(service_, shm_, o);
    ASSERT_TRUE(server_->Start().ok());
  }
  // `n` echo requests, each on a connection of its own, sent concurrently.
  std::vector<std::future<TestResponse>> PostEchoes(int n) {
    std::vector<std::future<TestResponse>> replies;
    for (int i = 0; i < n; ++i) {
      replies.push_back(std::async(std::launch::async, [this] {
        TestClient c(server_->port());
        return c.Post("/v2/models/m/infer", kEchoBody);
      }));
    }
    return replies;
  }
  static void ExpectEchoReplies(std::vector<std::future<TestResponse>>& replies) {
    for (auto& f : replies) {
      TestResponse r = f.get();
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body,
                R"({"id":"e","model_name":"m","model_version":"1","outputs":[)"
                R"({"name":"X_OUT","datatype":"INT8","shape":[2],"data":[1,2]}]})");
    }
  }
  // Holds every inference until the test answers it; echoes X as X_OUT.
  quiver::testing::FakeInferenceService service_{quiver::testing::FakeInferenceService::Mode::kHold};
  SharedMemoryManager shm_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpAsyncTest, IoThreadsStayFreeWhileInferencesArePending) {
  Start();
  // Two I/O threads, four held inferences: other requests are still answered.
  std::vector<std::future<TestResponse>> replies = PostEchoes(4);
  service_.WaitForHeld(4);
  TestClient other(server_->port());
  EXPECT_EQ(other.Get("/v2/health/live").status, 200);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(service_.ReleaseOne());
  ExpectEchoReplies(replies);
}

// Collects the work a reply defers to the end of its engine batch.
class RecordingDeliveryBatch final : public DeliveryBatch {
 public:
  void AfterDelivery(std::function<void()> work) override { works.push_back(std::move(work)); }
  std::vector<std::function<void()>> works;
};

TEST_F(HttpAsyncTest, RepliesOfOneBatchWakeTheIoThreadsAfterTheLast) {
  Start();
  std::vector<std::future<TestResponse>> replies = PostEchoes(2);
  std::vector<quiver::testing::FakeInferenceService::Held> held = service_.TakeHeld(2);
  ASSERT_EQ(held.size(), 2U);
  // Delivered as an engine delivers one batch: the wake-ups wait for the batch's end.
  RecordingDeliveryBatch batch;
  for (auto& h : held) {
    InferResponse response = quiver::testing::FakeInferenceService::Echo(h.request);
    response.delivery_batch = &batch;
    h.done(std::move(response));
  }
  EXPECT_EQ(batch.works.size(), 2U);
  for (auto& work : batch.works) work();
  ExpectEchoReplies(replies);
}

TEST_F(HttpAsyncTest, ServiceErrorsMapThroughHttpStatusFor) {
  Start();
  TestClient c(server_->port());
  const std::pair<Status, int> cases[] = {
      {Status::InvalidArgument("bad"), 400},   {Status::NotFound("gone"), 404},
      {Status::Unavailable("busy"), 503},      {Status::ResourceExhausted("full"), 503},
      {Status::DeadlineExceeded("late"), 503}, {Status::Internal("boom"), 500},
      {Status::Unsupported("no"), 501},        {Status::AlreadyExists("dup"), 400},
      {Status::Cancelled("gone"), 400},        {Status::Unknown("?"), 400},
  };
  for (const auto& [status, code] : cases) {
    auto reply = std::async(std::launch::async,
                            [&] { return c.Post("/v2/models/m/infer", kEchoBody); });
    service_.WaitForHeld(1);
    EXPECT_TRUE(service_.ReleaseOne(status));
    TestResponse r = reply.get();
    EXPECT_EQ(r.status, code) << status.ToString();
    EXPECT_EQ(r.body, R"({"error":")" + status.message() + "\"}");
  }
  // Readiness as Triton: 400 with an empty body, and a fixed text for a model.
  service_.set_ready(false);
  TestResponse not_ready = c.Get("/v2/health/ready");
  EXPECT_EQ(not_ready.status, 400);
  EXPECT_EQ(not_ready.body, "");
  EXPECT_EQ(c.Get("/v2/health/live").status, 200);
  TestResponse model = c.Get("/v2/models/m/ready");
  EXPECT_EQ(model.status, 400);
  EXPECT_EQ(model.body, R"({"error":"Model version not ready"})");
}

TEST_F(HttpAsyncTest, StopFinishesInFlightRequests) {
  Start();
  auto reply = std::async(std::launch::async, [&] {
    TestClient c(server_->port());
    return c.Post("/v2/models/m/infer", kEchoBody);
  });
  service_.WaitForHeld(1);
  std::thread stopper([&] { server_->Stop(); });
  EXPECT_TRUE(service_.ReleaseOne());
  stopper.join();
  TestResponse r = reply.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("X_OUT"), std::string::npos);
}

TEST_F(HttpAsyncTest, RepliesAfterTheStopDeadlineAreDropped) {
  Start(std::chrono::milliseconds(0));
  TestClient c(server_->port());
  c.SendRaw("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
            std::to_string(kEchoBody.size()) + "\r\n\r\n" + kEchoBody);
  service_.WaitForHeld(1);
  server_->Stop();  // gives up on the held request at once
  EXPECT_FALSE(c.Read().has_value());
  EXPECT_TRUE(service_.ReleaseOne());  // the late callback finds the server gone: no crash, no reply
  server_.reset();
}

}  // namespace
}  // namespace quiver::frontend
