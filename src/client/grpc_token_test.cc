// The gRPC transport's bearer token (RemoteOptions::token): metadata `authorization:
// Bearer <token>` on every call (inference, sync calls, shared-memory registration), none
// without a token, never in an error message. Against a stand-in GRPCInferenceService that
// records the metadata it receives; the frontends' own authentication is not involved.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/grpc_service.h"
#include "grpc_service.grpc.pb.h"
#include "testing/infer_helpers.h"

namespace quiver::client {
namespace {

using quiver::testing::InferAndWait;

// What the server saw of one call.
struct Seen {
  std::string method;
  size_t authorization_entries = 0;
  std::string authorization;  // the first one's value
};

// Every RPC the transport uses succeeds (inference answers one FP32 element); with
// `refuse`, every one fails with UNAUTHENTICATED instead.
class RecordingService final : public inference::GRPCInferenceService::Service {
 public:
  explicit RecordingService(bool refuse = false) : refuse_(refuse) {}

  std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

  grpc::Status ServerLive(grpc::ServerContext* c, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* r) override {
    r->set_live(true);
    return Record("ServerLive", c);
  }
  grpc::Status ServerMetadata(grpc::ServerContext* c, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* r) override {
    r->set_name("recording");
    return Record("ServerMetadata", c);
  }
  grpc::Status ModelReady(grpc::ServerContext* c, const inference::ModelReadyRequest*,
                          inference::ModelReadyResponse* r) override {
    r->set_ready(true);
    return Record("ModelReady", c);
  }
  grpc::Status RepositoryIndex(grpc::ServerContext* c, const inference::RepositoryIndexRequest*,
                               inference::RepositoryIndexResponse*) override {
    return Record("RepositoryIndex", c);
  }
  grpc::Status RepositoryModelLoad(grpc::ServerContext* c,
                                   const inference::RepositoryModelLoadRequest*,
                                   inference::RepositoryModelLoadResponse*) override {
    return Record("RepositoryModelLoad", c);
  }
  grpc::Status SystemSharedMemoryRegister(grpc::ServerContext* c,
                                          const inference::SystemSharedMemoryRegisterRequest*,
                                          inference::SystemSharedMemoryRegisterResponse*) override {
    return Record("SystemSharedMemoryRegister", c);
  }
  grpc::Status SystemSharedMemoryUnregister(
      grpc::ServerContext* c, const inference::SystemSharedMemoryUnregisterRequest*,
      inference::SystemSharedMemoryUnregisterResponse*) override {
    return Record("SystemSharedMemoryUnregister", c);
  }
  grpc::Status ModelInfer(grpc::ServerContext* c, const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* r) override {
    r->set_model_name(request->model_name());
    auto* out = r->add_outputs();
    out->set_name("OUT");
    out->set_datatype("FP32");
    out->add_shape(1);
    const float v = 1.5f;
    r->add_raw_output_contents(std::string(reinterpret_cast<const char*>(&v), sizeof v));
    return Record("ModelInfer", c);
  }

 private:
  grpc::Status Record(const char* method, grpc::ServerContext* context) {
    Seen s;
    s.method = method;
    const auto& metadata = context->client_metadata();
    s.authorization_entries = metadata.count("authorization");
    auto it = metadata.find("authorization");
    if (it != metadata.end()) s.authorization.assign(it->second.data(), it->second.size());
    {
      std::lock_guard lock(mutex_);
      seen_.push_back(std::move(s));
    }
    if (refuse_) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no valid token given");
    return grpc::Status::OK;
  }

  const bool refuse_;
  std::mutex mutex_;
  std::vector<Seen> seen_;  // guarded by mutex_
};

// `service` served on 127.0.0.1, an ephemeral port.
class RecordingServer {
 public:
  explicit RecordingServer(bool refuse = false) : service_(refuse) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~RecordingServer() { server_->Shutdown(); }

  uint16_t port() const { return static_cast<uint16_t>(port_); }
  std::vector<Seen> seen() { return service_.seen(); }

