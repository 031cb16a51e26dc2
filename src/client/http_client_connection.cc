#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
// GCC 12 warns (-Wtsan) that TSan does not model the atomic_thread_fence Boost.Asio uses.
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#include "client/http_client_connection.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside Beast's parser when optimising.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <limits>
#include <new>
#include <span>
#include <utility>

#include "client/remote_service.h"

namespace quiver::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr uint32_t kHeaderLimit = 64 * 1024;

// Response body storage: one allocation of the announced length plus kJsonPadding zeroed
// bytes, shared with the tensors that borrow it. Grows only for chunked / EOF-delimited
// bodies (the Content-Length case is read by the connection itself, see OnHeader).
//
// Alignment: the body is placed so that byte `align_at` (the Inference-Header-Content-
// Length, where the binary tensors start) lands on a kAlignment boundary. The first
// binary output is then aligned for every element type, and so is each later one whose
// predecessors' sizes keep it so (the common case); others may be misaligned, as any
// borrowed Buffer may be.
struct ResponseBody {
  static constexpr size_t kAlignment = 64;

  struct value_type {
    std::shared_ptr<std::byte[]> data;  // the body's first byte (aliases the allocation)
    size_t size = 0;
    size_t capacity = 0;  // usable bytes before the padding
  };

  static std::uint64_t size(const value_type& v) { return v.size; }

  // Where the binary tensors start: the Inference-Header-Content-Length (0 without it).
  template <class Fields>
  static size_t AlignAt(const Fields& h) {
    auto field = h.find(beast::string_view(protocol::kInferHeaderContentLength.data(),
                                           protocol::kInferHeaderContentLength.size()));
    if (field == h.end()) return 0;
    const auto value = field->value();
    uint64_t n = 0;
    auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (err != std::errc() || end != value.data() + value.size()) return 0;
    return static_cast<size_t>(n % kAlignment);
  }

  // Storage for `capacity` bytes plus zeroed padding; false when it cannot be allocated.
  static bool Reserve(value_type& v, size_t capacity, size_t align_at = 0) {
    if (v.data && capacity <= v.capacity) return true;
    if (capacity > std::numeric_limits<size_t>::max() - protocol::kJsonPadding - kAlignment) {
      return false;
    }
    std::shared_ptr<std::byte[]> raw;
    try {
      raw = std::make_shared_for_overwrite<std::byte[]>(capacity + kAlignment +
                                                        protocol::kJsonPadding);
    } catch (const std::bad_alloc&) {
      return false;
    }
    const auto at = reinterpret_cast<uintptr_t>(raw.get()) + align_at;
    const size_t lead = (kAlignment - at % kAlignment) % kAlignment;
    std::shared_ptr<std::byte[]> fresh(raw, raw.get() + lead);
    if (v.size > 0) std::memcpy(fresh.get(), v.data.get(), v.size);
    std::memset(fresh.get() + capacity, 0, protocol::kJsonPadding);
    v.data = std::move(fresh);
    v.capacity = capacity;
    return true;
  }

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>& h, value_type& body)
        : body_(body), align_at_(AlignAt(h)) {}

    void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec) {
      ec = {};
      body_.size = 0;
      const uint64_t want = length ? *length : 0;
      if (want > std::numeric_limits<size_t>::max() ||
          !Reserve(body_, static_cast<size_t>(want), align_at_)) {
        ec = http::error::buffer_overflow;
      }
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      ec = {};
      const size_t n = asio::buffer_size(buffers);
      if (n > body_.capacity - body_.size) {
        const size_t need = body_.size + n;
        if (!Reserve(body_, std::max(need, body_.capacity + body_.capacity / 2), align_at_)) {
          ec = http::error::buffer_overflow;
          return 0;
        }
      }
      const size_t copied =
          asio::buffer_copy(asio::buffer(body_.data.get() + body_.size, n), buffers);
      body_.size += copied;
      return copied;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
    size_t align_at_;
  };
};

using ResponseParser = http::response_parser<ResponseBody>;

