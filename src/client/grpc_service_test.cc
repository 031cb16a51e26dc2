#include "client/grpc_service.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "client/grpc_test_server.h"
#include "grpc_service.grpc.pb.h"

namespace quiver::client {
namespace {

using quiver::testing::CallbackCounter;
using quiver::testing::IdentityModelName;
using quiver::testing::InferAndWait;
using quiver::testing::kAllTypes;

// A few elements of `type` with varied bytes (BOOL: 0/1; BYTES: strings incl. empty and NUL).
Tensor Sample(DataType type, size_t n, std::string name = "INPUT0") {
  Tensor t;
  t.name = std::move(name);
  t.datatype = type;
  t.shape = {static_cast<int64_t>(n)};
  if (type == DataType::kBytes) {
    std::vector<std::string> s;
    for (size_t i = 0; i < n; ++i) {
      s.push_back(i % 3 == 0 ? std::string() : std::string("x\0y", 3) + std::to_string(i));
    }
    t.data = MakeBytesBuffer(s);
    return t;
  }
  const size_t size = DataTypeSize(type) * n;
  t.data = Buffer::Allocate(size);
  for (size_t i = 0; i < size; ++i) {
    t.data.mutable_data()[i] =
        static_cast<std::byte>(type == DataType::kBool ? (i % 3 == 1) : (i * 37 + 11) & 0xff);
  }
  return t;
}

InferRequest RequestFor(std::string model, Tensor input) {
  InferRequest r;
  r.model = std::move(model);
  r.inputs.push_back(std::move(input));
  return r;
}

bool SameBytes(const Buffer& a, const Buffer& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// A port nothing listens on (bound, then released).
uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class GrpcServiceTest : public test::GrpcServerFixture {};

TEST_F(GrpcServiceTest, EveryDatatypeRoundTripsInTheMessageAndThroughSharedMemory) {
  StartServer();
  RemoteOptions raw_options = Options();
  raw_options.shared_memory = false;
  RemoteOptions shm_options = Options();
  shm_options.shared_memory_min_bytes = 1;
  auto raw = Connect(raw_options);
  auto shm = Connect(shm_options);
  for (auto* service : {raw.get(), shm.get()}) {
    for (DataType type : kAllTypes) {
      SCOPED_TRACE(std::string(DataTypeName(type)) + (service == shm.get() ? " shm" : " raw"));
      Tensor input = Sample(type, 7);
      InferRequest request = RequestFor(IdentityModelName(type), input);
      request.id = "req-" + std::string(DataTypeName(type));
      auto result = InferAndWait(*service, std::move(request));
      ASSERT_TRUE(result.ok()) << result.status().ToString();
      EXPECT_EQ(result->model, IdentityModelName(type));
      EXPECT_EQ(result->id, "req-" + std::string(DataTypeName(type)));
      ASSERT_EQ(result->outputs.size(), 1u);
      const Tensor& out = result->outputs[0];
      EXPECT_EQ(out.name, "OUTPUT0");
      EXPECT_EQ(out.datatype, type);
      EXPECT_EQ(out.shape, input.shape);
      EXPECT_TRUE(SameBytes(out.data, input.data));
    }
  }
  EXPECT_EQ(raw->SharedMemoryInputs(), 0u);
  EXPECT_EQ(shm->SharedMemoryInputs(), kAllTypes.size());
  EXPECT_TRUE(shm->SharedMemoryActive());
  EXPECT_EQ(shm->SharedMemoryRegionCount(), 1u);  // sequential calls reuse one region
  EXPECT_EQ(ServerRegionCount(), 1u);
  shm.reset();
  EXPECT_EQ(ServerRegionCount(), 0u);  // the pool unregisters its regions
}

TEST_F(GrpcServiceTest, TwoInputsAndRequestedOutputs) {
  StartServer();
  RemoteOptions options = Options();
  options.shared_memory_min_bytes = 1024;  // INPUT0 via shm, INPUT1 in the message
  auto service = Connect(options);
  InferRequest request;
  request.model = "identity_pair";
  request.inputs.push_back(Sample(DataType::kFp32, 1000, "INPUT0"));
  request.inputs.push_back(Sample(DataType::kInt32, 3, "INPUT1"));
  request.requested_outputs = {"OUTPUT1"};
  const Buffer in1 = request.inputs[1].data;
  auto result = InferAndWait(*service, request);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->outputs.size(), 1u);
  EXPECT_EQ(result->outputs[0].name, "OUTPUT1");
  EXPECT_TRUE(SameBytes(result->outputs[0].data, in1));
  EXPECT_EQ(service->SharedMemoryInputs(), 1u);

  request.requested_outputs = {};
  result = InferAndWait(*service, request);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->outputs.size(), 2u);
  for (const Tensor& out : result->outputs) {
    const Tensor& in = out.name == "OUTPUT0" ? request.inputs[0] : request.inputs[1];
    EXPECT_TRUE(SameBytes(out.data, in.data)) << out.name;
  }
}

TEST_F(GrpcServiceTest, ThousandConcurrentRequestsAreAllAnsweredCorrectly) {
  StartServer();
  auto service = Connect(Options());
  constexpr int kCount = 1000;
  std::atomic<int> wrong{0};
  CallbackCounter counter;
  for (int i = 0; i < kCount; ++i) {
    const std::vector<int32_t> values = {i, -i, i * 7, 42};
    InferRequest request =
        RequestFor("identity_int32", MakeTensor<int32_t>("INPUT0", DataType::kInt32, {4}, values));
    request.id = std::to_string(i);
    service->Infer(std::move(request), [&, i](Result<InferResponse> r) {
      if (!r.ok() || r->id != std::to_string(i) || r->outputs.size() != 1 ||
          r->outputs[0].data.size() != 16 || r->outputs[0].data_as<int32_t>()[0] != i ||
          r->outputs[0].data_as<int32_t>()[2] != i * 7) {
        ++wrong;
      }
      counter.Add(std::move(r));
    });
  }
  counter.Wait(kCount);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(counter.count(), static_cast<size_t>(kCount));
}

TEST_F(GrpcServiceTest, SixteenMiBTensorsTravelInTheMessageAndThroughSharedMemory) {
  StartServer();
  RemoteOptions raw_options = Options();
  raw_options.shared_memory = false;
  auto raw = Connect(raw_options);
  auto shm = Connect(Options());
  const Tensor input = Sample(DataType::kFp32, (16u << 20) / 4 + 3);  // > 16 MiB
  for (auto* service : {raw.get(), shm.get()}) {
    auto result = InferAndWait(*service, RequestFor("identity_fp32", input));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    ASSERT_EQ(result->outputs.size(), 1u);
    EXPECT_EQ(result->outputs[0].shape, input.shape);
    EXPECT_TRUE(SameBytes(result->outputs[0].data, input.data));
  }
  EXPECT_EQ(raw->SharedMemoryInputs(), 0u);
  EXPECT_EQ(shm->SharedMemoryInputs(), 1u);
}

TEST_F(GrpcServiceTest, SharedMemoryRegionsAreReusedAcrossCalls) {
  StartServer();
  auto service = Connect(Options());  // default threshold 64 KiB
  constexpr int kTotal = 200;
  constexpr int kWindow = 8;
  const Tensor input = Sample(DataType::kFp32, 32 * 1024);  // 128 KiB
  std::atomic<int> wrong{0};
  CallbackCounter counter;
  std::atomic<int> started{0};
  // Closed loop: each answer starts the next request, kWindow in flight.
  std::function<void()> next = [&] {
    if (started.fetch_add(1) >= kTotal) return;
    service->Infer(RequestFor("identity_fp32", input), [&](Result<InferResponse> r) {
      if (!r.ok() || r->outputs.size() != 1 || !SameBytes(r->outputs[0].data, input.data)) {
        ++wrong;
      }
      next();  // before Add: once the last Add is seen, the test's locals go away
      counter.Add(std::move(r));
    });
  };
  for (int i = 0; i < kWindow; ++i) next();
  counter.Wait(kTotal);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(service->SharedMemoryInputs(), static_cast<uint64_t>(kTotal));
  EXPECT_GE(service->SharedMemoryRegionCount(), 1u);
  EXPECT_LE(service->SharedMemoryRegionCount(), static_cast<size_t>(kWindow));
  EXPECT_EQ(ServerRegionCount(), service->SharedMemoryRegionCount());
}

TEST_F(GrpcServiceTest, ForgottenRegionsAreReplacedAndTheCallResentInTheMessage) {
  StartServer();
  RemoteOptions options = Options();
  options.shared_memory_min_bytes = 1;
  auto service = Connect(options);
  const Tensor input = Sample(DataType::kInt64, 10);
  ASSERT_TRUE(InferAndWait(*service, RequestFor("identity_int64", input)).ok());
  ASSERT_EQ(ServerRegionCount(), 1u);
  ASSERT_TRUE(shm_.Unregister("").ok());  // as a restarted server: no regions known

  auto result = InferAndWait(*service, RequestFor("identity_int64", input));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(SameBytes(result->outputs[0].data, input.data));
  // The next call registers a region of a fresh pool.
  result = InferAndWait(*service, RequestFor("identity_int64", input));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(SameBytes(result->outputs[0].data, input.data));
  EXPECT_EQ(ServerRegionCount(), 1u);
  EXPECT_EQ(service->SharedMemoryInputs(), 3u);
  EXPECT_TRUE(service->SharedMemoryActive());
}

TEST_F(GrpcServiceTest, UnknownModelIsNotFoundWithTheServersMessage) {
  StartServer();
  auto service = Connect(Options());
  InferRequest request = RequestFor("no_such_model", Sample(DataType::kFp32, 2));
  auto direct = InferAndWait(*engine_, request);
  ASSERT_FALSE(direct.ok());
  auto result = InferAndWait(*service, request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(result.status().message(), service->endpoint() + ": " + direct.status().message());

  auto metadata = service->GetModelMetadata("no_such_model", "");
  ASSERT_FALSE(metadata.ok());
  EXPECT_EQ(metadata.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(metadata.status().message(),
            service->endpoint() + ": " +
                engine_->GetModelMetadata("no_such_model", "").status().message());
}

TEST_F(GrpcServiceTest, NoServerIsUnavailableNamingTheEndpoint) {
  RemoteOptions options;
  options.host = "127.0.0.1";
  options.port = FreePort();
  auto service = Connect(options);  // constructing does not connect
  const std::string endpoint = "grpc://127.0.0.1:" + std::to_string(options.port);
  auto result = InferAndWait(*service, RequestFor("identity_fp32", Sample(DataType::kFp32, 2)));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
  EXPECT_TRUE(result.status().message().starts_with(endpoint + ": ")) << result.status().message();
  EXPECT_FALSE(service->Live());
  EXPECT_FALSE(service->Ready());
  auto metadata = service->GetServerMetadata();
  ASSERT_FALSE(metadata.ok());
  EXPECT_EQ(metadata.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(metadata.status().message().starts_with(endpoint)) << metadata.status().message();
  EXPECT_EQ(service->Load("x").code(), StatusCode::kUnavailable);
}

TEST_F(GrpcServiceTest, RestartedServerIsFoundAgainWithinAboutASecond) {
  StartServer();
  RemoteOptions options = Options();
  options.shared_memory = false;
  auto service = Connect(options);
  const InferRequest request = RequestFor("identity_fp32", Sample(DataType::kFp32, 2));
  ASSERT_TRUE(InferAndWait(*service, request).ok());
  server_->Stop();
  EXPECT_EQ(InferAndWait(*service, request).status().code(), StatusCode::kUnavailable);

  frontend::GrpcServerOptions again;
  again.address = "127.0.0.1";
  again.port = port_;
  server_ = std::make_unique<frontend::GrpcServer>(*engine_, shm_, again);
  ASSERT_TRUE(server_->Start().ok());
  // Reconnection follows gRPC's backoff timer (capped at 1 s here): poll, bounded.
  const auto start = std::chrono::steady_clock::now();
  Result<InferResponse> result = Status::Unavailable("not tried");
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    result = InferAndWait(*service, request);
    if (result.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(GrpcServiceTest, DeadlinePassingIsDeadlineExceededNamingEndpointAndModel) {
  StartServer();
  auto service = Connect(Options());
  fake_->CloseGate();
  InferRequest request = RequestFor("gated", Sample(DataType::kInt32, 4));
  request.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  auto result = InferAndWait(*service, std::move(request));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded) << result.status().ToString();
  EXPECT_NE(result.status().message().find(service->endpoint()), std::string::npos)
      << result.status().message();
  EXPECT_NE(result.status().message().find("'gated'"), std::string::npos)
      << result.status().message();
  fake_->OpenGate();
  // A deadline already past fails the same way, at once.
  request = RequestFor("gated", Sample(DataType::kInt32, 4));
  request.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  result = InferAndWait(*service, std::move(request));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(GrpcServiceTest, ServerShutdownWithCallsInFlightAnswersEachCallOnce) {
  frontend::GrpcServerOptions server_options;
  server_options.shutdown_grace = std::chrono::milliseconds(0);
  StartServer(server_options);
  auto service = Connect(Options());
  fake_->CloseGate();
  constexpr int kCalls = 8;
  std::atomic<int> calls_per_slot[kCalls] = {};
  CallbackCounter counter;
  for (int i = 0; i < kCalls; ++i) {
    service->Infer(RequestFor("gated", Sample(DataType::kInt32, 4)),
                   [&, i](Result<InferResponse> r) {
                     ++calls_per_slot[i];
                     counter.Add(std::move(r));
                   });
  }
  fake_->WaitForBlocked(1);
  std::thread stopper([&] { server_->Stop(); });
  counter.Wait(kCalls);  // the server cancels what it cannot finish
  fake_->OpenGate();
  stopper.join();
  for (const auto& r : counter.results()) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
    EXPECT_TRUE(r.status().message().starts_with(service->endpoint())) << r.status().message();
  }
  for (auto& n : calls_per_slot) EXPECT_EQ(n.load(), 1);
  // Calls after the shutdown fail fast.
  auto after = InferAndWait(*service, RequestFor("identity_fp32", Sample(DataType::kFp32, 1)));
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(counter.count(), static_cast<size_t>(kCalls));
}

TEST_F(GrpcServiceTest, DestroyingTheServiceCancelsCallsAndRunsEachCallbackOnce) {
  StartServer();
  auto service = Connect(Options());
  fake_->CloseGate();
  constexpr int kCalls = 8;
  std::atomic<int> calls_per_slot[kCalls] = {};
  CallbackCounter counter;
  for (int i = 0; i < kCalls; ++i) {
    service->Infer(RequestFor("gated", Sample(DataType::kInt32, 4)),
                   [&, i](Result<InferResponse> r) {
                     ++calls_per_slot[i];
                     counter.Add(std::move(r));
                   });
  }
  fake_->WaitForBlocked(1);
  service.reset();  // returns once every callback has run
  EXPECT_EQ(counter.count(), static_cast<size_t>(kCalls));
  for (const auto& r : counter.results()) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kCancelled) << r.status().ToString();
  }
  for (auto& n : calls_per_slot) EXPECT_EQ(n.load(), 1);
  fake_->OpenGate();
}

TEST_F(GrpcServiceTest, DestroyingTheServiceFromItsOwnCallbackCancelsTheOthers) {
  StartServer();
  auto holder = std::make_shared<std::shared_ptr<GrpcService>>(Connect(Options()));
  GrpcService* service = holder->get();
  fake_->CloseGate();
  constexpr int kBlocked = 4;
  CallbackCounter counter;
  for (int i = 0; i < kBlocked; ++i) {
    service->Infer(RequestFor("gated", Sample(DataType::kInt32, 4)),
                   [&](Result<InferResponse> r) { counter.Add(std::move(r)); });
  }
  fake_->WaitForBlocked(1);
  std::atomic<bool> destroyed_inside{false};
  service->Infer(RequestFor("identity_fp32", Sample(DataType::kFp32, 1)),
                 [&, holder](Result<InferResponse> r) {
                   EXPECT_TRUE(r.ok()) << r.status().ToString();
                   holder->reset();  // the last reference: destroys the service here
                   destroyed_inside = true;
                   counter.Add(std::move(r));
                 });
  counter.Wait(kBlocked + 1);
  EXPECT_TRUE(destroyed_inside.load());
  size_t cancelled = 0;
  for (const auto& r : counter.results()) cancelled += r.status().code() == StatusCode::kCancelled;
  EXPECT_EQ(cancelled, static_cast<size_t>(kBlocked));
  fake_->OpenGate();
}

TEST_F(GrpcServiceTest, SyncMethodsMatchTheEngine) {
  StartServer();
  auto service = Connect(Options());
  EXPECT_TRUE(service->Live());
  EXPECT_TRUE(service->Ready());
  auto server = service->GetServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_EQ(server->name, engine_->GetServerMetadata()->name);
  EXPECT_NE(std::find(server->extensions.begin(), server->extensions.end(), "system_shared_memory"),
            server->extensions.end());

  auto metadata = service->GetModelMetadata("identity_bytes", "");
  ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
  EXPECT_EQ(metadata->name, "identity_bytes");
  ASSERT_EQ(metadata->inputs.size(), 1u);
  EXPECT_EQ(metadata->inputs[0].datatype, DataType::kBytes);
  EXPECT_EQ(metadata->inputs[0].shape, (Shape{-1}));
  EXPECT_EQ(metadata->versions, (std::vector<std::string>{"1"}));

  auto config = service->GetModelConfig("identity_pair", "1");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name(), "identity_pair");
  EXPECT_EQ(config->input_size(), 2);
  EXPECT_EQ(config->backend(), "identity");
  EXPECT_EQ(service->GetModelConfig("nope", "").status().code(), StatusCode::kNotFound);

  EXPECT_TRUE(service->ModelReady("identity_fp32", ""));
  EXPECT_TRUE(service->ModelReady("identity_fp32", "1"));
  EXPECT_FALSE(service->ModelReady("identity_fp32", "9"));
  EXPECT_FALSE(service->ModelReady("nope", ""));

  auto index = service->Index();
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ(index->size(), engine_->Index()->size());

  ASSERT_TRUE(InferAndWait(*service, RequestFor("identity_fp32", Sample(DataType::kFp32, 3))).ok());
  auto stats = service->GetStatistics("identity_fp32", "");
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].name, "identity_fp32");
  EXPECT_EQ((*stats)[0].success.count, 1u);
  auto all = service->GetStatistics("", "");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), engine_->GetStatistics("", "")->size());

  ASSERT_TRUE(service->Unload("identity_fp32").ok());
  EXPECT_FALSE(service->ModelReady("identity_fp32", ""));
  auto gone = InferAndWait(*service, RequestFor("identity_fp32", Sample(DataType::kFp32, 1)));
  EXPECT_FALSE(gone.ok());
  ASSERT_TRUE(service->Load("identity_fp32").ok());
  EXPECT_TRUE(service->ModelReady("identity_fp32", ""));
  EXPECT_EQ(service->Load("nope").code(), engine_->Load("nope").code());
}

