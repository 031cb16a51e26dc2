#pragma once
// Fixtures of the HTTP transport tests: an in-process server (Engine with identity models
// of every datatype plus a gated FakeBackend model, SharedMemoryManager, HttpServer on
// 127.0.0.1 port 0), and RawHttpServer, a scripted HTTP/1.1 server for the failure cases
// a real server does not produce (answers cut short, malformed bodies, refusals).

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#pragma GCC diagnostic pop

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/http_service.h"
#include "frontend/http_server.h"
#include "frontend/shared_memory.h"
#include "testing/engine_fixture.h"
#include "testing/fake_backend.h"
#include "testing/infer_helpers.h"

namespace quiver::client::testing {

// Engine (explicit mode, everything loaded) + HttpServer on 127.0.0.1:0. Models:
// identity_<type> (identity, INPUT0 -> OUTPUT0, dims [-1]) for every datatype, and "gated"
// (FakeBackend, FP32 [batch, -1], two instances) whose executions block while
// fake_->CloseGate().
class HttpServiceFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);  // model loading is chatty
    fake_ = std::make_shared<quiver::testing::FakeBackend>();
    // Batching with a queue delay: executions run on the scheduler's workers, never
    // inline on a server I/O thread, so a closed gate does not stall the server.
    engine_ = quiver::testing::TestEngineBuilder("http-client")
                     .WithIdentityModels(quiver::testing::kAllTypes)
                     .WithFakeModel("gated", fake_,
                                    "max_batch_size: 8\n" +
                                    quiver::testing::IoConfig("TYPE_FP32") +
                                    "dynamic_batching { max_queue_delay_microseconds: 100 }\n"
                                    "instance_group [ { count: 2 kind: KIND_CPU } ]\n")
                     .Build();
    ASSERT_TRUE(engine_);
    StartServer(0);
  }

  void TearDown() override {
    if (fake_) fake_->OpenGate();
    server_.reset();
    engine_.reset();
  }

  void StartServer(uint16_t port) {
    frontend::HttpServerOptions options;
    options.port = port;
    options.threads = 2;
    options.max_body_bytes = size_t{256} << 20;
    options.stop_timeout = std::chrono::milliseconds(200);
    server_ = std::make_unique<frontend::HttpServer>(*engine_, shm_, options);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    port_ = server_->port();
  }

  RemoteOptions Options(bool shared_memory = false, size_t connections = 4) const {
    RemoteOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    o.connections = connections;
    o.shared_memory = shared_memory;
    return o;
  }

  std::shared_ptr<HttpService> Service(const RemoteOptions& options) {
    return std::make_shared<HttpService>(options);
  }

  std::shared_ptr<quiver::testing::FakeBackend> fake_;
  quiver::testing::TestEngine engine_;
  frontend::SharedMemoryManager shm_;
  std::unique_ptr<frontend::HttpServer> server_;
  uint16_t port_ = 0;
};

// A scripted HTTP/1.1 server on 127.0.0.1:0: each request received is passed to the
// handler, whose reply is written as raw bytes (then the connection is closed when asked).
// One thread per connection; Stop() (or the destructor) shuts every socket down.
class RawHttpServer {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  struct Reply {
    std::string raw;     // written as is
    bool close = false;  // close the connection after writing
  };
  using Handler = std::function<Reply(const Request&)>;

  explicit RawHttpServer(Handler handler) : handler_(std::move(handler)), acceptor_(io_) {
    namespace asio = boost::asio;
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~RawHttpServer() { Stop(); }

  uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }

  void Stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
      ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
      for (auto& s : sockets_) ::shutdown(s->native_handle(), SHUT_RDWR);
    }
    accept_thread_.join();
    for (auto& t : threads_) t.join();
  }

  // A 200 response with a JSON body (keep-alive).
  static std::string Json(int status, const std::string& body,
                          const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
           extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

 private:
  void AcceptLoop() {
    for (;;) {
      auto socket = std::make_shared<boost::asio::ip::tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*socket, ec);
      std::lock_guard lock(mutex_);
      if (ec || stopped_) return;
      ++connections_;
      sockets_.push_back(socket);
      threads_.emplace_back([this, socket] { Serve(*socket); });
    }
  }

  void Serve(boost::asio::ip::tcp::socket& socket) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      boost::system::error_code ec;
      http::read(socket, buffer, parser, ec);
      if (ec) return;
      ++requests_;
      Reply reply = handler_(parser.get());
      boost::asio::write(socket, boost::asio::buffer(reply.raw), ec);
      if (ec) return;
      if (reply.close) {
        ::shutdown(socket.native_handle(), SHUT_RDWR);
        return;
      }
    }
  }

  Handler handler_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::mutex mutex_;
  bool stopped_ = false;
  std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;  // guarded by mutex_
  std::vector<std::thread> threads_;                                     // guarded by mutex_
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
};

}  // namespace quiver::client::testing