std::string Lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What went wrong with the connection, for "http://host:port: <what>".
std::string Describe(beast::error_code ec, bool got_bytes) {
  if (ec == asio::error::eof || ec == http::error::end_of_stream ||
      ec == http::error::partial_message) {
    return got_bytes ? "the server closed the connection in the middle of the response"
                     : "the server closed the connection before answering";
  }
  if (ec == asio::error::connection_reset) return "connection reset by the server";
  if (ec == asio::error::connection_refused) return "connection refused";
  if (ec == http::error::buffer_overflow) return "the response body cannot be allocated";
  if (ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
    return "malformed HTTP response: " + ec.message();
  }
  return Lowercase(ec.message());
}

}  // namespace

// One TCP connection's state. Handlers hold it (and check it is still the connection's
// current session), so a closed session's late completions are recognised and ignored.
struct HttpClientConnection::Session {
  explicit Session(const asio::any_io_executor& ex) : socket(ex), resolver(ex), timer(ex) {}

  tcp::socket socket;
  tcp::resolver resolver;
  asio::steady_timer timer;  // connect timeout
  beast::flat_buffer buffer;
  std::optional<ResponseParser> parser;
  std::string head;
  std::vector<asio::const_buffer> gather;
  uint64_t requests = 0;  // requests sent on this socket (> 1: a reused connection)
  bool connected = false;
  bool write_done = false;
  bool write_failed = false;
  bool body_started = false;  // the response header has arrived
  bool manual_body = false;   // the body is read by OnHeader's direct read
};

// ---------------------------------------------------------------------------------------

std::shared_ptr<const HttpEndpoint> HttpEndpoint::Make(const RemoteOptions& options) {
  auto e = std::make_shared<HttpEndpoint>();
  e->name = EndpointName("http", options);
  e->host_header = e->name.substr(std::string_view("http://").size());
  if (!options.token.empty()) e->authorization = "Authorization: Bearer " + options.token + "\r\n";
  boost::system::error_code ec;
  auto address = asio::ip::make_address(options.host, ec);
  if (!ec) e->address = address;
  e->host = options.host;
  e->port = options.port;
  e->connect_timeout = options.connect_timeout;
  return e;
}

protocol::InferBody HttpRawResponse::AsInferBody() const {
  protocol::InferBody body;
  body.bytes = std::span<const std::byte>(storage.get(), size);
  body.padding = padding;
  body.keepalive = storage;
  body.header_length = header_length;
  return body;
}

void HttpExchange::Finish(Result<HttpRawResponse> result) {
  if (finished_) return;
  finished_ = true;
  connection = nullptr;
  if (timer) timer->cancel();
  OnFinish(std::move(result));
}

