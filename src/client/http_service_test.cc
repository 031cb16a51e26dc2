// HttpService against the in-process HTTP frontend: every datatype, concurrency over a
// small pool, shared memory, the sync methods, and every failure path of the contract
// (server errors, refused connections, deadlines, a server stopping, the service being
// destroyed) with exactly one callback per Infer.

#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include "client/http_service.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <google/protobuf/util/message_differencer.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "client/http_test_fixture.h"

namespace quiver::client {
namespace {

using quiver::testing::CallbackCounter;
using testing::HttpServiceFixture;
using quiver::testing::IdentityModelName;
using quiver::testing::InferAndWait;
using quiver::testing::kAllTypes;
using testing::RawHttpServer;

std::string Bytes(const Buffer& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// `n` elements of `type` with varied bit patterns (valid values for BOOL and BYTES).
Tensor Sample(DataType type, size_t n = 7, uint32_t seed = 1) {
  Tensor t{"INPUT0", type, {static_cast<int64_t>(n)}, {}};
  if (type == DataType::kBytes) {
    std::vector<std::string> s;
    for (size_t i = 0; i < n; ++i) {
      s.push_back(std::string(i % 4, static_cast<char>('a' + (i + seed) % 26)) +
                  std::string("\0\x7f\"", 3));
    }
    t.data = MakeBytesBuffer(s);
    return t;
  }
  const size_t bytes = n * DataTypeSize(type);
  t.data = Buffer::Allocate(bytes);
  for (size_t i = 0; i < bytes; ++i) {
    t.data.mutable_data()[i] = static_cast<std::byte>((i * 29 + seed * 7 + 3) & 0xff);
  }
  if (type == DataType::kBool) {
    for (size_t i = 0; i < bytes; ++i) {
      t.data.mutable_data()[i] = static_cast<std::byte>((i + seed) % 3 == 0);
    }
  }
  return t;
}

InferRequest Request(const std::string& model, Tensor input) {
  InferRequest r;
  r.model = model;
  r.inputs.push_back(std::move(input));
  return r;
}

// A request for the "gated" model (batching: shape [1, n]).
InferRequest Gated(size_t n = 5) {
  Tensor t = Sample(DataType::kFp32, n);
  t.shape = {1, static_cast<int64_t>(n)};
  return Request("gated", std::move(t));
}

void ExpectIdentity(const Result<InferResponse>& r, const Tensor& input, const std::string& model) {
  ASSERT_TRUE(r.ok()) << model << ": " << r.status().ToString();
  EXPECT_EQ(r->model, model);
  EXPECT_EQ(r->version, "1");
  ASSERT_EQ(r->outputs.size(), 1u);
  const Tensor& out = r->outputs[0];
  EXPECT_EQ(out.name, "OUTPUT0");
  EXPECT_EQ(out.datatype, input.datatype);
  EXPECT_EQ(out.shape, input.shape);
  EXPECT_EQ(Bytes(out.data), Bytes(input.data)) << model;
  // The body is placed so that the (first) binary output is aligned.
  if (!out.data.empty()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(out.data.data()) % 64, 0u);
  }
}

class HttpServiceTest : public HttpServiceFixture {};

TEST_F(HttpServiceTest, EveryDatatypeRoundTripsAsBinary) {
  auto service = Service(Options(/*shared_memory=*/false));
  for (DataType type : kAllTypes) {
    const std::string model = IdentityModelName(type);
    const Tensor input = Sample(type);
    ExpectIdentity(InferAndWait(*service, Request(model, input)), input, model);
  }
  EXPECT_EQ(service->SharedMemoryRegionCount(), 0u);
}

TEST_F(HttpServiceTest, EveryDatatypeRoundTripsThroughSharedMemory) {
  RemoteOptions o = Options(/*shared_memory=*/true);
  o.shared_memory_min_bytes = 1;
  auto service = Service(o);
  ASSERT_TRUE(service->SharedMemoryActive());
  for (DataType type : kAllTypes) {
    const std::string model = IdentityModelName(type);
    const Tensor input = Sample(type, 1000);
    ExpectIdentity(InferAndWait(*service, Request(model, input)), input, model);
  }
  EXPECT_TRUE(service->SharedMemoryActive());
  // Sequential requests reuse one region; the server sees it registered.
  EXPECT_EQ(service->SharedMemoryRegionCount(), 1u);
  auto regions = shm_.Regions("");
  ASSERT_TRUE(regions.ok());
  EXPECT_EQ(regions->size(), 1u);
  service.reset();  // unregisters
  regions = shm_.Regions("");
  ASSERT_TRUE(regions.ok());
  EXPECT_TRUE(regions->empty());
}

TEST_F(HttpServiceTest, EmptyAndMultiDimensionalTensors) {
  auto service = Service(Options());
  Tensor empty{"INPUT0", DataType::kFp32, {0}, Buffer()};
  ExpectIdentity(InferAndWait(*service, Request("identity_fp32", empty)), empty, "identity_fp32");
}

TEST_F(HttpServiceTest, ThousandConcurrentRequestsOverTwoConnections) {
  auto service = Service(Options(false, /*connections=*/2));
  constexpr int kRequests = 1000;
  std::vector<Tensor> inputs;
  CallbackCounter counter;
  std::vector<std::promise<Result<InferResponse>>> promises(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    const int32_t v[3] = {i, -i, i * 7};
    inputs.push_back(MakeTensor<int32_t>("INPUT0", DataType::kInt32, {3}, v));
  }
  for (int i = 0; i < kRequests; ++i) {
    service->Infer(Request("identity_int32", inputs[i]), [&, i](Result<InferResponse> r) {
      promises[i].set_value(r);
      counter.Add(std::move(r));
    });
  }
  counter.Wait(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    ExpectIdentity(promises[i].get_future().get(), inputs[i], "identity_int32");
  }
  EXPECT_EQ(counter.count(), static_cast<size_t>(kRequests));
}

TEST_F(HttpServiceTest, SharedMemoryRegionsAreReusedAcrossRequests) {
  RemoteOptions o = Options(/*shared_memory=*/true, 4);
  o.shared_memory_min_bytes = 4096;
  auto service = Service(o);
  constexpr int kRequests = 100;
  std::vector<Tensor> inputs;
  for (int i = 0; i < kRequests; ++i) inputs.push_back(Sample(DataType::kFp32, 16384, i));
  // Through shm and, for comparison, through a binary-only service.
  auto binary = Service(Options(false));
  CallbackCounter counter;
  std::vector<std::promise<Result<InferResponse>>> promises(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    service->Infer(Request("identity_fp32", inputs[i]), [&, i](Result<InferResponse> r) {
      promises[i].set_value(r);
      counter.Add(std::move(r));
    });
    if (i % 8 == 7) counter.Wait(i - 3);  // at most ~4 + 8 in flight
  }
  counter.Wait(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    auto r = promises[i].get_future().get();
    ExpectIdentity(r, inputs[i], "identity_fp32");
    if (i % 10 == 0) {
      auto b = InferAndWait(*binary, Request("identity_fp32", inputs[i]));
      ASSERT_TRUE(b.ok());
      EXPECT_EQ(Bytes(b->outputs[0].data), Bytes(r->outputs[0].data));
    }
  }
  EXPECT_TRUE(service->SharedMemoryActive());
  EXPECT_GE(service->SharedMemoryRegionCount(), 1u);
  EXPECT_LE(service->SharedMemoryRegionCount(), 16u);
  auto regions = shm_.Regions("");
  ASSERT_TRUE(regions.ok());
  EXPECT_EQ(regions->size(), service->SharedMemoryRegionCount());
}

TEST_F(HttpServiceTest, SmallInputsStayInTheBodyWithSharedMemoryOn) {
  auto service = Service(Options(/*shared_memory=*/true));  // min 64 KiB
  const Tensor input = Sample(DataType::kFp32, 10);
  ExpectIdentity(InferAndWait(*service, Request("identity_fp32", input)), input, "identity_fp32");
  EXPECT_EQ(service->SharedMemoryRegionCount(), 0u);
}

TEST_F(HttpServiceTest, LargeTensorsRoundTrip) {
  const Tensor input = Sample(DataType::kUint8, size_t{16} << 20);
  for (bool shm : {false, true}) {
    SCOPED_TRACE(shm ? "shared memory" : "binary");
    auto service = Service(Options(shm));
    ExpectIdentity(InferAndWait(*service, Request("identity_uint8", input)), input, "identity_uint8");
    EXPECT_EQ(service->SharedMemoryRegionCount(), shm ? 1u : 0u);
  }
}

TEST_F(HttpServiceTest, RequestedOutputsIdAndParameters) {
  auto service = Service(Options());
  InferRequest r = Request("identity_fp64", Sample(DataType::kFp64));
  r.id = "request-42";
  r.requested_outputs = {"OUTPUT0"};
  r.priority = 1;
  r.timeout_us = 10'000'000;
  auto out = InferAndWait(*service, r);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->id, "request-42");
  ExpectIdentity(out, r.inputs[0], "identity_fp64");
}

TEST_F(HttpServiceTest, UnknownModelIsNotFoundWithTheServersMessage) {
  auto service = Service(Options());
  auto r = InferAndWait(*service, Request("no_such_model", Sample(DataType::kFp32)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  // The same message the engine gives in process, after the endpoint's name.
  std::promise<Result<InferResponse>> local;
  engine_->Infer(Request("no_such_model", Sample(DataType::kFp32)),
                 [&](Result<InferResponse> x) { local.set_value(std::move(x)); });
  EXPECT_EQ(r.status().message(),
            service->endpoint() + ": " + local.get_future().get().status().message());
}

TEST_F(HttpServiceTest, InvalidInputIsTheServersInvalidArgument) {
  auto service = Service(Options());
  InferRequest r = Request("identity_fp32", Sample(DataType::kInt32));  // wrong datatype
  auto out = InferAndWait(*service, r);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument) << out.status().ToString();
  EXPECT_NE(out.status().message().find("INPUT0"), std::string::npos) << out.status().message();
}

uint16_t ClosedPort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = a.local_endpoint().port();
  a.close();
  return port;
}

TEST_F(HttpServiceTest, ServerNotRunningIsUnavailableNamingTheEndpoint) {
  RemoteOptions o = Options();
  o.port = ClosedPort();
  auto service = Service(o);  // constructing does not connect
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(o.port);
  EXPECT_EQ(service->endpoint(), endpoint);
  auto r = InferAndWait(*service, Request("identity_fp32", Sample(DataType::kFp32)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), endpoint + ": connection refused");
  EXPECT_FALSE(service->Live());
  EXPECT_FALSE(service->Ready());
  EXPECT_FALSE(service->ModelReady("identity_fp32", ""));
  auto m = service->GetServerMetadata();
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(m.status().message(), endpoint + ": connection refused");
  EXPECT_EQ(service->Load("x").code(), StatusCode::kUnavailable);
}

TEST(HttpServiceConnectTest, ConnectTimeoutIsUnavailable) {
  // A listener that never accepts, its backlog filled: further SYNs go unanswered.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(fd);
  }
  RemoteOptions o;
  o.port = ntohs(addr.sin_port);
  o.connect_timeout = std::chrono::milliseconds(200);
  o.shared_memory = false;
  HttpService service(o);
  auto r = InferAndWait(service, Request("m", Sample(DataType::kFp32)));
  EXPECT_EQ(r.status(), Status::Unavailable("http://127.0.0.1:" + std::to_string(o.port) +
                                            ": connection timed out after 200 ms"));
  for (int fd : fillers) ::close(fd);
  ::close(listener);
}

