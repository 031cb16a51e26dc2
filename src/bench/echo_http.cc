#include "bench/echo_http.h"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "bench/echo_http_routes.h"
#include "core/cpus.h"
#include "frontend/http_body.h"
#include "frontend/http_listen.h"
#include "protocol/json_messages.h"

namespace quiver::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

// The frontend's defaults (HttpServerOptions).
constexpr auto kIdleTimeout = std::chrono::minutes(5);
constexpr auto kReadTimeout = std::chrono::minutes(2);
constexpr uint32_t kHeaderLimit = 64 * 1024;

// One keep-alive connection; every handler runs on its strand. Kept alive by the
// shared_ptrs its pending operations hold.
class EchoConnection : public std::enable_shared_from_this<EchoConnection> {
 public:
  EchoConnection(tcp::socket socket, EchoModel& model, size_t max_body_bytes)
      : stream_(std::move(socket)), model_(model), max_body_bytes_(max_body_bytes) {}

  // Starts reading requests, on the connection's strand.
  void Start() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->body_limit(max_body_bytes_);
    parser_->header_limit(kHeaderLimit);
    stream_.expires_after(kIdleTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Fail(ec);
                              self->OnHeader();
                            });
  }

  void OnHeader() {
    stream_.expires_after(kReadTimeout);
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      // libcurl (perf_analyzer) waits for this before sending a body over 1 KiB.
      continue_ = {};
      continue_.version(11);
      continue_.result(http::status::continue_);
      http::async_write(stream_, continue_,
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Fail(ec);
                       self->Respond();
                     });
  }

  void Respond() {
    const auto& req = parser_->get();
    EchoHttpRequest view;
    view.get = req.method() == http::verb::get;
    view.post = req.method() == http::verb::post;
    view.target = std::string_view(req.target().data(), req.target().size());
    const frontend::SharedBody::value_type& body = req.body();
    if (body.data) {
      view.body = std::span<const std::byte>(body.data.get(), body.size);
      view.padding = body.capacity - body.size + protocol::kJsonPadding;
      view.keepalive = body.data;
    }
    const auto hl = req.find("Inference-Header-Content-Length");
    if (hl != req.end()) {
      view.header_length = std::string_view(hl->value().data(), hl->value().size());
    }
    EchoHttpReply reply = RouteEchoHttp(model_, view);
    Send(reply.status, reply.content_type, reply.header_length, std::move(reply.body),
         req.keep_alive());
  }

  void Send(unsigned status, std::string_view content_type, std::optional<size_t> header_length,
            frontend::GatherBody::value_type body, bool keep_alive) {
    parser_.reset();  // the reply's chunks keep the request body alive on their own
    response_.emplace();
    auto& res = *response_;
    res.version(11);
    res.result(status);
    res.set(http::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
    if (header_length) res.set("Inference-Header-Content-Length", std::to_string(*header_length));
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    stream_.expires_after(kReadTimeout);
    http::async_write(stream_, res,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        self->response_.reset();
                        if (ec || !keep_alive) return self->Close();
                        self->ReadHeader();
                      });
  }

  // A disconnect closes; a malformed request gets 400 and then the connection closes.
  void Fail(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == http::error::partial_message) {
      return Close();
    }
    Send(400, "application/json", std::nullopt,
         {protocol::ErrorJson("malformed HTTP request: " + ec.message()), {}},
         /*keep_alive=*/false);
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  EchoModel& model_;
  const size_t max_body_bytes_;
  std::optional<http::request_parser<frontend::SharedBody>> parser_;
  std::optional<http::response<frontend::GatherBody>> response_;
  http::response<http::empty_body> continue_;
};

}  // namespace

class EchoHttpServer::Impl {
 public:
  Impl(EchoModel& model, EchoHttpOptions options)
      : model_(model), options_(std::move(options)), acceptor_(asio::make_strand(ioc_)) {}

  ~Impl() { Stop(); }

  Status Start() {
    if (started_) return Status::InvalidArgument("the echo HTTP server is already started");
    auto bound = frontend::Listen(acceptor_, options_.address, options_.port, "echo HTTP server");
    if (!bound.ok()) return bound.status();
    port_ = *bound;
    started_ = true;
    work_.emplace(asio::make_work_guard(ioc_));
    Accept();
    // As frontend::HttpServer (the same Beast setup, for a like-for-like floor).
    const unsigned n = static_cast<unsigned>(options_.threads > 0 ? options_.threads : UsableCpus());
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { ioc_.run(); });
    return Status::Ok();
  }

  // Abandons open connections: their pending handlers (and sockets) go with the io_context.
  void Stop() {
    if (!started_ || stopped_) return;
    stopped_ = true;
    asio::post(acceptor_.get_executor(), [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
    });
    work_.reset();
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  uint16_t port() const { return port_; }

 private:
  void Accept() {
    acceptor_.async_accept(
        asio::make_strand(ioc_), [this](boost::system::error_code ec, tcp::socket socket) {
          if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
          if (!ec) {
            boost::system::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            std::make_shared<EchoConnection>(std::move(socket), model_, options_.max_body_bytes)
                ->Start();
          }
          Accept();
        });
  }

  EchoModel& model_;
  const EchoHttpOptions options_;
  // Declared first among the Asio objects so that it is destroyed last.
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

EchoHttpServer::EchoHttpServer(EchoModel& model, EchoHttpOptions options)
    : impl_(std::make_unique<Impl>(model, std::move(options))) {}

EchoHttpServer::~EchoHttpServer() = default;

Status EchoHttpServer::Start() { return impl_->Start(); }

void EchoHttpServer::Stop() { impl_->Stop(); }

uint16_t EchoHttpServer::port() const { return impl_->port(); }

}  // namespace quiver::bench
