#pragma once
// Test support for the gRPC client: an in-process `quiver serve` (GrpcServer over an
// Engine) on 127.0.0.1 port 0, with a temporary repository holding an identity model for
// every datatype (identity_<type>), a two-input identity (identity_pair) and `gated`, a
// FakeBackend model whose executions block while the test keeps the gate closed.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/grpc_service.h"
#include "frontend/grpc_server.h"
#include "frontend/shared_memory.h"
#include "testing/engine_fixture.h"
#include "testing/fake_backend.h"
#include "testing/infer_helpers.h"

namespace quiver::client::test {

class GrpcServerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = quiver::testing::TestEngineBuilder("grpc-client")
                     .WithIdentityModels(quiver::testing::kAllTypes)
                     .WithIdentityPairModel()
                     .WithFakeModel("gated", fake_,
                                    "max_batch_size: 0\n" +
                                    quiver::testing::IoConfig("TYPE_INT32"))
                     .Build();
    ASSERT_TRUE(engine_);
  }

  void TearDown() override {
    fake_->OpenGate();
    if (server_) server_->Stop();
    server_.reset();
    engine_.reset();
  }

  void StartServer(frontend::GrpcServerOptions options = {}) {
    options.address = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<frontend::GrpcServer>(*engine_, shm_, options);
    ASSERT_TRUE(server_->Start().ok());
    port_ = static_cast<uint16_t>(server_->port());
  }

  RemoteOptions Options() const {
    RemoteOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    return o;
  }

  std::shared_ptr<GrpcService> Connect(const RemoteOptions& options) {
    return std::make_shared<GrpcService>(options);
  }

  size_t ServerRegionCount() const {
    auto regions = shm_.Regions("");
    return regions.ok() ? regions->size() : 0;
  }

  std::shared_ptr<quiver::testing::FakeBackend> fake_ =
      std::make_shared<quiver::testing::FakeBackend>();
  quiver::testing::TestEngine engine_;
  frontend::SharedMemoryManager shm_;
  std::unique_ptr<frontend::GrpcServer> server_;
  uint16_t port_ = 0;
};

}  // namespace quiver::client::test