// A server that completes the TCP handshake (the kernel queues the connection) but never
// reads or answers: a hung process.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen: " << std::strerror(errno);
    }
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST(HttpServiceHungServerTest, SyncCallsGiveUpAfterTheConnectTimeout) {
  SilentListener server;
  RemoteOptions o;
  o.port = server.port();
  o.connect_timeout = std::chrono::milliseconds(150);
  o.shared_memory = false;
  HttpService service(o);
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(o.port);
  EXPECT_FALSE(service.Live());
  EXPECT_FALSE(service.Ready());
  EXPECT_FALSE(service.ModelReady("m", ""));
  auto metadata = service.GetModelMetadata("m", "");
  EXPECT_EQ(metadata.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(metadata.status().message().starts_with(endpoint + ": no answer to GET /v2/models/m"))
      << metadata.status().message();
  EXPECT_EQ(service.GetModelConfig("m", "").status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(service.GetStatistics("m", "").status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(service.Index().status().code(), StatusCode::kDeadlineExceeded);
}

TEST(HttpServiceHungServerTest, SharedMemoryRegistrationDoesNotHangAnInferWithADeadline) {
  // The region is registered on the calling thread before the request is queued: a hung
  // server used to block that thread for good, whatever the request's deadline.
  SilentListener server;
  RemoteOptions o;
  o.port = server.port();
  o.connect_timeout = std::chrono::milliseconds(150);
  o.shared_memory = true;
  o.shared_memory_min_bytes = 1;
  HttpService service(o);
  InferRequest request = Request("m", Sample(DataType::kFp32, 1024));
  request.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  auto r = InferAndWait(service, std::move(request));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
}

TEST_F(HttpServiceTest, UnresolvableHostIsUnavailable) {
  RemoteOptions o = Options();
  o.host = "no-such-host.invalid";
  auto service = Service(o);
  auto r = InferAndWait(*service, Request("identity_fp32", Sample(DataType::kFp32)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message().rfind("http://no-such-host.invalid:", 0), 0u)
      << r.status().message();
}

TEST_F(HttpServiceTest, DeadlineExceededWhileTheServerWorks) {
  auto service = Service(Options(false, 1));
  fake_->CloseGate();
  InferRequest r = Gated();
  r.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  auto out = InferAndWait(*service, r);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(out.status().message(),
            "http://127.0.0.1:" + std::to_string(port_) + ": deadline exceeded waiting for "
            "model 'gated'");
  fake_->OpenGate();
  // The connection was closed; the next call opens a fresh one.
  InferRequest again = Gated();
  ExpectIdentity(InferAndWait(*service, again), again.inputs[0], "gated");
}

TEST_F(HttpServiceTest, DeadlineExceededWhileQueuedAndAlreadyPassed) {
  auto service = Service(Options(false, 1));
  fake_->CloseGate();
  CallbackCounter blocked;
  service->Infer(Gated(),
                 [&](Result<InferResponse> r) { blocked.Add(std::move(r)); });
  fake_->WaitForBlocked(1);
  // Queued behind the blocked request on the only connection.
  InferRequest queued = Request("identity_fp32", Sample(DataType::kFp32));
  queued.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  auto out = InferAndWait(*service, queued);
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded);
  // Already passed: fails without being sent.
  InferRequest late = Request("identity_fp32", Sample(DataType::kFp32));
  late.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  EXPECT_EQ(InferAndWait(*service, late).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(blocked.count(), 0u);
  fake_->OpenGate();
  blocked.Wait(1);
  EXPECT_TRUE(blocked.results()[0].ok());
}

TEST_F(HttpServiceTest, ServerStoppedWithRequestsInFlightGivesEachOneError) {
  auto service = Service(Options(false, 2));
  fake_->CloseGate();
  constexpr int kRequests = 10;
  CallbackCounter counter;
  std::atomic<int> calls{0};
  for (int i = 0; i < kRequests; ++i) {
    service->Infer(Gated(), [&](Result<InferResponse> r) {
      ++calls;
      counter.Add(std::move(r));
    });
  }
  fake_->WaitForBlocked(1);  // at the server; the rest queued in the client
  // Waits stop_timeout for the blocked ones, then closes. (Destroyed rather than only
  // Stop()ped: Stop() can leave force-closed sockets open until the server is destroyed.)
  server_.reset();
  counter.Wait(kRequests);
  fake_->OpenGate();
  for (const auto& r : counter.results()) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
    EXPECT_EQ(r.status().message().rfind("http://127.0.0.1:" + std::to_string(port_) + ": ", 0),
              0u)
        << r.status().message();
  }
  service.reset();
  EXPECT_EQ(calls.load(), kRequests);
}

TEST_F(HttpServiceTest, DestroyingTheServiceCancelsEveryCallExactlyOnce) {
  auto service = Service(Options(true, 2));
  fake_->CloseGate();
  constexpr int kRequests = 20;
  std::atomic<int> calls{0};
  CallbackCounter counter;
  for (int i = 0; i < kRequests; ++i) {
    service->Infer(Gated(), [&](Result<InferResponse> r) {
      ++calls;
      counter.Add(std::move(r));
    });
  }
  fake_->WaitForBlocked(1);
  service.reset();  // returns once every callback ran
  EXPECT_EQ(calls.load(), kRequests);
  for (const auto& r : counter.results()) {
    EXPECT_EQ(r.status().code(), StatusCode::kCancelled) << r.status().ToString();
  }
  fake_->OpenGate();
}

TEST_F(HttpServiceTest, ReleasingTheLastReferenceFromACallbackIsSafe) {
  auto service = Service(Options());
  std::promise<bool> done;
  InferenceService* raw = service.get();
  raw->Infer(Request("identity_fp32", Sample(DataType::kFp32)),
             [keep = std::move(service), &done](Result<InferResponse> r) mutable {
               done.set_value(r.ok());
               // `keep` goes with this callback, on the service's own thread.
             });
  EXPECT_TRUE(done.get_future().get());
}

TEST_F(HttpServiceTest, SyncCallsFromACallbackDoNotDeadlock) {
  auto service = Service(Options(false, 1));
  std::promise<bool> ready;
  service->Infer(Request("identity_fp32", Sample(DataType::kFp32)), [&](Result<InferResponse> r) {
    ready.set_value(r.ok() && service->ModelReady("identity_fp32", "") && service->Live());
  });
  EXPECT_TRUE(ready.get_future().get());
}

TEST_F(HttpServiceTest, IdleConnectionClosedByTheServerIsRetriedTransparently) {
  auto service = Service(Options(false, 1));
  const Tensor input = Sample(DataType::kFp32);
  ExpectIdentity(InferAndWait(*service, Request("identity_fp32", input)), input, "identity_fp32");
  // Restart the server on the same port: the client's keep-alive connection is dead.
  const uint16_t port = port_;
  server_.reset();
  StartServer(port);
  ASSERT_EQ(port_, port);
  ExpectIdentity(InferAndWait(*service, Request("identity_fp32", input)), input, "identity_fp32");
  EXPECT_TRUE(service->Live());
}

TEST_F(HttpServiceTest, SyncMethodsMatchTheEngine) {
  auto service = Service(Options());
  EXPECT_TRUE(service->Live());
  EXPECT_TRUE(service->Ready());

  auto server = service->GetServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto local_server = engine_->GetServerMetadata();
  ASSERT_TRUE(local_server.ok());
  EXPECT_EQ(server->name, local_server->name);
  EXPECT_EQ(server->version, local_server->version);
  EXPECT_NE(std::find(server->extensions.begin(), server->extensions.end(), "binary_tensor_data"),
            server->extensions.end());

  auto meta = service->GetModelMetadata("identity_bytes", "");
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  auto local_meta = engine_->GetModelMetadata("identity_bytes", "");
  ASSERT_TRUE(local_meta.ok());
  EXPECT_EQ(meta->name, "identity_bytes");
  EXPECT_EQ(meta->versions, local_meta->versions);
  EXPECT_EQ(meta->platform, local_meta->platform);
  ASSERT_EQ(meta->inputs.size(), 1u);
  EXPECT_EQ(meta->inputs[0].name, "INPUT0");
  EXPECT_EQ(meta->inputs[0].datatype, DataType::kBytes);
  EXPECT_EQ(meta->inputs[0].shape, local_meta->inputs[0].shape);
  ASSERT_EQ(meta->outputs.size(), 1u);
  EXPECT_EQ(meta->outputs[0].name, "OUTPUT0");
  EXPECT_TRUE(service->GetModelMetadata("identity_bytes", "1").ok());
  auto missing = service->GetModelMetadata("nope", "");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            service->endpoint() + ": " + engine_->GetModelMetadata("nope", "").status().message());

  auto config = service->GetModelConfig("gated", "");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto local_config = engine_->GetModelConfig("gated", "");
  ASSERT_TRUE(local_config.ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*config, *local_config))
      << config->DebugString() << "\nvs\n" << local_config->DebugString();
  EXPECT_EQ(service->GetModelConfig("nope", "").status().code(), StatusCode::kNotFound);

  EXPECT_TRUE(service->ModelReady("identity_fp32", ""));
  EXPECT_TRUE(service->ModelReady("identity_fp32", "1"));
  EXPECT_FALSE(service->ModelReady("identity_fp32", "7"));
  EXPECT_FALSE(service->ModelReady("nope", ""));

  auto index = service->Index();
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  auto local_index = engine_->Index();
  ASSERT_TRUE(local_index.ok());
  ASSERT_EQ(index->size(), local_index->size());
  for (size_t i = 0; i < index->size(); ++i) {
    EXPECT_EQ((*index)[i].name, (*local_index)[i].name);
    EXPECT_EQ((*index)[i].version, (*local_index)[i].version);
    EXPECT_EQ((*index)[i].state, (*local_index)[i].state);
  }

  const Tensor input = Sample(DataType::kInt8);
  ExpectIdentity(InferAndWait(*service, Request("identity_int8", input)), input, "identity_int8");
  auto stats = service->GetStatistics("identity_int8", "");
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].name, "identity_int8");
  EXPECT_EQ((*stats)[0].version, "1");
  EXPECT_EQ((*stats)[0].inference_count, 1u);
  EXPECT_EQ((*stats)[0].success.count, 1u);
  EXPECT_GT((*stats)[0].last_inference_ms, 0u);
  auto all = service->GetStatistics("", "");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->size(), engine_->GetStatistics("", "")->size());
  EXPECT_EQ(service->GetStatistics("nope", "").status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(service->Unload("identity_int8").ok());
  EXPECT_FALSE(service->ModelReady("identity_int8", ""));
  EXPECT_FALSE(InferAndWait(*service, Request("identity_int8", input)).ok());
  ASSERT_TRUE(service->Load("identity_int8").ok());
  EXPECT_TRUE(service->ModelReady("identity_int8", ""));
  Status bad = service->Load("nope");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), engine_->Load("nope").code());
}

