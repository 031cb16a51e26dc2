#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include "frontend/http_connection.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

#include "protocol/json_messages.h"

namespace quiver::frontend {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;

namespace {

constexpr size_t kDrainChunk = 16 * 1024;
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr uint32_t kHeaderLimit = 64 * 1024;
constexpr size_t kChunkedReadSize = 64 * 1024;

HttpMethod MethodOf(http::verb verb) {
  switch (verb) {
    case http::verb::get: return HttpMethod::kGet;
    case http::verb::post: return HttpMethod::kPost;
    case http::verb::delete_: return HttpMethod::kDelete;
    default: return HttpMethod::kOther;
  }
}

bool IsDisconnect(beast::error_code ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::operation_aborted ||
         ec == beast::error::timeout || ec == asio::error::bad_descriptor;
}

}  // namespace

HttpConnection::HttpConnection(asio::ip::tcp::socket socket, HttpRouter& router,
                               ConnectionSettings settings, std::shared_ptr<ReplyMailbox> mailbox,
                               const std::atomic<bool>& stopping, ClosedCallback on_closed)
    : stream_(std::move(socket)),
      router_(router),
      settings_(settings),
      mailbox_(std::move(mailbox)),
      stopping_(stopping),
      on_closed_(std::move(on_closed)) {}

void HttpConnection::Start() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
}

void HttpConnection::Shutdown() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->state_ == State::kIdle) self->Close();
    // Reading or busy: the reply goes out with "Connection: close", then Close().
  });
}

void HttpConnection::ForceClose() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] { self->Close(); });
}

void HttpConnection::ReadHeader() {
  if (state_ == State::kClosed) return;
  if (stopping_.load()) {
    Close();
    return;
  }
  state_ = State::kIdle;
  parser_.emplace();
  parser_->body_limit(settings_.max_body_bytes);
  parser_->header_limit(kHeaderLimit);
  stream_.expires_after(settings_.idle_timeout);
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void HttpConnection::OnHeader(beast::error_code ec) {
  if (state_ == State::kClosed) return;  // closed (Stop) while the read completed
  if (ec) {
    OnReadError(ec);
    return;
  }
  state_ = State::kReading;
  const auto& header = parser_->get();
  if (beast::iequals(header[http::field::expect], "100-continue")) {
    // curl and others wait for this before sending large bodies.
    continue_ = {};
    continue_.version(11);
    continue_.result(http::status::continue_);
    stream_.expires_after(settings_.read_timeout);
    http::async_write(stream_, continue_,
                      [self = shared_from_this()](beast::error_code wec, size_t) {
                        if (wec) {
                          self->Close();
                          return;
                        }
                        self->ReadBody();
                      });
    return;
  }
  ReadBody();
}

void HttpConnection::ReadBody() {
  stream_.expires_after(settings_.read_timeout);
  const auto length = parser_->content_length();
  if (!length || parser_->chunked()) {
    // Chunked: Beast decodes it through buffer_; let each read take a sizeable piece.
    buffer_.reserve(kChunkedReadSize);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRequest(ec); });
    return;
  }
  // Content-Length (already checked against the body limit): the bytes that came with the
  // header are copied, the rest is read by the socket straight into the tensor storage.
  const auto total = static_cast<size_t>(*length);
  body_ = SharedBody::Allocate(total);
  const size_t have = std::min(total, buffer_.size());
  if (have > 0) {
    std::memcpy(body_.data.get(), buffer_.data().data(), have);
    buffer_.consume(have);
  }
  body_.size = have;
  if (have == total) {
    OnBody({});
    return;
  }
  asio::async_read(stream_, asio::buffer(body_.data.get() + have, total - have),
                   [self = shared_from_this()](beast::error_code ec, size_t) {
                     self->OnBody(ec);
                   });
}

void HttpConnection::OnBody(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec) {
    body_ = {};
    OnReadError(ec);
    return;
  }
  body_.size = body_.capacity;
  request_ = parser_->release();
  request_.body() = std::move(body_);
  body_ = {};
  parser_.reset();
  Dispatch();
}

void HttpConnection::OnReadError(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec == http::error::body_limit) {
    std::string length = "an unknown number of";
    if (parser_ && parser_->content_length()) length = std::to_string(*parser_->content_length());
    FailAndLinger(413, "request body of " + length + " bytes exceeds the server's limit of " +
                           std::to_string(settings_.max_body_bytes) + " bytes");
    return;
  }
  if (ec == http::error::header_limit) {
    FailAndLinger(431, "request header fields exceed " + std::to_string(kHeaderLimit) +
                           " bytes");
    return;
  }
  if (IsDisconnect(ec)) {
    Close();
    return;
  }
  // Anything else is a malformed message (bad method, target, version, field, chunk...).
  FailAndLinger(400, "malformed HTTP request: " + ec.message());
}

void HttpConnection::OnRequest(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  if (ec) {
    OnReadError(ec);
    return;
  }
  request_ = parser_->release();
  parser_.reset();
  if (buffer_.capacity() > kChunkedReadSize) buffer_.shrink_to_fit();
  Dispatch();
}

