// The transport core's shared-memory policy, the same over HTTP and gRPC (parameterised):
// a server that restarts during a run, a server that forgets our regions, a region whose
// call was abandoned by a client-side deadline, a host that is not loopback; plus the
// core's own helpers. In-process servers (frontends over an Engine) on 127.0.0.1 port 0.
#include "client/remote_service.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/grpc_service.h"
#include "client/http_service.h"
#include "frontend/grpc_server.h"
#include "frontend/http_server.h"
#include "frontend/shared_memory.h"
#include "testing/engine_fixture.h"
#include "testing/fake_backend.h"
#include "testing/infer_helpers.h"

namespace quiver::client {
namespace {

enum class Protocol { kHttp, kGrpc };

std::string Name(Protocol p) { return p == Protocol::kHttp ? "http" : "grpc"; }

// `n` floats 0..n-1 plus `offset`, as an INPUT0 tensor.
Tensor Floats(size_t n, float offset) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) + offset;
  Tensor t;
  t.name = "INPUT0";
  t.datatype = DataType::kFp32;
  t.shape = {static_cast<int64_t>(n)};
  t.data = Buffer::Copy(v.data(), n * sizeof(float));
  return t;
}

// As one row of a batch (the "gated" model batches).
Tensor Row(Tensor t) {
  t.shape = {1, t.shape[0]};
  return t;
}

float FirstFloat(const Buffer& b) {
  float f = 0;
  std::memcpy(&f, b.data(), sizeof f);
  return f;
}

using quiver::testing::InferAndWait;

// An Engine with "identity" (FP32 [-1]) and "gated" (FakeBackend, batching, whose
// executions wait at a gate the test opens), served over HTTP or gRPC.
class RemoteServiceTest : public ::testing::TestWithParam<Protocol> {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    // Batching: executions run on the scheduler's workers, so a closed gate never stalls a
    // server thread.
    engine_ = quiver::testing::TestEngineBuilder("remote-core")
                     .WithModel("identity", "identity",
                                "max_batch_size: 0\n" +
                                quiver::testing::IoConfig("TYPE_FP32"))
                     .WithFakeModel("gated", fake_,
                                    "max_batch_size: 8\n" +
                                    quiver::testing::IoConfig("TYPE_FP32") +
                                    "dynamic_batching { max_queue_delay_microseconds: 100 }\n")
                     .Build();
    ASSERT_TRUE(engine_);
    StartServer(0);
  }

  void TearDown() override {
    fake_->OpenGate();
    StopServer();
    engine_.reset();
  }

  // A fresh server (and so a fresh shared-memory registry, as after a restart) on `port`.
  void StartServer(uint16_t port) {
    shm_ = std::make_unique<frontend::SharedMemoryManager>();
    if (GetParam() == Protocol::kHttp) {
      frontend::HttpServerOptions options;
      options.address = "127.0.0.1";
      options.port = port;
      options.threads = 2;
      options.stop_timeout = std::chrono::milliseconds(200);
      http_ = std::make_unique<frontend::HttpServer>(*engine_, *shm_, options);
      Status s = http_->Start();
      ASSERT_TRUE(s.ok()) << s.ToString();
      port_ = http_->port();
    } else {
      frontend::GrpcServerOptions options;
      options.address = "127.0.0.1";
      options.port = port;
      options.shutdown_grace = std::chrono::milliseconds(200);
      grpc_ = std::make_unique<frontend::GrpcServer>(*engine_, *shm_, options);
      Status s = grpc_->Start();
      ASSERT_TRUE(s.ok()) << s.ToString();
      port_ = static_cast<uint16_t>(grpc_->port());
    }
  }

  void StopServer() {
    if (http_) http_->Stop();
    if (grpc_) grpc_->Stop();
    http_.reset();
    grpc_.reset();
  }

  RemoteOptions Options() const {
    RemoteOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    o.shared_memory = true;
    o.shared_memory_min_bytes = 1024;
    return o;
  }

  std::shared_ptr<RemoteService> Connect(const RemoteOptions& o) const {
    return GetParam() == Protocol::kHttp ? MakeHttpService(o) : MakeGrpcService(o);
  }

  size_t ServerRegions() const {
    auto regions = shm_->Regions("");
    return regions.ok() ? regions->size() : 0;
  }

  static InferRequest Request(const std::string& model, Tensor input) {
    InferRequest r;
    r.model = model;
    r.inputs.push_back(std::move(input));
    return r;
  }

  std::shared_ptr<quiver::testing::FakeBackend> fake_ =
      std::make_shared<quiver::testing::FakeBackend>();
  quiver::testing::TestEngine engine_;
  std::unique_ptr<frontend::SharedMemoryManager> shm_;
  std::unique_ptr<frontend::HttpServer> http_;
  std::unique_ptr<frontend::GrpcServer> grpc_;
  uint16_t port_ = 0;
};

