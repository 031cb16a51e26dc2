#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include "frontend/metrics_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "frontend/http_listen.h"

namespace quiver::frontend {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr uint32_t kHeaderLimit = 16 * 1024;
constexpr uint64_t kBodyLimit = 64 * 1024;
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

class MetricsServer::Impl {
 public:
  Impl(MetricsRegistry& registry, const MetricsServerOptions& options)
      : registry_(registry), options_(options), acceptor_(asio::make_strand(ioc_)) {}

  ~Impl() { Stop(); }

  Status Start() {
    std::lock_guard lifecycle(lifecycle_mutex_);
    if (started_) return Status::AlreadyExists("the metrics server is already started");
    auto bound = Listen(acceptor_, options_.address, options_.port, "metrics server");
    if (!bound.ok()) return bound.status();
    port_ = *bound;
    started_ = true;
    work_.emplace(asio::make_work_guard(ioc_));
    Accept();
    threads_.reserve(static_cast<size_t>(options_.threads));
    for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Run(); });
    return Status::Ok();
  }

  void Stop() {
    std::lock_guard lifecycle(lifecycle_mutex_);
    if (!started_ || stopped_) return;
    stopped_ = true;
    stopping_ = true;
    work_.reset();
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    // No I/O thread runs now: close everything from here, then let the aborted handlers
    // run so that every session is released while the io_context still exists.
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(sessions_mutex_);
      for (auto& [raw, weak] : sessions_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) s->Close();
    live.clear();
    ioc_.restart();
    ioc_.run();  // handlers see stopping_ and start nothing new
  }

  uint16_t port() const { return port_.load(); }

 private:
  class Session : public std::enable_shared_from_this<Session> {
   public:
    Session(Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {}
    ~Session() { server_.Forget(this); }

    void Start() {
      asio::post(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
    }

    void Close() {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_.close();
    }

   private:
    void Read() {
      if (server_.stopping_) return Close();
      parser_.emplace();
      parser_->header_limit(kHeaderLimit);
      parser_->body_limit(kBodyLimit);
      stream_.expires_after(server_.options_.idle_timeout);
      http::async_read(stream_, buffer_, *parser_,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         self->OnRead(ec);
                       });
    }

    void OnRead(beast::error_code ec) {
      if (ec) return Close();  // disconnect, timeout, oversized or malformed request
      const auto& req = parser_->get();
      std::string_view target(req.target().data(), req.target().size());
      target = target.substr(0, target.find('?'));

      response_.emplace();
      auto& res = *response_;
      res.version(req.version());
      res.keep_alive(req.keep_alive());
      res.set(http::field::server, "quiver");
      const bool head = req.method() == http::verb::head;
      if (target != "/metrics") {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "text/plain");
        res.body() = "Not Found\n";
      } else if (req.method() != http::verb::get && !head) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
        res.set(http::field::content_type, "text/plain");
        res.body() = "Method Not Allowed\n";
      } else {
        res.result(http::status::ok);
        res.set(http::field::content_type, kContentType);
        res.body() = server_.Render();
      }
      res.prepare_payload();
      if (head) res.body().clear();  // Content-Length still announces the GET body
      stream_.expires_after(server_.options_.idle_timeout);
      http::async_write(stream_, res,
                        [self = shared_from_this()](beast::error_code wec, size_t) {
                          self->OnWrite(wec);
                        });
    }

    void OnWrite(beast::error_code ec) {
      const bool keep = response_ && response_->keep_alive();
      response_.reset();
      if (ec || !keep) return Close();
      Read();
    }

    Impl& server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::string_body>> response_;
  };

  std::string Render() {
    try {
      return registry_.Render();
    } catch (const std::exception& e) {
      spdlog::error("metrics server: rendering failed: {}", e.what());
      return {};
    }
  }

  void Run() {
    // A handler that throws (e.g. bad_alloc) must not take the whole thread down.
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("metrics server: unexpected exception in an I/O thread: {}", e.what());
      }
    }
  }

  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_),
                           [this](boost::system::error_code ec, tcp::socket socket) {
                             OnAccept(ec, std::move(socket));
                           });
  }

  void OnAccept(boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || stopping_ || !acceptor_.is_open()) return;
    if (!ec) {
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto session = std::make_shared<Session>(*this, std::move(socket));
      {
        std::lock_guard lock(sessions_mutex_);
        sessions_.emplace(session.get(), session);
      }
      session->Start();
    }
    // Accept errors (e.g. out of descriptors) drop that one connection; keep accepting.
    Accept();
  }

  void Forget(Session* session) {
    std::lock_guard lock(sessions_mutex_);
    sessions_.erase(session);
  }

  MetricsRegistry& registry_;
  const MetricsServerOptions& options_;
  // Declared before everything bound to it, so that it is destroyed last.
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint16_t> port_{0};

  std::mutex lifecycle_mutex_;  // serialises Start and Stop
  bool started_ = false;        // guarded by lifecycle_mutex_
  bool stopped_ = false;        // guarded by lifecycle_mutex_
  std::vector<std::thread> threads_;

  std::mutex sessions_mutex_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;  // guarded
};

MetricsServer::MetricsServer(MetricsRegistry& registry, MetricsServerOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(registry, options_)) {}

MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Start() {
  if (options_.threads < 1) {
    return Status::InvalidArgument("metrics server: threads must be >= 1");
  }
  return impl_->Start();
}

void MetricsServer::Stop() { impl_->Stop(); }

uint16_t MetricsServer::port() const { return impl_->port(); }

}  // namespace quiver::frontend