TEST_F(GrpcServiceTest, MessageLimitIsEnforcedWithResourceExhausted) {
  StartServer();
  RemoteOptions options = Options();
  options.shared_memory = false;
  options.max_message_bytes = 1 << 20;
  auto service = Connect(options);
  auto result = InferAndWait(*service, RequestFor("identity_fp32", Sample(DataType::kFp32, 1 << 19)));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kResourceExhausted) << result.status().ToString();
}

// ---- Against a stub server: what quiver serve never does -------------------------------

// Echoes raw inputs (or answers a malformed response) and refuses shared memory.
class StubServer final : public inference::GRPCInferenceService::CallbackService {
 public:
  std::atomic<bool> malformed{false};
  std::atomic<int> register_calls{0};
  std::mutex mutex;
  std::set<std::string> peers;  // guarded by mutex: client address:port of each ModelInfer

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    {
      std::lock_guard lock(mutex);
      peers.insert(context->peer());
    }
    auto* reactor = context->DefaultReactor();
    response->set_model_name(request->model_name());
    for (int i = 0; i < request->inputs_size(); ++i) {
      if (request->inputs(i).parameters().contains("shared_memory_region")) {
        reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no shm here"));
        return reactor;
      }
      auto* out = response->add_outputs();
      out->set_name("OUTPUT0");
      out->set_datatype(request->inputs(i).datatype());
      *out->mutable_shape() = request->inputs(i).shape();
      *response->add_raw_output_contents() =
          malformed ? std::string("12345") : request->raw_input_contents(i);
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(
      grpc::CallbackServerContext* context, const inference::SystemSharedMemoryRegisterRequest*,
      inference::SystemSharedMemoryRegisterResponse*) override {
    ++register_calls;
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no shared memory"));
    return reactor;
  }
};

class GrpcServiceStubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&stub_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override { server_->Shutdown(); }