TEST_P(RemoteServiceTest, ServerRestartDuringARunFailsNoCallAfterIt) {
  // Through the Client, as an analysis runs: retries cover the seconds the server is down;
  // after it is back no call may fail (before the fix, HTTP failed for good with NOT_FOUND
  // for its forgotten region).
  std::shared_ptr<RemoteService> remote;
  ClientOptions options;
  options.urls = {Name(GetParam()) + "://127.0.0.1:" + std::to_string(port_)};
  options.retry.max_attempts = 50;
  options.retry.max_backoff = std::chrono::milliseconds(100);
  auto client = Client::Create(options, [&](const Url& url, const ClientOptions&) {
    RemoteOptions o = Options();
    o.port = url.port;
    remote = Connect(o);
    return Result<std::shared_ptr<InferenceService>>(std::shared_ptr<InferenceService>(remote));
  });
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  constexpr int kBefore = 5, kAfter = 20;
  for (int i = 0; i < kBefore; ++i) {
    auto r = (*client)->InferSync(Request("identity", Floats(4096, float(i))));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  const uint64_t shm_before = remote->SharedMemoryInputs();
  EXPECT_EQ(shm_before, uint64_t{kBefore});

  const uint16_t port = port_;
  StopServer();
  StartServer(port);
  ASSERT_EQ(ServerRegions(), 0u);

  for (int i = 0; i < kAfter; ++i) {
    auto r = (*client)->InferSync(Request("identity", Floats(4096, 100.f + float(i))));
    ASSERT_TRUE(r.ok()) << "call " << i << " after the restart: " << r.status().ToString();
    EXPECT_EQ(FirstFloat(r->outputs[0].data), 100.f + float(i));
  }
  EXPECT_TRUE(remote->SharedMemoryActive());
  EXPECT_GT(remote->SharedMemoryInputs(), shm_before + kAfter - 2) << "shm is used again";
  EXPECT_EQ(ServerRegions(), remote->SharedMemoryRegionCount());
}

TEST_P(RemoteServiceTest, ForgottenRegionsAreReplacedAndTheCallResent) {
  auto service = Connect(Options());
  ASSERT_TRUE(InferAndWait(*service, Request("identity", Floats(1024, 1.f))).ok());
  ASSERT_EQ(ServerRegions(), 1u);
  ASSERT_TRUE(shm_->Unregister("").ok());  // the server's registry is cleared

  auto r = InferAndWait(*service, Request("identity", Floats(1024, 2.f)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();  // resent in the message
  EXPECT_EQ(FirstFloat(r->outputs[0].data), 2.f);
  r = InferAndWait(*service, Request("identity", Floats(1024, 3.f)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();  // a fresh region, registered anew
  EXPECT_EQ(FirstFloat(r->outputs[0].data), 3.f);
  EXPECT_EQ(ServerRegions(), 1u);
  EXPECT_EQ(service->SharedMemoryInputs(), 3u);
  EXPECT_TRUE(service->SharedMemoryActive());
}

TEST_P(RemoteServiceTest, RegionAbandonedByADeadlineIsNotReusedWhileTheServerReadsIt) {
  std::mutex mutex;
  std::vector<float> seen;  // the first input value of every execution, when executed
  fake_->SetExecuteFn([&](int, const engine::BackendBatch& batch, std::vector<Tensor>& outputs,
                          engine::ComputeTimes&) {
    std::lock_guard lock(mutex);
    seen.push_back(FirstFloat(batch.inputs[0].data));
    outputs.push_back(batch.inputs[0]);
    outputs.back().name = "OUTPUT0";
    return Status::Ok();
  });
  auto service = Connect(Options());
  fake_->CloseGate();
  InferRequest first = Request("gated", Row(Floats(1024, 1000.f)));
  first.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::promise<Result<InferResponse>> first_done;
  service->Infer(std::move(first),
                 [&](Result<InferResponse> r) { first_done.set_value(std::move(r)); });
  fake_->WaitForBlocked(1);  // the server holds the first call's region
  auto first_result = first_done.get_future().get();
  ASSERT_EQ(first_result.status().code(), StatusCode::kDeadlineExceeded)
      << first_result.status().ToString();
  EXPECT_NE(first_result.status().message().find(service->endpoint()), std::string::npos)
      << first_result.status().message();

  std::promise<Result<InferResponse>> second_done;
  service->Infer(Request("gated", Row(Floats(1024, 2000.f))),
                 [&](Result<InferResponse> r) { second_done.set_value(std::move(r)); });
  fake_->OpenGate();
  auto second = second_done.get_future().get();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(FirstFloat(second->outputs[0].data), 2000.f);
  fake_->WaitForCompleted(2);
  std::lock_guard lock(mutex);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], 1000.f) << "the abandoned call's bytes were overwritten";
  EXPECT_EQ(seen[1], 2000.f);
  EXPECT_EQ(service->SharedMemoryInputs(), 2u);
  EXPECT_EQ(ServerRegions(), 1u) << "the abandoned region left the server's registry";
}

TEST_P(RemoteServiceTest, AServerNotOnThisHostGetsNoSharedMemory) {
  // "localhost" resolves to loopback; any other name or address is treated as remote. A
  // server reachable only at a non-loopback address cannot be started here, so this
  // checks the decision the service takes from its options.
  RemoteOptions o = Options();
  o.host = "192.0.2.1";  // TEST-NET-1: never contacted, the service connects lazily
  EXPECT_FALSE(Connect(o)->SharedMemoryActive());
  o.host = "localhost";
  EXPECT_TRUE(Connect(o)->SharedMemoryActive());
  o.host = "127.0.0.1";
  o.shared_memory = false;
  auto off = Connect(o);
  EXPECT_FALSE(off->SharedMemoryActive());
  ASSERT_TRUE(InferAndWait(*off, Request("identity", Floats(1024, 1.f))).ok());
  EXPECT_EQ(off->SharedMemoryInputs(), 0u);
  EXPECT_EQ(ServerRegions(), 0u);
}

TEST_P(RemoteServiceTest, ServerErrorsNameTheEndpoint) {
  auto service = Connect(Options());
  auto r = InferAndWait(*service, Request("no_such_model", Floats(4, 0.f)));
  ASSERT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(r.status().message().starts_with(service->endpoint())) << r.status().message();
  auto metadata = service->GetModelMetadata("no_such_model", "");
  ASSERT_EQ(metadata.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(metadata.status().message().starts_with(service->endpoint()))
      << metadata.status().message();
}

INSTANTIATE_TEST_SUITE_P(BothTransports, RemoteServiceTest,
                         ::testing::Values(Protocol::kHttp, Protocol::kGrpc),
                         [](const auto& param_info) { return Name(param_info.param); });

TEST(RemoteCoreTest, LoopbackHosts) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost",
                           "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"10.0.0.1", "192.0.2.1", "::2", "example.org", "", "128.0.0.1",
                           "127.example.org"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(RemoteCoreTest, RetryableCodes) {
  EXPECT_TRUE(IsRetryable(Status::Unavailable("x")));
  EXPECT_TRUE(IsRetryable(Status::DeadlineExceeded("x")));
  EXPECT_FALSE(IsRetryable(Status::NotFound("x")));
  EXPECT_FALSE(IsRetryable(Status::InvalidArgument("x")));
  EXPECT_FALSE(IsRetryable(Status::Cancelled("x")));
}

TEST(RemoteCoreTest, RetryableCodesLeaveOutAuthAndRateLimits) {
  // A wrong token stays wrong, and a tenant over its limit is not helped by more load.
  EXPECT_FALSE(IsRetryable(Status(StatusCode::kUnauthenticated, "x")));
  EXPECT_FALSE(IsRetryable(Status(StatusCode::kTooManyRequests, "x")));
  EXPECT_FALSE(IsRetryable(Status::ResourceExhausted("x")));
}

TEST(RemoteCoreTest, TokensMustBeVisibleAscii) {
  EXPECT_TRUE(CheckToken("").ok());
  EXPECT_TRUE(CheckToken("abc-._~+/=XYZ019").ok());
  for (const char* bad : {"a b", "abc\n", "a\r\nX-Other: 1", "t\xc3\xa9", "a\tb"}) {
    Status s = CheckToken(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(s.message().find(bad), std::string::npos) << "the message holds the token";
  }
}

TEST(RemoteCoreTest, NamingEndpointPrefixesOnce) {
  const std::string e = "grpc://127.0.0.1:1";
  EXPECT_EQ(NamingEndpoint(Status::NotFound("m"), e).message(), e + ": m");
  EXPECT_EQ(NamingEndpoint(Status::NotFound(e + ": m"), e).message(), e + ": m");
  EXPECT_TRUE(NamingEndpoint(Status::Ok(), e).ok());
}

}  // namespace
}  // namespace quiver::client
