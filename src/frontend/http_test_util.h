#pragma once
// Shared fixtures of the HTTP frontend tests: a temporary model repository of identity
// models (identity_<type> for every datatype, id_multi, id_batch), an Engine serving it,
// an HttpServer on an ephemeral port, and POSIX shared-memory objects that unlink
// themselves.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "frontend/http_server.h"
#include "frontend/http_test_client.h"
#include "frontend/shared_memory.h"
#include "testing/engine_fixture.h"
#include "testing/infer_helpers.h"

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

// Engine (explicit control mode, everything loaded) + SharedMemoryManager + HttpServer.
class HttpEngineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = quiver::testing::TestEngineBuilder("http")
                     .WithIdentityModels(quiver::testing::kAllTypes)
                     .WithModel("id_multi", "identity",
                                "max_batch_size: 0\n"
                                "input { name: \"A\" data_type: TYPE_FP32 dims: [ -1 ] }\n"
                                "input { name: \"B\" data_type: TYPE_STRING dims: [ -1 ] }\n"
                                "output { name: \"A_OUT\" data_type: TYPE_FP32 dims: [ -1 ] }\n"
                                "output { name: \"B_OUT\" data_type: TYPE_STRING dims: [ -1 ] }\n")
                     .WithModel("id_batch", "identity",
                                "max_batch_size: 4\n"
                                "input { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ 2 ] }\n"
                                "output { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 2 ] }\n")
                     .Build();
    ASSERT_TRUE(engine_);
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

  TestClient Client() { return TestClient(server_->port()); }

  quiver::testing::TestEngine engine_;
  SharedMemoryManager shm_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace quiver::frontend::testing
