#pragma once
// Test support for the gRPC client: an in-process `quiver serve` (GrpcServer over an
// Engine) on 127.0.0.1 port 0, with a temporary repository holding an identity model for
// every datatype (identity_<type>), a two-input identity (identity_pair) and `gated`, a
// FakeBackend model whose executions block while the test keeps the gate closed.

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "client/grpc_service.h"
#include "engine/backends/identity_backend.h"
#include "engine/engine.h"
#include "engine/testing/fake_backend.h"
#include "engine/testing/temp_repository.h"
#include "frontend/grpc_server.h"
#include "frontend/shared_memory.h"

namespace quiver::client::test {

// Every KServe datatype.
inline const std::vector<DataType> kAllTypes = {
    DataType::kBool, DataType::kUint8, DataType::kUint16, DataType::kUint32, DataType::kUint64,
    DataType::kInt8, DataType::kInt16, DataType::kInt32,  DataType::kInt64,  DataType::kFp16,
    DataType::kBf16, DataType::kFp32,  DataType::kFp64,   DataType::kBytes,
};

inline std::string IdentityModelFor(DataType type) {
  std::string name = "identity_";
  for (char c : DataTypeName(type)) {
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

// Calls Infer and waits for its one result.
inline Result<InferResponse> InferSync(InferenceService& service, InferRequest request) {
  std::promise<Result<InferResponse>> promise;
  auto future = promise.get_future();
  service.Infer(std::move(request),
                [&promise](Result<InferResponse> r) { promise.set_value(std::move(r)); });
  return future.get();
}

// Counts callbacks; Wait blocks until `n` have arrived (no sleeps).
class CallbackCounter {
 public:
  void Add(Result<InferResponse> r) {
    std::lock_guard lock(mutex_);
    results_.push_back(std::move(r));
    cv_.notify_all();
  }
  void Wait(size_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return results_.size() >= n; });
  }
  std::vector<Result<InferResponse>> results() {
    std::lock_guard lock(mutex_);
    return results_;
  }
  size_t count() {
    std::lock_guard lock(mutex_);
    return results_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Result<InferResponse>> results_;
};

class GrpcServerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    for (DataType type : kAllTypes) {
      const std::string name = IdentityModelFor(type);
      const std::string config_type(DataTypeConfigName(type));
      repo_.WriteModel(
          name, "name: \"" + name + "\"\nbackend: \"identity\"\nmax_batch_size: 0\n" +
                    "input { name: \"INPUT0\" data_type: " + config_type + " dims: [ -1 ] }\n" +
                    "output { name: \"OUTPUT0\" data_type: " + config_type + " dims: [ -1 ] }\n");
    }
    repo_.WriteModel("identity_pair",
                     "name: \"identity_pair\"\nbackend: \"identity\"\nmax_batch_size: 0\n"
                     "input { name: \"INPUT0\" data_type: TYPE_FP32 dims: [ -1 ] }\n"
                     "input { name: \"INPUT1\" data_type: TYPE_INT32 dims: [ -1 ] }\n"
                     "output { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ -1 ] }\n"
                     "output { name: \"OUTPUT1\" data_type: TYPE_INT32 dims: [ -1 ] }\n");
    repo_.WriteModel("gated",
                     "name: \"gated\"\nbackend: \"fake\"\nmax_batch_size: 0\n"
                     "input { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ -1 ] }\n"
                     "output { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ -1 ] }\n");

    auto registry = std::make_shared<engine::BackendRegistry>();
    registry->Register("identity", std::make_shared<engine::IdentityBackend>());
    registry->Register("fake", fake_);
    engine::EngineOptions o;
    o.model_repositories = {repo_.path()};
    o.control_mode = engine::ModelControlMode::kExplicit;
    o.startup_models = {"*"};
    o.poll_interval = std::chrono::milliseconds(0);
    o.backends = registry;
    auto e = engine::Engine::Create(std::move(o));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
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

  quiver::testing::TempRepository repo_{"grpc-client"};  // outlives engine_
  std::shared_ptr<engine::FakeBackend> fake_ = std::make_shared<engine::FakeBackend>();
  std::unique_ptr<engine::Engine> engine_;
  frontend::SharedMemoryManager shm_;
  std::unique_ptr<frontend::GrpcServer> server_;
  uint16_t port_ = 0;
};

}  // namespace quiver::client::test