TEST_F(HttpServiceTest, ModelNamesAreEscapedInTheUrl) {
  auto service = Service(Options());
  auto r = service->GetModelMetadata("a b/c?d", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("a b/c?d"), std::string::npos) << r.status().message();
}

// ---------------------------------------------------------------------------------------
// Against a scripted server: what a real one rarely does.

RemoteOptions RawOptions(const RawHttpServer& server, size_t connections = 1) {
  RemoteOptions o;
  o.port = server.port();
  o.connections = connections;
  o.shared_memory = false;
  return o;
}

std::string InferResponseBody() {
  // One FP32 output of 2 elements in binary after the JSON header.
  const std::string json =
      R"({"model_name":"m","model_version":"1","outputs":[{"name":"OUT","datatype":"FP32",)"
      R"("shape":[2],"parameters":{"binary_data_size":8}}]})";
  const float v[2] = {1.5f, -2.f};
  std::string body = json + std::string(reinterpret_cast<const char*>(v), sizeof(v));
  return "HTTP/1.1 200 OK\r\nInference-Header-Content-Length: " + std::to_string(json.size()) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(HttpServiceRawTest, ResponseCutShortIsUnavailableAndNotRetried) {
  RawHttpServer server([](const RawHttpServer::Request&) {
    return RawHttpServer::Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"outp", true};
  });
  HttpService service(RawOptions(server));
  auto r = InferAndWait(service, Request("m", Sample(DataType::kFp32)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "http://127.0.0.1:" + std::to_string(server.port()) +
                                      ": the server closed the connection in the middle of the "
                                      "response");
  EXPECT_EQ(server.requests(), 1);
}

TEST(HttpServiceRawTest, ClosedBeforeAnsweringOnAFreshConnectionIsNotRetried) {
  RawHttpServer server([](const RawHttpServer::Request&) { return RawHttpServer::Reply{"", true}; });
  HttpService service(RawOptions(server));
  auto r = InferAndWait(service, Request("m", Sample(DataType::kFp32)));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("before answering"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(server.requests(), 1);
}

TEST(HttpServiceRawTest, KeepAliveConnectionDyingBeforeAnsweringIsRetriedOnce) {
  std::atomic<int> n{0};
  RawHttpServer server([&](const RawHttpServer::Request&) {
    // First request answered (keep-alive); every later one: closed without a byte.
    return n++ == 0 ? RawHttpServer::Reply{InferResponseBody(), false}
                    : RawHttpServer::Reply{"", true};
  });
  HttpService service(RawOptions(server));
  ASSERT_TRUE(InferAndWait(service, Request("m", Sample(DataType::kFp32))).ok());
  auto r = InferAndWait(service, Request("m", Sample(DataType::kFp32)));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(server.requests(), 3);     // the first, the second, and its one retry
  EXPECT_EQ(server.connections(), 2);  // the retry went over a fresh connection
}

TEST(HttpServiceRawTest, ParsesBinaryOutputsAndChunkedBodies) {
  RawHttpServer server([](const RawHttpServer::Request& req) {
    if (req.target() == "/v2/models/m/infer") return RawHttpServer::Reply{InferResponseBody()};
    // Chunked server metadata.
    const std::string a = R"({"name":"raw","vers)";
    const std::string b = R"(ion":"9","extensions":[]})";
    auto hex = [](size_t n) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "%zx", n);
      return std::string(buf);
    };
    return RawHttpServer::Reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                hex(a.size()) + "\r\n" + a + "\r\n" + hex(b.size()) + "\r\n" +
                                b + "\r\n0\r\n\r\n"};
  });
  HttpService service(RawOptions(server));
  auto r = InferAndWait(service, Request("m", Sample(DataType::kFp32)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->outputs.size(), 1u);
  EXPECT_EQ(r->outputs[0].data_as<float>()[0], 1.5f);
  EXPECT_EQ(r->outputs[0].data_as<float>()[1], -2.f);
  auto m = service.GetServerMetadata();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->name, "raw");
  EXPECT_EQ(m->version, "9");
  // Infer uses the pool; a sync call a connection of its own (never queued behind Infers).
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpServiceRawTest, MalformedResponsesAreInternalNamingTheEndpoint) {
  RawHttpServer server([](const RawHttpServer::Request& req) {
    if (req.target() == "/v2") return RawHttpServer::Reply{RawHttpServer::Json(200, "[1,2")};
    return RawHttpServer::Reply{RawHttpServer::Json(200, R"({"outputs": 3})")};
  });
  HttpService service(RawOptions(server));
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(server.port());
  auto r = InferAndWait(service, Request("m", Sample(DataType::kFp32)));
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_EQ(r.status().message().rfind(endpoint + ": malformed inference response", 0), 0u)
      << r.status().message();
  auto m = service.GetServerMetadata();
  EXPECT_EQ(m.status().code(), StatusCode::kInternal);
  EXPECT_EQ(m.status().message().rfind(endpoint + ": ", 0), 0u) << m.status().message();
}

