#include "frontend/grpc_server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "engine/engine.h"
#include "grpc_service.grpc.pb.h"
#include "health.grpc.pb.h"
#include "testing/engine_fixture.h"
#include "testing/fake_inference_service.h"
#include "testing/infer_helpers.h"

namespace quiver::frontend {
namespace {

using inference::GRPCInferenceService;
using InferRequestMsg = inference::ModelInferRequest;
using InferResponseMsg = inference::ModelInferResponse;

using quiver::testing::IdentityModelName;
using quiver::testing::kAllTypes;

// A typed-contents message and the raw bytes of the same three elements.
struct Sample {
  std::function<void(inference::InferTensorContents&)> fill;
  std::string raw;
};

template <typename T>
std::string RawOf(std::initializer_list<T> values) {
  std::vector<T> v(values);
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

Sample SampleFor(const std::string& datatype) {
  if (datatype == "BOOL")
    return {[](auto& c) {
              c.add_bool_contents(true);
              c.add_bool_contents(false);
              c.add_bool_contents(true);
            },
            RawOf<uint8_t>({1, 0, 1})};
  if (datatype == "UINT8")
    return {[](auto& c) {
              c.add_uint_contents(0);
              c.add_uint_contents(200);
              c.add_uint_contents(255);
            },
            RawOf<uint8_t>({0, 200, 255})};
  if (datatype == "UINT16")
    return {[](auto& c) {
              c.add_uint_contents(1);
              c.add_uint_contents(60000);
              c.add_uint_contents(7);
            },
            RawOf<uint16_t>({1, 60000, 7})};
  if (datatype == "UINT32")
    return {[](auto& c) {
              c.add_uint_contents(1);
              c.add_uint_contents(4000000000u);
              c.add_uint_contents(7);
            },
            RawOf<uint32_t>({1, 4000000000u, 7})};
  if (datatype == "UINT64")
    return {[](auto& c) {
              c.add_uint64_contents(1);
              c.add_uint64_contents(uint64_t{1} << 60);
              c.add_uint64_contents(7);
            },
            RawOf<uint64_t>({1, uint64_t{1} << 60, 7})};
  if (datatype == "INT8")
    return {[](auto& c) {
              c.add_int_contents(-128);
              c.add_int_contents(0);
              c.add_int_contents(127);
            },
            RawOf<int8_t>({-128, 0, 127})};
  if (datatype == "INT16")
    return {[](auto& c) {
              c.add_int_contents(-30000);
              c.add_int_contents(0);
              c.add_int_contents(30000);
            },
            RawOf<int16_t>({-30000, 0, 30000})};
  if (datatype == "INT32")
    return {[](auto& c) {
              c.add_int_contents(-5);
              c.add_int_contents(0);
              c.add_int_contents(1 << 30);
            },
            RawOf<int32_t>({-5, 0, 1 << 30})};
  if (datatype == "INT64")
    return {[](auto& c) {
              c.add_int64_contents(-5);
              c.add_int64_contents(int64_t{1} << 50);
              c.add_int64_contents(3);
            },
            RawOf<int64_t>({-5, int64_t{1} << 50, 3})};
  if (datatype == "FP32")
    return {[](auto& c) {
              c.add_fp32_contents(1.5f);
              c.add_fp32_contents(-0.25f);
              c.add_fp32_contents(1e20f);
            },
            RawOf<float>({1.5f, -0.25f, 1e20f})};
  if (datatype == "FP64")
    return {[](auto& c) {
              c.add_fp64_contents(0.1);
              c.add_fp64_contents(-1e200);
              c.add_fp64_contents(3.0);
            },
            RawOf<double>({0.1, -1e200, 3.0})};
  if (datatype == "BYTES")
    return {[](auto& c) {
              c.add_bytes_contents("hello");
              c.add_bytes_contents("");
              c.add_bytes_contents(std::string("a\0b", 3));
            },
            std::string("\x05\x00\x00\x00"
                        "hello"
                        "\x00\x00\x00\x00"
                        "\x03\x00\x00\x00"
                        "a\0b",
                        4 + 5 + 4 + 4 + 3)};
  // FP16 / BF16: raw only (three 16-bit patterns).
  return {nullptr, RawOf<uint16_t>({0x3c00, 0x0000, 0xc000})};
}

InferRequestMsg OneInput(const std::string& model, const std::string& datatype,
                         std::vector<int64_t> shape, const std::string& id = "") {
  InferRequestMsg r;
  r.set_model_name(model);
  r.set_id(id);
  auto* in = r.add_inputs();
  in->set_name("INPUT0");
  in->set_datatype(datatype);
  for (int64_t d : shape) in->add_shape(d);
  return r;
}

// An InferenceService whose GetModelMetadata blocks until the test opens it (a gateway
// waiting for a model to load does this); everything else is delegated.
class BlockingMetadataService final : public InferenceService {
 public:
  explicit BlockingMetadataService(InferenceService& inner) : inner_(inner) {}

  void Open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  void WaitForBlocked() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return blocked_; });
  }

