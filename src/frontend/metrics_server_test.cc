#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include "frontend/metrics_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "frontend/http_test_client.h"
#include "frontend/metrics_test_util.h"

namespace quiver::frontend {
namespace {

using testing::MetricsEngineFixture;
using testing::ParseExposition;
using testing::TestClient;

class MetricsServerTest : public MetricsEngineFixture {
 protected:
  void SetUp() override {
    MetricsEngineFixture::SetUp();
    if (HasFatalFailure()) return;
    MetricsOptions options;
    engine::Engine* engine = engine_.get();
    options.total_pending_count = [engine] { return engine->PendingCount(); };
    registry_ = std::make_unique<MetricsRegistry>(*engine_, options);
    MetricsServerOptions server_options;
    server_options.port = 0;
    server_ = std::make_unique<MetricsServer>(*registry_, server_options);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(server_->port(), 0);
  }

  void TearDown() override {
    server_.reset();
    registry_.reset();
    MetricsEngineFixture::TearDown();
  }

  std::unique_ptr<MetricsRegistry> registry_;
  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsServerTest, ServesMetricsOverHttp) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(InferOnce());
  TestClient client(server_->port());
  auto res = client.Get("/metrics");
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  ParseExposition(res.body);
  EXPECT_NE(res.body.find("\nnv_inference_request_success{model=\"m\",version=\"1\"} 3\n"),
            std::string::npos)
      << res.body;
  EXPECT_NE(res.body.find("\nnv_cpu_utilization "), std::string::npos) << res.body;
  EXPECT_NE(res.body.find("\nnv_cpu_memory_total_bytes "), std::string::npos) << res.body;
  EXPECT_NE(res.body.find("\nquiver_pending_request_count 0\n"), std::string::npos) << res.body;

  // Keep-alive: the same connection serves the next scrape, which sees new inferences.
  ASSERT_TRUE(InferOnce());
  res = client.Get("/metrics?name[]=nv_inference_count");  // query ignored
  ASSERT_EQ(res.status, 200);
  EXPECT_NE(res.body.find("\nnv_inference_request_success{model=\"m\",version=\"1\"} 4\n"),
            std::string::npos)
      << res.body;
}

TEST_F(MetricsServerTest, ConcurrentScrapesOnSeveralThreads) {
  MetricsServerOptions options;
  options.port = 0;
  options.threads = 2;
  MetricsServer server(*registry_, options);
  ASSERT_TRUE(server.Start().ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      TestClient client(server.port());
      for (int i = 0; i < 10; ++i) {
        auto res = client.Get("/metrics");
        if (res.status == 200 &&
            res.body.find("nv_inference_request_success{model=\"m\",version=\"1\"}") !=
                std::string::npos) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 40);
  server.Stop();
}

TEST_F(MetricsServerTest, OtherPathsAndMethods) {
  TestClient client(server_->port());
  EXPECT_EQ(client.Get("/").status, 404);
  EXPECT_EQ(client.Get("/v2/health/ready").status, 404);
  EXPECT_EQ(client.Get("/metricsx").status, 404);
  auto res = client.Post("/metrics", "x");
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.Header("allow"), "GET, HEAD");
  EXPECT_EQ(client.Get("/metrics").status, 200);  // connection still usable
}

TEST_F(MetricsServerTest, HeadAnnouncesLengthWithoutBody) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  timeval tv{60, 0};  // a guard against a hang, not a synchronisation point
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string head = "HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
  asio::write(socket, asio::buffer(head));
  std::string buffer;
  const size_t header_end = asio::read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n");
  const std::string header = buffer.substr(0, header_end);
  EXPECT_TRUE(header.starts_with("HTTP/1.1 200")) << header;
  EXPECT_NE(header.find("Content-Length: "), std::string::npos) << header;
  EXPECT_EQ(header.find("Content-Length: 0\r\n"), std::string::npos) << header;
  // No body follows: the next bytes on the connection are the reply to the next request.
  const std::string get = "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n";
  asio::write(socket, asio::buffer(get));
  buffer.erase(0, header_end);
  asio::read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n");
  EXPECT_TRUE(buffer.starts_with("HTTP/1.1 404")) << buffer;
}

TEST_F(MetricsServerTest, ConnectionCloseIsHonoured) {
  TestClient client(server_->port());
  auto res = client.Request("GET", "/metrics", {}, {{"Connection", "close"}});
  EXPECT_EQ(res.status, 200);
  EXPECT_FALSE(res.keep_alive);
  EXPECT_TRUE(client.PeerClosed());
}

TEST_F(MetricsServerTest, StopClosesOpenConnections) {
  TestClient client(server_->port());
  ASSERT_EQ(client.Get("/metrics").status, 200);
  TestClient idle(server_->port());  // connected, never sends anything
  server_->Stop();
  EXPECT_TRUE(client.PeerClosed());
  EXPECT_TRUE(idle.PeerClosed());
  server_->Stop();  // idempotent
}

TEST_F(MetricsServerTest, StartTwiceAndPortInUse) {
  EXPECT_EQ(server_->Start().code(), StatusCode::kAlreadyExists);
  MetricsServerOptions options;
  options.port = server_->port();
  MetricsServer second(*registry_, options);
  EXPECT_EQ(second.Start().code(), StatusCode::kUnavailable);
  EXPECT_EQ(second.port(), 0);
}

TEST_F(MetricsServerTest, RejectsBadOptions) {
  MetricsServerOptions options;
  options.port = 0;
  options.threads = 0;
  EXPECT_EQ(MetricsServer(*registry_, options).Start().code(), StatusCode::kInvalidArgument);
  options.threads = 1;
  options.address = "not an address";
  EXPECT_EQ(MetricsServer(*registry_, options).Start().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace quiver::frontend