void HttpConnection::Dispatch() {
  state_ = State::kBusy;
  keep_alive_ = request_.keep_alive();

  HttpRequest view;
  view.method = MethodOf(request_.method());
  const auto target = request_.target();
  view.target = std::string_view(target.data(), target.size());
  SharedBody::value_type& body = request_.body();
  if (body.data) {
    view.body = std::span<const std::byte>(body.data.get(), body.size);
    view.body_padding = body.capacity - body.size + protocol::kJsonPadding;
    view.keepalive = body.data;
  }
  auto header_length = request_.find(beast::string_view(
      protocol::kInferHeaderContentLength.data(), protocol::kInferHeaderContentLength.size()));
  if (header_length != request_.end()) {
    view.header_length = std::string_view(header_length->value().data(),
                                          header_length->value().size());
  }
  auto encoding = request_.find(http::field::content_encoding);
  if (encoding != request_.end()) {
    view.content_encoding = std::string_view(encoding->value().data(), encoding->value().size());
  }
  auto accept = request_.find(http::field::accept_encoding);
  if (accept != request_.end()) {
    view.accept_encoding = std::string_view(accept->value().data(), accept->value().size());
  }
  if (router_.authenticates()) {
    auto authorization = request_.find(http::field::authorization);
    if (authorization != request_.end()) {
      view.authorization =
          std::string_view(authorization->value().data(), authorization->value().size());
    }
  }
  ++request_seq_;
  router_.Handle(view, MakeResponder());
}

HttpResponder HttpConnection::MakeResponder() {
  return [weak = weak_from_this(), mailbox = mailbox_, seq = request_seq_,
          spread = settings_.spread_replies](HttpReply reply) {
    DeliveryBatch* const batch = std::exchange(reply.delivery_batch, nullptr);
    if (mailbox->OnIoThread()) {
      // A reply made on an I/O thread (a model run inline, metadata, an error): the
      // io_context runs here, no eventfd round trip is needed.
      if (auto self = weak.lock()) self->PostSend(std::move(reply), seq, /*dispatch=*/false);
      return;
    }
    // The connection is looked up on the I/O thread: a service thread never holds the last
    // reference to it. A closed mailbox (the server stopped) drops the reply.
    const bool posted = mailbox->Post([weak, seq, spread, reply = std::move(reply)]() mutable {
      // One I/O thread: send from the drain at once. Several: leave the encoding and the
      // write to whichever thread is free.
      if (auto self = weak.lock()) self->PostSend(std::move(reply), seq, /*dispatch=*/!spread);
    });
    if (!posted) return;
    if (batch != nullptr) {
      try {
        batch->AfterDelivery([mailbox] { mailbox->Wake(); });
        return;
      } catch (const std::exception&) {  // no memory to defer: wake now
      }
    }
    mailbox->Wake();
  };
}

void HttpConnection::PostSend(HttpReply reply, uint64_t seq, bool dispatch) {
  auto send = [self = shared_from_this(), seq, reply = std::move(reply)]() mutable {
    self->Send(std::move(reply), seq);
  };
  if (dispatch) {
    asio::dispatch(stream_.get_executor(), std::move(send));
  } else {
    asio::post(stream_.get_executor(), std::move(send));
  }
}

void HttpConnection::Send(HttpReply reply, uint64_t seq) {
  // Exactly one reply per request: a responder called twice, or late for an earlier
  // request, is dropped rather than starting a second write or answering the wrong request.
  if (state_ != State::kBusy || seq != request_seq_ || response_.has_value()) return;
  if (reply.prepare) {
    auto prepare = std::move(reply.prepare);
    prepare(reply);
  }
  // The request (and its body) is no longer needed here; output Buffers that alias it
  // keep the body alive by themselves.
  request_ = {};
  const bool close = !keep_alive_ || stopping_.load();

  response_.emplace();
  http::response<GatherBody>& res = *response_;
  res.version(11);
  res.result(static_cast<unsigned>(reply.status));
  if (!reply.content_type.empty()) res.set(http::field::content_type, reply.content_type);
  if (reply.header_length) {
    res.set(beast::string_view(protocol::kInferHeaderContentLength.data(),
                               protocol::kInferHeaderContentLength.size()),
            std::to_string(*reply.header_length));
  }
  for (auto& [name, value] : reply.headers) res.set(name, value);
  res.keep_alive(!close);
  res.body().head = std::move(reply.body);
  res.body().chunks = std::move(reply.chunks);
  res.prepare_payload();

  stream_.expires_after(settings_.read_timeout);
  http::async_write(stream_, res,
                    [self = shared_from_this(), close](beast::error_code ec, size_t) {
                      self->OnWrite(ec, close);
                    });
}

void HttpConnection::OnWrite(beast::error_code ec, bool close) {
  response_.reset();
  if (ec || close) {
    if (!ec) {
      beast::error_code ignored;
      stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    }
    Close();
    return;
  }
  ReadHeader();
}

void HttpConnection::FailAndLinger(int status, std::string message) {
  state_ = State::kBusy;
  parser_.reset();
  response_.emplace();
  http::response<GatherBody>& res = *response_;
  res.version(11);
  res.result(static_cast<unsigned>(status));
  res.set(http::field::content_type, "application/json");
  res.keep_alive(false);
  res.body().head = protocol::ErrorJson(message);
  res.prepare_payload();
  stream_.expires_after(settings_.read_timeout);
  http::async_write(stream_, res, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->response_.reset();
    if (ec) {
      self->Close();
      return;
    }
    self->Linger();
  });
}

void HttpConnection::Linger() {
  beast::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  drain_.reset(new char[kDrainChunk]);
  // One deadline for the whole drain: a client that keeps sending is cut off at it.
  stream_.expires_after(kLingerTimeout);
  Drain();
}

void HttpConnection::Drain() {
  stream_.async_read_some(asio::buffer(drain_.get(), kDrainChunk),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (ec || self->state_ == State::kClosed) {
                              self->Close();
                              return;
                            }
                            self->Drain();
                          });
}

void HttpConnection::Close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  beast::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
  if (on_closed_) {
    auto callback = std::move(on_closed_);
    on_closed_ = nullptr;
    callback(this);
  }
}

}  // namespace quiver::frontend