 private:
  RecordingService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

RemoteOptions OptionsFor(const RecordingServer& server, std::string token) {
  RemoteOptions o;
  o.port = server.port();
  o.token = std::move(token);
  o.shared_memory = true;  // 127.0.0.1: registration goes to the server too
  o.shared_memory_min_bytes = 16;
  return o;
}

InferRequest Floats(size_t n) {
  InferRequest r;
  r.model = "m";
  std::vector<float> v(n, 1.f);
  r.inputs.push_back(MakeTensor<float>("INPUT0", DataType::kFp32, {static_cast<int64_t>(n)}, v));
  return r;
}

// Every kind of call the transport makes, once; then the service is destroyed (which
// unregisters the shared-memory region).
void UseEverything(const RemoteOptions& options) {
  GrpcService service(options);
  EXPECT_TRUE(service.Live());
  EXPECT_TRUE(service.ModelReady("m", ""));
  EXPECT_TRUE(service.GetServerMetadata().ok());
  EXPECT_TRUE(service.Index().ok());
  EXPECT_TRUE(service.Load("m").ok());
  auto in_message = InferAndWait(service, Floats(1));
  EXPECT_TRUE(in_message.ok()) << in_message.status().ToString();
  auto in_shm = InferAndWait(service, Floats(64));
  EXPECT_TRUE(in_shm.ok()) << in_shm.status().ToString();
  EXPECT_EQ(service.SharedMemoryInputs(), 1u);
}

size_t Count(const std::vector<Seen>& seen, std::string_view method) {
  size_t n = 0;
  for (const Seen& s : seen) n += s.method == method;
  return n;
}

TEST(GrpcTokenTest, EveryCallCarriesTheBearerToken) {
  RecordingServer server;
  UseEverything(OptionsFor(server, "s3cret-T0ken.x"));
  const std::vector<Seen> seen = server.seen();
  for (const char* method :
       {"ServerLive", "ModelReady", "ServerMetadata", "RepositoryIndex", "RepositoryModelLoad",
        "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister"}) {
    EXPECT_EQ(Count(seen, method), 1u) << method;
  }
  EXPECT_EQ(Count(seen, "ModelInfer"), 2u);
  for (const Seen& s : seen) {
    EXPECT_EQ(s.authorization_entries, 1u) << s.method;
    EXPECT_EQ(s.authorization, "Bearer s3cret-T0ken.x") << s.method;
  }
}

TEST(GrpcTokenTest, NoTokenSendsNoAuthorizationMetadata) {
  RecordingServer server;
  UseEverything(OptionsFor(server, ""));
  const std::vector<Seen> seen = server.seen();
  EXPECT_EQ(Count(seen, "ModelInfer"), 2u);
  for (const Seen& s : seen) EXPECT_EQ(s.authorization_entries, 0u) << s.method;
}

TEST(GrpcTokenTest, RefusalIsUnauthenticatedWithoutTheToken) {
  RecordingServer server(/*refuse=*/true);
  GrpcService service(OptionsFor(server, "s3cret"));
  auto r = InferAndWait(service, Floats(1));
  ASSERT_EQ(r.status().code(), StatusCode::kUnauthenticated) << r.status().ToString();
  EXPECT_EQ(r.status().message(), service.endpoint() + ": no valid token given");
  auto metadata = service.GetServerMetadata();
  ASSERT_EQ(metadata.status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(metadata.status().message().starts_with(service.endpoint()));
  EXPECT_EQ(metadata.status().message().find("s3cret"), std::string::npos);
}

TEST(GrpcTokenTest, ATokenThatCannotBeMetadataFailsEveryCallWithoutSendingIt) {
  RecordingServer server;
  GrpcService service(OptionsFor(server, "s3cret token"));
  auto r = InferAndWait(service, Floats(1));
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(r.status().message().starts_with(service.endpoint())) << r.status().message();
  EXPECT_EQ(r.status().message().find("s3cret"), std::string::npos) << r.status().message();
  EXPECT_FALSE(service.Live());
  EXPECT_TRUE(server.seen().empty());
}

}  // namespace
}  // namespace quiver::client