TEST(HttpServiceRawTest, ServerErrorsKeepCodeAndMessage) {
  RawHttpServer server([](const RawHttpServer::Request& req) {
    if (req.target() == "/v2/models/busy/infer") {
      return RawHttpServer::Reply{RawHttpServer::Json(503, R"({"error":"queue is full"})")};
    }
    if (req.target() == "/v2/models/gw/infer") {
      return RawHttpServer::Reply{"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nupstream 42"};
    }
    return RawHttpServer::Reply{"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"};
  });
  HttpService service(RawOptions(server));
  auto busy = InferAndWait(service, Request("busy", Sample(DataType::kFp32)));
  const std::string at = service.endpoint() + ": ";
  EXPECT_EQ(busy.status(), Status::Unavailable(at + "queue is full"));
  auto gw = InferAndWait(service, Request("gw", Sample(DataType::kFp32)));
  EXPECT_EQ(gw.status(), Status::Unavailable(at + "upstream 42"));
  auto other = InferAndWait(service, Request("x", Sample(DataType::kFp32)));
  EXPECT_EQ(other.status(), Status::Internal(at + "HTTP 500"));
}

TEST(HttpServiceRawTest, EarlyErrorAnswerBeforeTheBodyIsSentIsReported) {
  // Answers 413 as soon as the head arrives would need a raw socket; a server that reads
  // the body and closes after its error is the common shape: the error wins.
  RawHttpServer server([](const RawHttpServer::Request&) {
    return RawHttpServer::Reply{RawHttpServer::Json(413, R"({"error":"too big"})"), true};
  });
  HttpService service(RawOptions(server));
  auto r = InferAndWait(service, Request("m", Sample(DataType::kUint8, 1 << 20)));
  EXPECT_EQ(r.status(), Status::ResourceExhausted(service.endpoint() + ": too big"));
}

