#pragma once
// Shared fixtures of the HTTP frontend tests: a temporary model repository of identity
// models (one per datatype), an Engine serving it, an HttpServer on an ephemeral port, and
// POSIX shared-memory objects that unlink themselves.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstring>
#include <memory>
#include <string>

#include "engine/backends/identity_backend.h"
#include "engine/engine.h"
#include "engine/testing/temp_repository.h"
#include "frontend/http_server.h"
#include "frontend/http_test_client.h"
#include "frontend/shared_memory.h"

namespace quiver::frontend::testing {

// A POSIX shm object owned by one test: created zero-filled, mapped, unlinked at the end.
class ShmObject {
 public:
  explicit ShmObject(size_t size) : size_(size) {
    static std::atomic<int> counter{0};
    key_ = "/quiver-http-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    fd_ = ::shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    EXPECT_EQ(::ftruncate(fd_, static_cast<off_t>(size)), 0);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    EXPECT_NE(p, MAP_FAILED);
    base_ = static_cast<std::byte*>(p);
  }
  ~ShmObject() {
    ::munmap(base_, size_);
    ::close(fd_);
    ::shm_unlink(key_.c_str());
  }
  ShmObject(const ShmObject&) = delete;
  ShmObject& operator=(const ShmObject&) = delete;

  const std::string& key() const { return key_; }
  std::byte* data() { return base_; }
  size_t size() const { return size_; }

 private:
  std::string key_;
  size_t size_;
  int fd_ = -1;
  std::byte* base_ = nullptr;
};

// "id_fp32" for kFp32 etc.: the identity model of each datatype in the test repository.
inline std::string IdentityModelName(DataType type) {
  std::string name = "id_";
  for (char c : DataTypeName(type)) {
    name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return name;
}

inline constexpr DataType kAllTypes[] = {
    DataType::kBool,  DataType::kUint8, DataType::kUint16, DataType::kUint32, DataType::kUint64,
    DataType::kInt8,  DataType::kInt16, DataType::kInt32,  DataType::kInt64,  DataType::kFp16,
    DataType::kBf16,  DataType::kFp32,  DataType::kFp64,   DataType::kBytes};

// Engine (explicit control mode, everything loaded) + SharedMemoryManager + HttpServer.
class HttpEngineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    for (DataType t : kAllTypes) {
      const std::string type(DataTypeConfigName(t));
      WriteModel(IdentityModelName(t),
                 "max_batch_size: 0\n"
                 "input { name: \"INPUT0\" data_type: " + type + " dims: [ -1 ] }\n"
                 "output { name: \"OUTPUT0\" data_type: " + type + " dims: [ -1 ] }\n");
    }
    WriteModel("id_multi",
               "max_batch_size: 0\n"
               "input { name: \"A\" data_type: TYPE_FP32 dims: [ -1 ] }\n"
               "input { name: \"B\" data_type: TYPE_STRING dims: [ -1 ] }\n"
               "output { name: \"A_OUT\" data_type: TYPE_FP32 dims: [ -1 ] }\n"
               "output { name: \"B_OUT\" data_type: TYPE_STRING dims: [ -1 ] }\n");
    WriteModel("id_batch",
               "max_batch_size: 4\n"
               "input { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ 2 ] }\n"
               "output { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 2 ] }\n");

    auto registry = std::make_shared<engine::BackendRegistry>();
    registry->Register("identity", std::make_shared<engine::IdentityBackend>());
    engine::EngineOptions o;
    o.model_repositories = {repo_.path()};
    o.control_mode = engine::ModelControlMode::kExplicit;
    o.startup_models = {"*"};
    o.poll_interval = std::chrono::milliseconds(0);
    o.backends = registry;
    auto engine = engine::Engine::Create(std::move(o));
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    StartServer(ServerOptions());
  }

  void TearDown() override {
    server_.reset();
    engine_.reset();
  }

  virtual HttpServerOptions ServerOptions() {
    HttpServerOptions options;
    options.port = 0;
    options.threads = 2;
    options.max_body_bytes = 1 << 20;
    return options;
  }

  void StartServer(HttpServerOptions options) {
    server_ = std::make_unique<HttpServer>(*engine_, shm_, std::move(options));
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(server_->port(), 0);
  }

  void WriteModel(const std::string& name, const std::string& body) {
    repo_.WriteModel(name, "name: \"" + name + "\"\nbackend: \"identity\"\n" + body +
                               "instance_group [ { count: 1 kind: KIND_CPU } ]\n");
  }

  TestClient Client() { return TestClient(server_->port()); }

  quiver::testing::TempRepository repo_{"http"};  // outlives engine_
  std::unique_ptr<engine::Engine> engine_;
  SharedMemoryManager shm_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace quiver::frontend::testing