  bool Live() const override { return inner_.Live(); }
  bool Ready() const override { return inner_.Ready(); }
  Result<ServerMetadata> GetServerMetadata() const override { return inner_.GetServerMetadata(); }
  Result<ModelMetadata> GetModelMetadata(std::string_view m, std::string_view v) const override {
    std::unique_lock<std::mutex> lock(mutex_);
    blocked_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    return inner_.GetModelMetadata(m, v);
  }
  Result<ModelConfig> GetModelConfig(std::string_view m, std::string_view v) const override {
    return inner_.GetModelConfig(m, v);
  }
  bool ModelReady(std::string_view m, std::string_view v) const override {
    return inner_.ModelReady(m, v);
  }
  void Infer(InferRequest request, InferCallback done) override {
    inner_.Infer(std::move(request), std::move(done));
  }
  Result<RepositoryIndex> Index() override { return inner_.Index(); }
  Status Load(std::string_view m) override { return inner_.Load(m); }
  Status Unload(std::string_view m) override { return inner_.Unload(m); }
  Result<std::vector<ModelStatistics>> GetStatistics(std::string_view m,
                                                     std::string_view v) const override {
    return inner_.GetStatistics(m, v);
  }

 private:
  InferenceService& inner_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  mutable bool blocked_ = false;  // guarded by mutex_
  bool open_ = false;             // guarded by mutex_
};

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = quiver::testing::TestEngineBuilder("grpc")
                     .WithIdentityModels(quiver::testing::kAllTypes)
                     .WithIdentityPairModel()
                     .Build();
    ASSERT_TRUE(engine_);
  }

  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    gated_.reset();
    engine_.reset();
  }

  // Starts a server on an ephemeral port over the engine (or `service`) and connects.
  void StartServer(InferenceService* service = nullptr, GrpcServerOptions options = {}) {
    options.port = 0;
    server_ = std::make_unique<GrpcServer>(service ? *service : *engine_, shm_, options);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_GT(server_->port(), 0);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    channel_ =
        grpc::CreateCustomChannel(server_->target(), grpc::InsecureChannelCredentials(), args);
    stub_ = GRPCInferenceService::NewStub(channel_);
  }

  grpc::Status Infer(const InferRequestMsg& request, InferResponseMsg& response) {
    grpc::ClientContext ctx;
    return stub_->ModelInfer(&ctx, request, &response);
  }

  quiver::testing::TestEngine engine_;
  // Holds every Infer until the test releases it (by id: requests read from one stream may
  // reach the service in any order), then runs it on engine_.
  std::unique_ptr<quiver::testing::FakeInferenceService> gated_;
  SharedMemoryManager shm_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

