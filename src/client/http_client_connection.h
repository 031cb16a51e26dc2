#pragma once
// Internal to the HTTP transport (http_service.cc and its tests): one HTTP/1.1 keep-alive
// connection to a server, running one exchange (request + response) at a time on an
// Asio executor, and the exchange itself.
//
// Threading: a connection and the exchange it runs are touched only by the thread(s)
// running the connection's executor, which must be single-threaded (an io_context run by
// one thread, or a strand). An exchange is built on any thread before it is handed over.
//
// Zero copy: the request goes to the socket as one scatter-gather list (HTTP head, JSON
// header, tensor Buffers); a response body with Content-Length is read straight into one
// allocation with protocol::kJsonPadding zero bytes after it (bytes that arrived with the
// HTTP head are copied once).
//
// Keep-alive: a request that fails on a reused connection before any byte of its response
// arrived (the server closed the idle connection, or died before answering) is retried
// once on a fresh connection; any other transport failure finishes the exchange with
// UNAVAILABLE naming the endpoint.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/remote_service.h"
#include "core/status.h"
#include "core/tensor.h"
#include "protocol/http_infer_codec.h"

namespace quiver::client {

// Where the server is; shared (immutable) by every connection of a service.
struct HttpEndpoint {
  std::string host;
  uint16_t port = 0;
  std::string name;         // "http://host:port", prefixed to transport errors
  std::string host_header;  // "host:port" ("[::1]:port" for IPv6 literals)
  // "Authorization: Bearer <token>\r\n", sent with every request; "" without a token.
  std::string authorization;
  std::chrono::milliseconds connect_timeout{3000};
  // Set when `host` is an IP literal: no resolver round trip.
  std::optional<boost::asio::ip::address> address;

  // From RemoteOptions' host, port, connect_timeout and token (which must pass CheckToken).
  static std::shared_ptr<const HttpEndpoint> Make(const RemoteOptions& options);
};

// A received response. `storage` owns the body plus at least kJsonPadding readable zero
// bytes after it, so the JSON parser works in place and binary tensors borrow it.
struct HttpRawResponse {
  int status = 0;
  std::shared_ptr<std::byte[]> storage;
  size_t size = 0;
  size_t padding = 0;  // readable bytes after the body
  std::optional<uint64_t> header_length;  // Inference-Header-Content-Length

  std::string_view text() const {
    return {reinterpret_cast<const char*>(storage.get()), storage ? size : 0};
  }
  protocol::InferBody AsInferBody() const;
};

class HttpClientConnection;

// One request and what to do with its outcome. Subclasses implement OnFinish, which runs
// exactly once on the connection's executor.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  // Request. `target` is the already percent-encoded path; the body is `json` followed by
  // `chunks` (no body at all for GET with both empty).
  const char* method = "GET";
  std::string target;
  std::string json;
  std::vector<Buffer> chunks;
  std::optional<size_t> header_length;  // sent as Inference-Header-Content-Length
  // When the caller stops waiting (the owner arms a timer; max() = never).
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();

  // Delivers the outcome unless already delivered; cancels the deadline timer.
  void Finish(Result<HttpRawResponse> result);
  bool finished() const { return finished_; }

  // Owner bookkeeping (executor thread only).
  std::optional<boost::asio::steady_timer> timer;
  HttpClientConnection* connection = nullptr;  // set while running on a connection
  int attempts = 0;                            // transparent retries so far

 protected:
  virtual void OnFinish(Result<HttpRawResponse> result) = 0;

 private:
  bool finished_ = false;
};

// One keep-alive connection. Create with std::make_shared; executor-thread only.
class HttpClientConnection : public std::enable_shared_from_this<HttpClientConnection> {
 public:
  // Called after an exchange finished on this connection (before the exchange's OnFinish),
  // so the owner can start the next one right away.
  using IdleFn = std::function<void(HttpClientConnection&)>;

  HttpClientConnection(boost::asio::any_io_executor executor,
                       std::shared_ptr<const HttpEndpoint> endpoint, IdleFn on_idle);
  ~HttpClientConnection();
  HttpClientConnection(const HttpClientConnection&) = delete;
  HttpClientConnection& operator=(const HttpClientConnection&) = delete;

  bool busy() const { return exchange_ != nullptr; }
  bool open() const { return session_ != nullptr; }

  // Runs `exchange` (precondition: !busy()), connecting first when the connection is
  // closed. The exchange is finished through Finish() unless Abort() takes it back.
  void Start(std::shared_ptr<HttpExchange> exchange);

  // Closes the socket and detaches the current exchange (returned unfinished, or null).
  std::shared_ptr<HttpExchange> Abort();

 private:
  struct Session;

  void Connect();
  void OnConnected(const std::shared_ptr<Session>& s, boost::system::error_code ec);
  void Send();
  void ReadHeader(const std::shared_ptr<Session>& s);
  void OnHeader(const std::shared_ptr<Session>& s, boost::system::error_code ec);
  void OnBody(const std::shared_ptr<Session>& s, boost::system::error_code ec);
  void OnWrite(const std::shared_ptr<Session>& s, boost::system::error_code ec);
  void OnResponse(const std::shared_ptr<Session>& s);
  void OnReadError(const std::shared_ptr<Session>& s, boost::system::error_code ec);
  void Fail(Status status);
  void Complete(Result<HttpRawResponse> result);
  void CloseSession();

  boost::asio::any_io_executor executor_;
  std::shared_ptr<const HttpEndpoint> endpoint_;
  IdleFn on_idle_;
  std::shared_ptr<Session> session_;        // null while closed
  std::shared_ptr<HttpExchange> exchange_;  // the running exchange, or null
};

// Percent-encodes one path segment (model names may hold any character).
std::string EncodePathSegment(std::string_view segment);

}  // namespace quiver::client