  RemoteOptions Options() const {
    RemoteOptions o;
    o.port = static_cast<uint16_t>(port_);
    o.shared_memory_min_bytes = 1;
    return o;
  }

  StubServer stub_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(GrpcServiceStubTest, FailedRegistrationTurnsSharedMemoryOffForGood) {
  auto service = std::make_shared<GrpcService>(Options());
  EXPECT_TRUE(service->SharedMemoryActive());
  const Tensor input = Sample(DataType::kFp32, 100);
  for (int i = 0; i < 3; ++i) {
    auto result = InferAndWait(*service, RequestFor("m", input));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_TRUE(SameBytes(result->outputs[0].data, input.data));
  }
  EXPECT_FALSE(service->SharedMemoryActive());
  EXPECT_EQ(service->SharedMemoryInputs(), 0u);
  EXPECT_EQ(stub_.register_calls.load(), 1);
}

TEST_F(GrpcServiceStubTest, ChannelsAreSeparateConnectionsUsedRoundRobin) {
  RemoteOptions options = Options();
  options.connections = 3;
  auto service = std::make_shared<GrpcService>(options);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(InferAndWait(*service, RequestFor("m", Sample(DataType::kFp32, 1))).ok());
  }
  std::lock_guard lock(stub_.mutex);
  EXPECT_EQ(stub_.peers.size(), 3u);  // three client ports: three TCP connections
}

TEST_F(GrpcServiceStubTest, MalformedResponseIsInternalNamingTheEndpoint) {
  RemoteOptions options = Options();
  options.shared_memory = false;
  auto service = std::make_shared<GrpcService>(options);
  stub_.malformed = true;
  auto result = InferAndWait(*service, RequestFor("m", Sample(DataType::kFp32, 100)));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInternal);
  EXPECT_TRUE(result.status().message().starts_with(service->endpoint()))
      << result.status().message();
}

TEST(GrpcServiceFactoryTest, MakeGrpcServiceConstructsWithoutConnecting) {
  RemoteOptions options;
  options.port = FreePort();
  auto service = MakeGrpcService(options);
  ASSERT_NE(service, nullptr);
  EXPECT_FALSE(service->Live());
}

}  // namespace
}  // namespace quiver::client
