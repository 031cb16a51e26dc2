// Bearer-token authentication of the gRPC frontend (the gateway's tenants): `authorization`
// metadata, UNAUTHENTICATED, and the tenant on unary and streamed inferences.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "frontend/grpc_server.h"
#include "grpc_service.grpc.pb.h"
#include "health.grpc.pb.h"
#include "testing/fake_inference_service.h"

namespace quiver::frontend {
namespace {

using inference::GRPCInferenceService;

inference::ModelInferRequest Request(const std::string& id) {
  inference::ModelInferRequest r;
  r.set_model_name("m");
  r.set_id(id);
  auto* in = r.add_inputs();
  in->set_name("X");
  in->set_datatype("INT8");
  in->add_shape(2);
  r.add_raw_input_contents(std::string("\x01\x02", 2));
  return r;
}

class GrpcAuthTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) server_->Stop();
  }
  void Start(bool auth) {
    GrpcServerOptions o;
    o.port = 0;
    if (auth) {
      o.authenticator = [this](std::string_view token) -> Result<std::string> {
        ++auth_calls_;
        if (token.empty()) return Status(StatusCode::kUnauthenticated, "missing bearer token");
        if (token == "alice-token") return std::string("alice");
        return Status(StatusCode::kUnauthenticated, "unknown token");
      };
    }
    server_ = std::make_unique<GrpcServer>(service_, shm_, o);
    ASSERT_TRUE(server_->Start().ok());
    channel_ = grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
    stub_ = GRPCInferenceService::NewStub(channel_);
  }
  // A context carrying `authorization` metadata unless `value` is empty.
  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& value) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!value.empty()) ctx->AddMetadata("authorization", value);
    return ctx;
  }

  quiver::testing::FakeInferenceService service_;  // echoes, inline
  SharedMemoryManager shm_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
  std::atomic<int> auth_calls_{0};
};

TEST_F(GrpcAuthTest, HealthNeedsNoToken) {
  Start(true);
  inference::ServerLiveResponse live;
  EXPECT_TRUE(stub_->ServerLive(Ctx("").get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  EXPECT_TRUE(stub_->ServerReady(Ctx("").get(), {}, &ready).ok());
  grpc::health::v1::HealthCheckResponse hc;
  EXPECT_TRUE(grpc::health::v1::Health::NewStub(channel_)->Check(Ctx("").get(), {}, &hc).ok());
  EXPECT_EQ(auth_calls_.load(), 0);
}

TEST_F(GrpcAuthTest, OtherRpcsAreUnauthenticatedWithoutAGoodToken) {
  Start(true);
  for (const std::string header : {"", "Bearer wrong-token-123", "Basic abc"}) {
    inference::ServerMetadataResponse meta;
    grpc::Status s = stub_->ServerMetadata(Ctx(header).get(), {}, &meta);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << header;
    EXPECT_EQ(s.error_message().find("wrong-token-123"), std::string::npos);
    inference::ModelReadyRequest mr;
    mr.set_name("m");
    inference::ModelReadyResponse mr_out;
    EXPECT_EQ(stub_->ModelReady(Ctx(header).get(), mr, &mr_out).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    inference::RepositoryIndexResponse index;
    EXPECT_EQ(stub_->RepositoryIndex(Ctx(header).get(), {}, &index).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    inference::SystemSharedMemoryStatusResponse shm;
    EXPECT_EQ(stub_->SystemSharedMemoryStatus(Ctx(header).get(), {}, &shm).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    inference::ModelInferResponse out;
    grpc::Status infer = stub_->ModelInfer(Ctx(header).get(), Request("x"), &out);
    EXPECT_EQ(infer.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(infer.error_message(),
              header == "Bearer wrong-token-123" ? "unknown token" : "missing bearer token");
  }
  EXPECT_EQ(service_.calls(), 0);
  inference::ServerMetadataResponse meta;
  EXPECT_TRUE(stub_->ServerMetadata(Ctx("Bearer alice-token").get(), {}, &meta).ok());
}

TEST_F(GrpcAuthTest, UnaryInferCarriesTheTenant) {
  Start(true);
  inference::ModelInferResponse out;
  grpc::Status s = stub_->ModelInfer(Ctx("Bearer alice-token").get(), Request("a"), &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.id(), "a");
  auto requests = service_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].tenant, "alice");
}

TEST_F(GrpcAuthTest, StreamCarriesTheTenantOnEveryRequest) {
  Start(true);
  auto ctx = Ctx("Bearer alice-token");
  auto stream = stub_->ModelStreamInfer(ctx.get());
  ASSERT_TRUE(stream->Write(Request("s1")));
  ASSERT_TRUE(stream->Write(Request("s2")));
  stream->WritesDone();
  inference::ModelStreamInferResponse msg;
  int answers = 0;
  while (stream->Read(&msg)) {
    EXPECT_TRUE(msg.error_message().empty()) << msg.error_message();
    ++answers;
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(answers, 2);
  auto requests = service_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].tenant, "alice");
  EXPECT_EQ(requests[1].tenant, "alice");
}

TEST_F(GrpcAuthTest, StreamWithoutATokenIsRefusedAtOnce) {
  Start(true);
  auto ctx = Ctx("Bearer nope");
  auto stream = stub_->ModelStreamInfer(ctx.get());
  stream->Write(Request("s1"));  // may fail: the server has finished the call
  stream->WritesDone();
  inference::ModelStreamInferResponse msg;
  EXPECT_FALSE(stream->Read(&msg));
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "unknown token");
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(GrpcAuthTest, AuthOffNeedsNoTokenAndTenantIsEmpty) {
  Start(false);
  inference::ModelInferResponse out;
  ASSERT_TRUE(stub_->ModelInfer(Ctx("").get(), Request("a"), &out).ok());
  ASSERT_TRUE(stub_->ModelInfer(Ctx("Bearer alice-token").get(), Request("b"), &out).ok());
  auto requests = service_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].tenant, "");
  EXPECT_EQ(requests[1].tenant, "");
}

}  // namespace
}  // namespace quiver::frontend