std::string EncodePathSegment(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (char c : segment) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------

HttpClientConnection::HttpClientConnection(asio::any_io_executor executor,
                                           std::shared_ptr<const HttpEndpoint> endpoint,
                                           IdleFn on_idle)
    : executor_(std::move(executor)), endpoint_(std::move(endpoint)), on_idle_(std::move(on_idle)) {}

HttpClientConnection::~HttpClientConnection() = default;

void HttpClientConnection::Start(std::shared_ptr<HttpExchange> exchange) {
  exchange_ = std::move(exchange);
  exchange_->connection = this;
  if (session_) {
    Send();
  } else {
    Connect();
  }
}

std::shared_ptr<HttpExchange> HttpClientConnection::Abort() {
  CloseSession();
  std::shared_ptr<HttpExchange> x = std::move(exchange_);
  exchange_.reset();
  if (x) x->connection = nullptr;
  return x;
}

void HttpClientConnection::CloseSession() {
  if (!session_) return;
  std::shared_ptr<Session> s = std::move(session_);
  session_.reset();
  beast::error_code ignored;
  s->timer.cancel();
  s->resolver.cancel();
  s->socket.close(ignored);
  // Pending handlers keep `s` alive until they run (and see they are stale).
}

void HttpClientConnection::Connect() {
  auto s = std::make_shared<Session>(executor_);
  session_ = s;
  auto self = shared_from_this();
  s->timer.expires_after(endpoint_->connect_timeout);
  s->timer.async_wait([self, s](beast::error_code ec) {
    if (ec || s != self->session_ || s->connected) return;
    self->Fail(Status::Unavailable(self->endpoint_->name + ": connection timed out after " +
                                   std::to_string(self->endpoint_->connect_timeout.count()) +
                                   " ms"));
  });
  if (endpoint_->address) {
    s->socket.async_connect(tcp::endpoint(*endpoint_->address, endpoint_->port),
                            [self, s](beast::error_code ec) { self->OnConnected(s, ec); });
    return;
  }
  s->resolver.async_resolve(
      endpoint_->host, std::to_string(endpoint_->port),
      [self, s](beast::error_code ec, const tcp::resolver::results_type& results) {
        if (s != self->session_) return;
        if (ec) {
          self->Fail(Status::Unavailable(self->endpoint_->name + ": cannot resolve '" +
                                         self->endpoint_->host + "': " + Lowercase(ec.message())));
          return;
        }
        asio::async_connect(s->socket, results,
                            [self, s](beast::error_code cec, const tcp::endpoint&) {
                              self->OnConnected(s, cec);
                            });
      });
}

void HttpClientConnection::OnConnected(const std::shared_ptr<Session>& s, beast::error_code ec) {
  if (s != session_) return;
  s->connected = true;
  s->timer.cancel();
  if (ec) {
    Fail(Status::Unavailable(endpoint_->name + ": " + Describe(ec, false)));
    return;
  }
  beast::error_code ignored;
  s->socket.set_option(tcp::no_delay(true), ignored);
  Send();
}

void HttpClientConnection::Send() {
  const std::shared_ptr<Session> s = session_;
  const HttpExchange& x = *exchange_;
  ++s->requests;
  s->write_done = false;
  s->write_failed = false;
  s->body_started = false;
  s->manual_body = false;

  size_t body_size = x.json.size();
  for (const Buffer& b : x.chunks) body_size += b.size();
  const bool post = std::strcmp(x.method, "GET") != 0;

  std::string& h = s->head;
  h.clear();
  h += x.method;
  h += ' ';
  h += x.target;
  h += " HTTP/1.1\r\nHost: ";
  h += endpoint_->host_header;
  h += "\r\n";
  h += endpoint_->authorization;
  if (post || body_size > 0) {
    h += "Content-Length: ";
    h += std::to_string(body_size);
    h += "\r\n";
    if (body_size > 0) {
      h += x.header_length ? "Content-Type: application/octet-stream\r\n"
                           : "Content-Type: application/json\r\n";
    }
  }
  if (x.header_length) {
    h += protocol::kInferHeaderContentLength;
    h += ": ";
    h += std::to_string(*x.header_length);
    h += "\r\n";
  }
  h += "\r\n";

  s->gather.clear();
  s->gather.emplace_back(h.data(), h.size());
  if (!x.json.empty()) s->gather.emplace_back(x.json.data(), x.json.size());
  for (const Buffer& b : x.chunks) {
    if (!b.empty()) s->gather.emplace_back(b.data(), b.size());
  }
  auto self = shared_from_this();
  asio::async_write(s->socket, std::span<const asio::const_buffer>(s->gather),
                    [self, s](beast::error_code ec, size_t) { self->OnWrite(s, ec); });
  // Read concurrently: a server may answer (an error) before it has read the whole body.
  ReadHeader(s);
}

void HttpClientConnection::OnWrite(const std::shared_ptr<Session>& s, beast::error_code ec) {
  if (s != session_) return;
  s->write_done = true;
  if (ec) {
    // The read that is pending reports what happened (the server's answer, or the close);
    // a half-close makes sure the server does not wait for the rest of the body.
    s->write_failed = true;
    beast::error_code ignored;
    s->socket.shutdown(tcp::socket::shutdown_send, ignored);
  }
}

void HttpClientConnection::ReadHeader(const std::shared_ptr<Session>& s) {
  s->parser.emplace();
  // Not boost::none: Beast 1.74 compares the length with the optional, and none loses.
  s->parser->body_limit(std::numeric_limits<std::uint64_t>::max());
  s->parser->header_limit(kHeaderLimit);
  http::async_read_header(s->socket, s->buffer, *s->parser,
                          [self = shared_from_this(), s](beast::error_code ec, size_t) {
                            self->OnHeader(s, ec);
                          });
}

void HttpClientConnection::OnHeader(const std::shared_ptr<Session>& s, beast::error_code ec) {
  if (s != session_) return;
  if (ec) {
    OnReadError(s, ec);
    return;
  }
  s->body_started = true;
  ResponseParser& parser = *s->parser;
  if (parser.get().result_int() / 100 == 1) {  // 100 Continue and friends: skip
    ReadHeader(s);
    return;
  }
  if (parser.is_done()) {
    OnResponse(s);
    return;
  }
  const auto length = parser.content_length();
  if (!length || parser.chunked()) {
    // Chunked or delimited by EOF: Beast decodes it through the read buffer.
    http::async_read(s->socket, s->buffer, parser,
                     [self = shared_from_this(), s](beast::error_code rec, size_t) {
                       self->OnBody(s, rec);
                     });
    return;
  }
  // Content-Length: the bytes that came with the head are copied, the rest lands in the
  // storage straight from the socket (the parser never sees the body).
  ResponseBody::value_type& body = parser.get().body();
  const auto total = static_cast<size_t>(*length);
  if (*length > std::numeric_limits<size_t>::max() ||
      !ResponseBody::Reserve(body, total, ResponseBody::AlignAt(parser.get()))) {
    Fail(Status::ResourceExhausted(endpoint_->name + ": a response body of " +
                                   std::to_string(total) + " bytes cannot be allocated"));
    return;
  }
  const size_t have = std::min(total, s->buffer.size());
  if (have > 0) {
    std::memcpy(body.data.get(), s->buffer.data().data(), have);
    s->buffer.consume(have);
  }
  body.size = have;
  s->manual_body = true;
  if (have == total) {
    OnResponse(s);
    return;
  }
  asio::async_read(s->socket, asio::buffer(body.data.get() + have, total - have),
                   [self = shared_from_this(), s](beast::error_code rec, size_t) {
                     self->OnBody(s, rec);
                   });
}

void HttpClientConnection::OnBody(const std::shared_ptr<Session>& s, beast::error_code ec) {
  if (s != session_) return;
  if (ec) {
    OnReadError(s, ec);
    return;
  }
  if (s->manual_body) {
    ResponseBody::value_type& body = s->parser->get().body();
    body.size = body.capacity;
  }
  OnResponse(s);
}

void HttpClientConnection::OnResponse(const std::shared_ptr<Session>& s) {
  ResponseParser& parser = *s->parser;
  auto& message = parser.get();
  HttpRawResponse r;
  r.status = static_cast<int>(message.result_int());
  ResponseBody::value_type& body = message.body();
  if (!body.data && !ResponseBody::Reserve(body, 0)) {
    Fail(Status::ResourceExhausted(endpoint_->name + ": out of memory"));
    return;
  }
  r.storage = body.data;
  r.size = body.size;
  r.padding = body.capacity - body.size + protocol::kJsonPadding;
  auto field = message.find(beast::string_view(protocol::kInferHeaderContentLength.data(),
                                               protocol::kInferHeaderContentLength.size()));
  if (field != message.end()) {
    const auto value = field->value();
    uint64_t n = 0;
    auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (err != std::errc() || end != value.data() + value.size()) {
      Fail(Status::Internal(endpoint_->name + ": malformed " +
                            std::string(protocol::kInferHeaderContentLength) + " header '" +
                            std::string(value) + "'"));
      return;
    }
    r.header_length = n;
  }
  // Reusable only when the whole request went out and nothing unexpected follows.
  const bool reusable =
      parser.keep_alive() && s->write_done && !s->write_failed && s->buffer.size() == 0;
  s->parser.reset();
  if (!reusable) CloseSession();
  Complete(std::move(r));
}

void HttpClientConnection::OnReadError(const std::shared_ptr<Session>& s, beast::error_code ec) {
  const bool got_bytes =
      s->body_started || (s->parser && s->parser->got_some()) || s->buffer.size() > 0;
  // A reused keep-alive connection that ends before any byte of the answer: the server
  // closed it while idle (or died before answering); the request was not processed on
  // this connection, so one more try on a fresh connection is safe.
  if (!got_bytes && s->requests > 1 && exchange_->attempts == 0) {
    ++exchange_->attempts;
    CloseSession();
    Connect();
    return;
  }
  Fail(Status::Unavailable(endpoint_->name + ": " + Describe(ec, got_bytes)));
}

void HttpClientConnection::Fail(Status status) {
  CloseSession();
  Complete(std::move(status));
}

void HttpClientConnection::Complete(Result<HttpRawResponse> result) {
  std::shared_ptr<HttpExchange> x = std::move(exchange_);
  exchange_.reset();
  if (!x) return;
  x->connection = nullptr;
  // Start the next queued request before running this one's callback.
  if (on_idle_) on_idle_(*this);
  x->Finish(std::move(result));
}

}  // namespace quiver::client