TEST(HttpServiceRawTest, RefusedRegistrationFallsBackToBinaryForGood) {
  std::atomic<int> registrations{0};
  std::atomic<int> shm_infers{0};
  RawHttpServer server([&](const RawHttpServer::Request& req) {
    const std::string target(req.target());
    if (target.find("/register") != std::string::npos) {
      ++registrations;
      return RawHttpServer::Reply{RawHttpServer::Json(
          400, R"({"error":"Unable to open shared memory region: '/x'"})")};
    }
    if (req.body().find("shared_memory_region") != std::string::npos) ++shm_infers;
    return RawHttpServer::Reply{InferResponseBody()};
  });
  RemoteOptions o = RawOptions(server);
  o.shared_memory = true;
  o.shared_memory_min_bytes = 16;
  HttpService service(o);
  EXPECT_TRUE(service.SharedMemoryActive());
  for (int i = 0; i < 3; ++i) {
    auto r = InferAndWait(service, Request("m", Sample(DataType::kFp32, 100)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  EXPECT_FALSE(service.SharedMemoryActive());
  EXPECT_EQ(registrations.load(), 1);
  EXPECT_EQ(shm_infers.load(), 0);
  EXPECT_EQ(service.SharedMemoryRegionCount(), 0u);
}

}  // namespace
}  // namespace quiver::client