TEST_F(GrpcServerTest, HealthAndServerMetadata) {
  StartServer();
  grpc::ClientContext c1, c2, c3, c4;
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(&c1, {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(&c2, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  inference::ServerMetadataResponse meta;
  ASSERT_TRUE(stub_->ServerMetadata(&c3, {}, &meta).ok());
  EXPECT_FALSE(meta.name().empty());
  EXPECT_FALSE(meta.version().empty());
  std::set<std::string> ext(meta.extensions().begin(), meta.extensions().end());
  EXPECT_TRUE(ext.count("system_shared_memory"));
  EXPECT_TRUE(ext.count("model_repository"));

  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckResponse hc;
  ASSERT_TRUE(health->Check(&c4, {}, &hc).ok());
  EXPECT_EQ(hc.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(GrpcServerTest, ModelReadyMetadataAndConfig) {
  StartServer();
  {
    grpc::ClientContext ctx;
    inference::ModelReadyRequest req;
    req.set_name("identity_fp32");
    inference::ModelReadyResponse resp;
    ASSERT_TRUE(stub_->ModelReady(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.ready());
  }
  {
    grpc::ClientContext ctx;
    inference::ModelReadyRequest req;
    req.set_name("no_such_model");
    inference::ModelReadyResponse resp;
    ASSERT_TRUE(stub_->ModelReady(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.ready());
  }
  {
    grpc::ClientContext ctx;
    inference::ModelMetadataRequest req;
    req.set_name("identity_bytes");
    inference::ModelMetadataResponse resp;
    ASSERT_TRUE(stub_->ModelMetadata(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.name(), "identity_bytes");
    ASSERT_EQ(resp.inputs_size(), 1);
    EXPECT_EQ(resp.inputs(0).name(), "INPUT0");
    EXPECT_EQ(resp.inputs(0).datatype(), "BYTES");
    EXPECT_EQ(resp.inputs(0).shape(0), -1);
    EXPECT_EQ(resp.versions(0), "1");
  }
  {
    grpc::ClientContext ctx;
    inference::ModelMetadataRequest req;
    req.set_name("no_such_model");
    inference::ModelMetadataResponse resp;
    EXPECT_EQ(stub_->ModelMetadata(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    inference::ModelConfigRequest req;
    req.set_name("identity_pair");
    inference::ModelConfigResponse resp;
    ASSERT_TRUE(stub_->ModelConfig(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.config().name(), "identity_pair");
    EXPECT_EQ(resp.config().input_size(), 2);
  }
  {
    grpc::ClientContext ctx;
    inference::ModelConfigRequest req;
    req.set_name("no_such_model");
    inference::ModelConfigResponse resp;
    EXPECT_EQ(stub_->ModelConfig(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(GrpcServerTest, RawAndTypedContentsGiveTheSameOutputForEveryType) {
  StartServer();
  for (DataType type : kAllTypes) {
    const std::string datatype(DataTypeName(type));
    SCOPED_TRACE(datatype);
    const Sample sample = SampleFor(datatype);

    InferRequestMsg raw = OneInput(IdentityModelName(type), datatype, {3}, "raw");
    raw.add_raw_input_contents(sample.raw);
    InferResponseMsg raw_out;
    grpc::Status s = Infer(raw, raw_out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(raw_out.outputs_size(), 1);
    EXPECT_EQ(raw_out.id(), "raw");
    EXPECT_EQ(raw_out.model_name(), IdentityModelName(type));
    EXPECT_EQ(raw_out.model_version(), "1");
    EXPECT_EQ(raw_out.outputs(0).name(), "OUTPUT0");
    EXPECT_EQ(raw_out.outputs(0).datatype(), datatype);
    ASSERT_EQ(raw_out.outputs(0).shape_size(), 1);
    EXPECT_EQ(raw_out.outputs(0).shape(0), 3);
    ASSERT_EQ(raw_out.raw_output_contents_size(), 1);
    EXPECT_EQ(raw_out.raw_output_contents(0), sample.raw);

    InferRequestMsg typed = OneInput(IdentityModelName(type), datatype, {3}, "typed");
    if (sample.fill) {
      sample.fill(*typed.mutable_inputs(0)->mutable_contents());
      InferResponseMsg typed_out;
      s = Infer(typed, typed_out);
      ASSERT_TRUE(s.ok()) << s.error_message();
      EXPECT_EQ(typed_out.outputs(0).datatype(), datatype);
      ASSERT_EQ(typed_out.raw_output_contents_size(), 1);
      EXPECT_EQ(typed_out.raw_output_contents(0), raw_out.raw_output_contents(0));
    } else {
      // FP16/BF16 have no typed field: sending one is a clear error.
      typed.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
      InferResponseMsg typed_out;
      s = Infer(typed, typed_out);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_NE(s.error_message().find("INPUT0"), std::string::npos);
    }
  }
}

TEST_F(GrpcServerTest, SixteenMegabyteTensorRoundTrips) {
  StartServer();
  const size_t count = 4u << 20;  // 4 Mi floats = 16 MiB, beyond gRPC's 4 MB default
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = static_cast<float>(i % 1000) * 0.5f;
  InferRequestMsg r = OneInput("identity_fp32", "FP32", {static_cast<int64_t>(count)});
  r.add_raw_input_contents(
      std::string(reinterpret_cast<const char*>(values.data()), count * sizeof(float)));
  InferResponseMsg out;
  grpc::Status s = Infer(r, out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(out.raw_output_contents_size(), 1);
  ASSERT_EQ(out.raw_output_contents(0).size(), count * sizeof(float));
  EXPECT_EQ(out.raw_output_contents(0), r.raw_input_contents(0));
}

// A 4 MiB output is sent straight from the output Buffer: the normal protobuf parser reads
// it byte-exact on the client (Triton's layout: raw_output_contents aligned with outputs),
// and the server holds the Buffer itself (no copy) past the handler until gRPC has sent it.
// The client asks for the response only after the handler has finished, and with BDP
// probing off its stream window stays at 64 KiB, so the send cannot have completed then
// (a copy would have let the Buffer go with the handler's response): no race decides this.
TEST_F(GrpcServerTest, LargeOutputIsSentFromItsBufferWithoutACopy) {
  // The fake holds the request; the test answers it on this thread with an echo whose
  // output lives in memory it watches.
  gated_ = std::make_unique<quiver::testing::FakeInferenceService>(
      quiver::testing::FakeInferenceService::Mode::kHold);
  StartServer(gated_.get());
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 * 1024);
  auto stub = GRPCInferenceService::NewStub(
      grpc::CreateCustomChannel(server_->target(), grpc::InsecureChannelCredentials(), args));

  const size_t count = 1u << 20;  // 1 Mi floats = 4 MiB
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = static_cast<float>(i % 4099) * 0.25f;
  InferRequestMsg r = OneInput("identity_fp32", "FP32", {static_cast<int64_t>(count)}, "big");
  r.add_raw_input_contents(
      std::string(reinterpret_cast<const char*>(values.data()), count * sizeof(float)));
  // The async client's I/O runs while a thread polls its queue. ReadInitialMetadata sends
  // the request; the response message is asked for (Finish) only once the handler has
  // finished the RPC.
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub->PrepareAsyncModelInfer(&ctx, r, &cq);
  reader->StartCall();
  int metadata_tag = 0;
  int tag = 1;
  reader->ReadInitialMetadata(&metadata_tag);
  std::vector<void*> tags;
  std::thread poller([&] {
    void* got = nullptr;
    bool ok = false;
    while (cq.Next(&got, &ok)) tags.push_back(ok ? got : nullptr);
  });

  // Shared with the Buffer's deleter, which may run on a server thread after this test.
  auto released = std::make_shared<std::atomic<bool>>(false);
  // No fatal assertion before the poller is joined.
  const bool held_after_finish = [&] {
    std::vector<quiver::testing::FakeInferenceService::Held> held = gated_->TakeHeld(1);
    EXPECT_EQ(held.size(), 1u);
    if (held.empty()) return false;
    InferResponse response = quiver::testing::FakeInferenceService::Echo(held[0].request);
    Buffer& data = response.outputs.at(0).data;
    auto owner = std::shared_ptr<std::vector<std::byte>>(
        new std::vector<std::byte>(data.bytes().begin(), data.bytes().end()),
        [released](std::vector<std::byte>* v) {
          delete v;
          released->store(true);
        });
    std::byte* const start = owner->data();
    const size_t size = owner->size();
    data = Buffer::Borrow(start, size, std::move(owner));
    held[0].done(std::move(response));  // Finishes the RPC
    return !released->load();
  }();

  InferResponseMsg out;
  grpc::Status s;
  reader->Finish(&out, &s, &tag);
  cq.Shutdown();  // Next drains the Finish before it reports the shutdown
  poller.join();
  // A copy would have let the Buffer go with the handler's response.
  EXPECT_TRUE(held_after_finish);
  std::sort(tags.begin(), tags.end());
  std::vector<void*> expected{&metadata_tag, &tag};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(tags, expected);  // both completed (gRPC does not promise their order)
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.id(), "big");
  ASSERT_EQ(out.outputs_size(), 1);
  EXPECT_EQ(out.outputs(0).name(), "OUTPUT0");
  EXPECT_EQ(out.outputs(0).datatype(), "FP32");
  ASSERT_EQ(out.outputs(0).shape_size(), 1);
  EXPECT_EQ(out.outputs(0).shape(0), static_cast<int64_t>(count));
  ASSERT_EQ(out.raw_output_contents_size(), 1);
  EXPECT_EQ(out.raw_output_contents(0), r.raw_input_contents(0));

  server_->Stop();
  EXPECT_TRUE(released->load());
}

TEST_F(GrpcServerTest, StreamAnswersEveryRequestOnceInOrder) {
  StartServer();
  grpc::ClientContext ctx;
  auto stream = stub_->ModelStreamInfer(&ctx);
  constexpr int kRequests = 300;
  std::vector<inference::ModelStreamInferResponse> answers;
  std::thread reader([&] {
    inference::ModelStreamInferResponse msg;
    while (stream->Read(&msg)) answers.push_back(msg);
  });
  for (int i = 0; i < kRequests; ++i) {
    InferRequestMsg r = OneInput("identity_int32", "INT32", {1}, "id-" + std::to_string(i));
    r.add_raw_input_contents(RawOf<int32_t>({i}));
    ASSERT_TRUE(stream->Write(r));
  }
  stream->WritesDone();
  reader.join();
  grpc::Status s = stream->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(answers.size(), static_cast<size_t>(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    const auto& a = answers[static_cast<size_t>(i)];
    EXPECT_TRUE(a.error_message().empty()) << a.error_message();
    EXPECT_EQ(a.infer_response().id(), "id-" + std::to_string(i));
    EXPECT_EQ(a.infer_response().raw_output_contents(0), RawOf<int32_t>({i}));
  }
}

TEST_F(GrpcServerTest, StreamReportsErrorsWithTheRequestId) {
  StartServer();
  grpc::ClientContext ctx;
  auto stream = stub_->ModelStreamInfer(&ctx);
  InferRequestMsg good = OneInput("identity_fp32", "FP32", {1}, "good");
  good.add_raw_input_contents(RawOf<float>({1.0f}));
  InferRequestMsg bad_shape = OneInput("identity_fp32", "FP32", {2}, "bad-shape");
  bad_shape.add_raw_input_contents(RawOf<float>({1.0f}));
  InferRequestMsg unknown = OneInput("no_such_model", "FP32", {1}, "unknown");
  unknown.add_raw_input_contents(RawOf<float>({1.0f}));
  ASSERT_TRUE(stream->Write(good));
  ASSERT_TRUE(stream->Write(bad_shape));
  ASSERT_TRUE(stream->Write(unknown));
  ASSERT_TRUE(stream->Write(good));
  stream->WritesDone();
  std::vector<inference::ModelStreamInferResponse> answers;
  inference::ModelStreamInferResponse msg;
  while (stream->Read(&msg)) answers.push_back(msg);
  ASSERT_TRUE(stream->Finish().ok());
  ASSERT_EQ(answers.size(), 4u);
  EXPECT_TRUE(answers[0].error_message().empty());
  EXPECT_NE(answers[1].error_message().find("INPUT0"), std::string::npos);
  EXPECT_EQ(answers[1].infer_response().id(), "bad-shape");
  EXPECT_FALSE(answers[2].error_message().empty());
  EXPECT_EQ(answers[2].infer_response().id(), "unknown");
  EXPECT_TRUE(answers[3].error_message().empty());
}

// With held requests released in reverse, the stream answers in request order by
// default, and in completion order when asked to.
TEST_F(GrpcServerTest, StreamOrderFollowsTheOption) {
  for (bool ordered : {true, false}) {
    SCOPED_TRACE(ordered ? "ordered" : "completion order");
    gated_ = std::make_unique<quiver::testing::FakeInferenceService>(*engine_);
    GrpcServerOptions options;
    options.ordered_stream_responses = ordered;
    StartServer(gated_.get(), options);

    grpc::ClientContext ctx;
    auto stream = stub_->ModelStreamInfer(&ctx);
    for (int i = 0; i < 2; ++i) {
      InferRequestMsg r = OneInput("identity_fp32", "FP32", {1}, "r" + std::to_string(i));
      r.add_raw_input_contents(RawOf<float>({static_cast<float>(i)}));
      ASSERT_TRUE(stream->Write(r));
    }
    gated_->WaitForHeld(2);
    ASSERT_TRUE(gated_->Release("r1"));
    inference::ModelStreamInferResponse first;
    if (!ordered) {
      // The second request's answer comes first, before the first is even released.
      ASSERT_TRUE(stream->Read(&first));
      EXPECT_EQ(first.infer_response().id(), "r1");
      ASSERT_TRUE(gated_->Release("r0"));
    } else {
      ASSERT_TRUE(gated_->Release("r0"));
      ASSERT_TRUE(stream->Read(&first));
      EXPECT_EQ(first.infer_response().id(), "r0");
    }
    inference::ModelStreamInferResponse second;
    ASSERT_TRUE(stream->Read(&second));
    EXPECT_EQ(second.infer_response().id(), ordered ? "r1" : "r0");
    stream->WritesDone();
    EXPECT_FALSE(stream->Read(&second));
    EXPECT_TRUE(stream->Finish().ok());
    server_->Stop();
    server_.reset();
  }
}

TEST_F(GrpcServerTest, SharedMemoryInputAndOutput) {
  StartServer();
  const std::string key = "/quiver-grpc-test-" + std::to_string(::getpid());
  const size_t size = 64;
  int fd = ::shm_open(key.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(base, MAP_FAILED);
  auto* bytes = static_cast<unsigned char*>(base);
  const float input[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  std::memcpy(bytes, input, sizeof(input));
  std::memset(bytes + 32, 0, 32);

  {
    grpc::ClientContext ctx;
    inference::SystemSharedMemoryRegisterRequest req;
    req.set_name("data");
    req.set_key(key);
    req.set_offset(0);
    req.set_byte_size(size);
    inference::SystemSharedMemoryRegisterResponse resp;
    grpc::Status s = stub_->SystemSharedMemoryRegister(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    inference::SystemSharedMemoryStatusResponse resp;
    ASSERT_TRUE(stub_->SystemSharedMemoryStatus(&ctx, {}, &resp).ok());
    ASSERT_EQ(resp.regions().count("data"), 1u);
    EXPECT_EQ(resp.regions().at("data").key(), key);
    EXPECT_EQ(resp.regions().at("data").byte_size(), size);
  }

  // INPUT0 from shared memory, INPUT1 raw; OUTPUT0 into shared memory, OUTPUT1 raw.
  InferRequestMsg r;
  r.set_model_name("identity_pair");
  auto* in0 = r.add_inputs();
  in0->set_name("INPUT0");
  in0->set_datatype("FP32");
  in0->add_shape(4);
  auto& p0 = *in0->mutable_parameters();
  p0["shared_memory_region"].set_string_param("data");
  p0["shared_memory_offset"].set_int64_param(0);
  p0["shared_memory_byte_size"].set_int64_param(16);
  auto* in1 = r.add_inputs();
  in1->set_name("INPUT1");
  in1->set_datatype("INT32");
  in1->add_shape(2);
  r.add_raw_input_contents(RawOf<int32_t>({7, 8}));
  auto* out0 = r.add_outputs();
  out0->set_name("OUTPUT0");
  auto& q0 = *out0->mutable_parameters();
  q0["shared_memory_region"].set_string_param("data");
  q0["shared_memory_offset"].set_int64_param(32);
  q0["shared_memory_byte_size"].set_int64_param(32);
  r.add_outputs()->set_name("OUTPUT1");

  InferResponseMsg out;
  grpc::Status s = Infer(r, out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(out.outputs_size(), 2);
  ASSERT_EQ(out.raw_output_contents_size(), 2);
  EXPECT_EQ(out.outputs(0).name(), "OUTPUT0");
  EXPECT_TRUE(out.raw_output_contents(0).empty());
  EXPECT_EQ(out.outputs(0).parameters().at("shared_memory_byte_size").int64_param(), 16);
  EXPECT_EQ(out.raw_output_contents(1), RawOf<int32_t>({7, 8}));
  EXPECT_EQ(std::memcmp(bytes + 32, input, sizeof(input)), 0);

  // An unknown region is reported, naming the tensor.
  (*r.mutable_inputs(0)->mutable_parameters())["shared_memory_region"].set_string_param("nope");
  InferResponseMsg bad;
  s = Infer(r, bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("INPUT0"), std::string::npos);

  {
    grpc::ClientContext ctx;
    inference::SystemSharedMemoryUnregisterRequest req;
    req.set_name("data");
    inference::SystemSharedMemoryUnregisterResponse resp;
    ASSERT_TRUE(stub_->SystemSharedMemoryUnregister(&ctx, req, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    inference::SystemSharedMemoryStatusResponse resp;
    ASSERT_TRUE(stub_->SystemSharedMemoryStatus(&ctx, {}, &resp).ok());
    EXPECT_TRUE(resp.regions().empty());
  }
  ::munmap(base, size);
  ::shm_unlink(key.c_str());
}

// No CUDA here: as a Triton built without GPU support (status empty, unregister succeeds,
// register refused as INVALID_ARGUMENT naming the region).
TEST_F(GrpcServerTest, CudaSharedMemoryAnswersAsTritonWithoutGpus) {
  StartServer();
  {
    grpc::ClientContext ctx;
    inference::CudaSharedMemoryStatusResponse resp;
    grpc::Status s = stub_->CudaSharedMemoryStatus(&ctx, {}, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(resp.regions().empty());
  }
  {
    grpc::ClientContext ctx;
    inference::CudaSharedMemoryStatusRequest req;
    req.set_name("r");
    inference::CudaSharedMemoryStatusResponse resp;
    grpc::Status s = stub_->CudaSharedMemoryStatus(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(s.error_message(), "Unable to find cuda shared memory region: 'r'");
  }
  {
    grpc::ClientContext ctx;
    inference::CudaSharedMemoryRegisterRequest req;
    req.set_name("r");
    req.set_byte_size(64);
    inference::CudaSharedMemoryRegisterResponse resp;
    grpc::Status s = stub_->CudaSharedMemoryRegister(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(),
              "failed to register CUDA shared memory region: 'r', GPUs not supported");
  }
  {
    grpc::ClientContext ctx;
    inference::CudaSharedMemoryUnregisterResponse resp;
    EXPECT_TRUE(stub_->CudaSharedMemoryUnregister(&ctx, {}, &resp).ok());
  }
}

TEST_F(GrpcServerTest, MalformedRequestsAreRejectedClearly) {
  StartServer();
  InferResponseMsg out;
  {
    InferRequestMsg r = OneInput("no_such_model", "FP32", {1});
    r.add_raw_input_contents(RawOf<float>({1.0f}));
    EXPECT_EQ(Infer(r, out).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    // Typed contents whose count does not match the shape.
    InferRequestMsg r = OneInput("identity_fp32", "FP32", {3});
    r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
    grpc::Status s = Infer(r, out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("INPUT0"), std::string::npos) << s.error_message();
  }
  {
    // Raw bytes that do not match the shape.
    InferRequestMsg r = OneInput("identity_fp32", "FP32", {3});
    r.add_raw_input_contents(RawOf<float>({1.0f, 2.0f}));
    grpc::Status s = Infer(r, out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("INPUT0"), std::string::npos) << s.error_message();
  }
  {
    // More raw entries than inputs.
    InferRequestMsg r = OneInput("identity_fp32", "FP32", {1});
    r.add_raw_input_contents(RawOf<float>({1.0f}));
    r.add_raw_input_contents(RawOf<float>({2.0f}));
    grpc::Status s = Infer(r, out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("raw_input_contents"), std::string::npos);
  }
  {
    // Fewer raw entries than inputs.
    InferRequestMsg r = OneInput("identity_pair", "FP32", {1});
    auto* in1 = r.add_inputs();
    in1->set_name("INPUT1");
    in1->set_datatype("INT32");
    in1->add_shape(1);
    r.add_raw_input_contents(RawOf<float>({1.0f}));
    grpc::Status s = Infer(r, out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("INPUT1"), std::string::npos) << s.error_message();
  }
  {
    InferRequestMsg r = OneInput("identity_fp32", "FLOAT32", {1});
    r.add_raw_input_contents(RawOf<float>({1.0f}));
    grpc::Status s = Infer(r, out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("FLOAT32"), std::string::npos);
  }
  {
    // The model's datatype differs from the request's (caught by the engine).
    InferRequestMsg r = OneInput("identity_fp32", "INT32", {1});
    r.add_raw_input_contents(RawOf<int32_t>({1}));
    grpc::Status s = Infer(r, out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("INPUT0"), std::string::npos) << s.error_message();
  }
}

TEST_F(GrpcServerTest, StatisticsCountInferences) {
  StartServer();
  for (int i = 0; i < 3; ++i) {
    InferRequestMsg r = OneInput("identity_fp32", "FP32", {2});
    r.add_raw_input_contents(RawOf<float>({1.0f, 2.0f}));
    InferResponseMsg out;
    ASSERT_TRUE(Infer(r, out).ok());
  }
  {
    grpc::ClientContext ctx;
    inference::ModelStatisticsRequest req;
    req.set_name("identity_fp32");
    inference::ModelStatisticsResponse resp;
    ASSERT_TRUE(stub_->ModelStatistics(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.model_stats_size(), 1);
    const auto& s = resp.model_stats(0);
    EXPECT_EQ(s.name(), "identity_fp32");
    EXPECT_EQ(s.version(), "1");
    EXPECT_EQ(s.inference_stats().success().count(), 3u);
    EXPECT_GT(s.last_inference(), 0u);
  }
  {
    grpc::ClientContext ctx;
    inference::ModelStatisticsResponse resp;
    ASSERT_TRUE(stub_->ModelStatistics(&ctx, {}, &resp).ok());
    EXPECT_EQ(resp.model_stats_size(), static_cast<int>(kAllTypes.size()) + 1);
  }
  {
    grpc::ClientContext ctx;
    inference::ModelStatisticsRequest req;
    req.set_name("no_such_model");
    inference::ModelStatisticsResponse resp;
    EXPECT_EQ(stub_->ModelStatistics(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(GrpcServerTest, RepositoryIndexLoadAndUnload) {
  StartServer();
  auto index = [&](bool ready_only) {
    grpc::ClientContext ctx;
    inference::RepositoryIndexRequest req;
    req.set_ready(ready_only);
    inference::RepositoryIndexResponse resp;
    EXPECT_TRUE(stub_->RepositoryIndex(&ctx, req, &resp).ok());
    std::map<std::string, std::string> states;
    for (const auto& m : resp.models()) states[m.name()] = m.state();
    return states;
  };
  auto ready = [&] {
    grpc::ClientContext ctx;
    inference::ModelReadyRequest req;
    req.set_name("identity_fp32");
    inference::ModelReadyResponse resp;
    EXPECT_TRUE(stub_->ModelReady(&ctx, req, &resp).ok());
    return resp.ready();
  };
  EXPECT_EQ(index(false).at("identity_fp32"), "READY");

  {
    grpc::ClientContext ctx;
    inference::RepositoryModelUnloadRequest req;
    req.set_model_name("identity_fp32");
    inference::RepositoryModelUnloadResponse resp;
    grpc::Status s = stub_->RepositoryModelUnload(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_FALSE(ready());
  EXPECT_EQ(index(true).count("identity_fp32"), 0u);
  EXPECT_EQ(index(false).count("identity_fp32"), 1u);
  for (const char* name : {"identity_fp32", "no_such_model"}) {
    // As Triton: unloading what is not loaded succeeds.
    grpc::ClientContext ctx;
    inference::RepositoryModelUnloadRequest req;
    req.set_model_name(name);
    inference::RepositoryModelUnloadResponse resp;
    grpc::Status s = stub_->RepositoryModelUnload(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << name << ": " << s.error_message();
  }

  {
    grpc::ClientContext ctx;
    inference::RepositoryModelLoadRequest req;
    req.set_model_name("identity_fp32");
    inference::RepositoryModelLoadResponse resp;
    grpc::Status s = stub_->RepositoryModelLoad(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_TRUE(ready());
  {
    grpc::ClientContext ctx;
    inference::RepositoryModelLoadRequest req;
    req.set_model_name("no_such_model");
    inference::RepositoryModelLoadResponse resp;
    EXPECT_FALSE(stub_->RepositoryModelLoad(&ctx, req, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    inference::RepositoryModelLoadRequest req;
    req.set_model_name("identity_fp32");
    (*req.mutable_parameters())["config"].set_string_param("{}");
    inference::RepositoryModelLoadResponse resp;
    EXPECT_EQ(stub_->RepositoryModelLoad(&ctx, req, &resp).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
}

// Stop lets a request that is already running finish, then refuses new calls.
TEST_F(GrpcServerTest, StopFinishesInFlightRequests) {
  gated_ = std::make_unique<quiver::testing::FakeInferenceService>(*engine_);
  StartServer(gated_.get());
  InferRequestMsg r = OneInput("identity_fp32", "FP32", {1}, "in-flight");
  r.add_raw_input_contents(RawOf<float>({5.0f}));
  InferResponseMsg out;
  grpc::Status status;
  std::thread client([&] { status = Infer(r, out); });
  gated_->WaitForHeld(1);
  std::thread stopper([&] { server_->Stop(); });
  ASSERT_TRUE(gated_->Release("in-flight"));
  stopper.join();
  client.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(out.id(), "in-flight");
  EXPECT_EQ(out.raw_output_contents(0), RawOf<float>({5.0f}));

  // The decoded input borrowed the request message's bytes; holding the tensor keeps
  // them valid after the RPC is over (a sanitizer build checks the access).
  auto requests = gated_->requests();
  ASSERT_EQ(requests.size(), 1u);
  ASSERT_EQ(requests[0].inputs[0].data.size(), sizeof(float));
  EXPECT_EQ(requests[0].inputs[0].data_as<float>()[0], 5.0f);

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  inference::ServerLiveResponse live;
  EXPECT_FALSE(stub_->ServerLive(&ctx, {}, &live).ok());
}

// A stream the client never closes does not keep Stop waiting beyond the grace period.
TEST_F(GrpcServerTest, StopEndsStreamsLeftOpen) {
  GrpcServerOptions options;
  options.shutdown_grace = std::chrono::milliseconds(50);
  StartServer(nullptr, options);
  grpc::ClientContext ctx;
  auto stream = stub_->ModelStreamInfer(&ctx);
  InferRequestMsg r = OneInput("identity_fp32", "FP32", {1}, "open");
  r.add_raw_input_contents(RawOf<float>({1.0f}));
  ASSERT_TRUE(stream->Write(r));
  inference::ModelStreamInferResponse answer;
  ASSERT_TRUE(stream->Read(&answer));
  EXPECT_EQ(answer.infer_response().id(), "open");
  server_->Stop();
  EXPECT_FALSE(stream->Read(&answer));
  EXPECT_FALSE(stream->Finish().ok());
}

// Several completion-queue threads: connections are spread over their queues, and every
// unary call and stream is answered once, correctly, whichever thread runs it.
TEST_F(GrpcServerTest, SeveralQueueThreadsAnswerEveryConnection) {
  GrpcServerOptions options;
  options.threads = 3;
  StartServer(nullptr, options);
  constexpr int kClients = 6;
  constexpr int kCalls = 20;
  auto StreamId = [](int i) { return std::string("s").append(std::to_string(i)); };
  std::vector<std::thread> clients;
  std::atomic<int> correct{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt("quiver.test.connection", c);  // a channel (connection) of its own
      auto stub = GRPCInferenceService::NewStub(
          grpc::CreateCustomChannel(server_->target(), grpc::InsecureChannelCredentials(), args));
      for (int i = 0; i < kCalls; ++i) {
        const float value = static_cast<float>(c * 1000 + i);
        InferRequestMsg r = OneInput("identity_fp32", "FP32", {1}, std::to_string(i));
        r.add_raw_input_contents(RawOf<float>({value}));
        InferResponseMsg out;
        grpc::ClientContext ctx;
        if (stub->ModelInfer(&ctx, r, &out).ok() && out.id() == std::to_string(i) &&
            out.raw_output_contents(0) == RawOf<float>({value})) {
          ++correct;
        }
      }
      grpc::ClientContext ctx;
      auto stream = stub->ModelStreamInfer(&ctx);
      for (int i = 0; i < kCalls; ++i) {
        InferRequestMsg r = OneInput("identity_fp32", "FP32", {1}, StreamId(i));
        r.add_raw_input_contents(RawOf<float>({static_cast<float>(i)}));
        stream->Write(r);
      }
      stream->WritesDone();
      inference::ModelStreamInferResponse answer;
      for (int i = 0; stream->Read(&answer); ++i) {
        if (answer.error_message().empty() && answer.infer_response().id() == StreamId(i)) {
          ++correct;
        }
      }
      if (stream->Finish().ok()) ++correct;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(correct.load(), kClients * (2 * kCalls + 1));
}

// A call that blocks in the service (metadata while a gateway waits for a model) does not
// hold the server's only queue thread: inference and health go on meanwhile.
TEST_F(GrpcServerTest, BlockedMetadataDoesNotHoldTheQueueThread) {
  BlockingMetadataService blocking(*engine_);
  GrpcServerOptions options;
  options.threads = 1;
  StartServer(&blocking, options);
  inference::ModelMetadataResponse metadata;
  grpc::Status metadata_status;
  std::thread waiting([&] {
    grpc::ClientContext ctx;
    inference::ModelMetadataRequest request;
    request.set_name("identity_fp32");
    metadata_status = stub_->ModelMetadata(&ctx, request, &metadata);
  });
  blocking.WaitForBlocked();
  InferRequestMsg r = OneInput("identity_fp32", "FP32", {1}, "meanwhile");
  r.add_raw_input_contents(RawOf<float>({3.0f}));
  InferResponseMsg out;
  ASSERT_TRUE(Infer(r, out).ok());
  EXPECT_EQ(out.raw_output_contents(0), RawOf<float>({3.0f}));
  blocking.Open();
  waiting.join();
  ASSERT_TRUE(metadata_status.ok()) << metadata_status.error_message();
  EXPECT_EQ(metadata.name(), "identity_fp32");
}

TEST_F(GrpcServerTest, SecondServerOnTheSamePortFailsToStart) {
  StartServer();
  GrpcServerOptions options;
  options.port = server_->port();
  GrpcServer second(*engine_, shm_, options);
  Status s = second.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  // A failed server cannot be started again (its service stays bound to the failed one).
  EXPECT_EQ(second.Start().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(server_->Start().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quiver::frontend
