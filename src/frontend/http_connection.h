#pragma once
// HttpConnection: one keep-alive HTTP/1.1 connection of HttpServer (internal to
// src/frontend). Reads a request (header, then body into a SharedBody), hands it to the
// HttpRouter, and writes the reply when the router's responder fires, possibly from a
// service thread: replies come back to the connection's strand through HttpServer's
// ReplyMailbox, which the server closes before its io_context goes away.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "frontend/http_body.h"
#include "frontend/http_reply_mailbox.h"
#include "frontend/http_router.h"

namespace quiver::frontend {

struct ConnectionSettings {
  size_t max_body_bytes = 0;
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::milliseconds read_timeout{0};
  // Several I/O threads: a reply from a service thread is posted to its connection's strand
  // from the mailbox's drain rather than sent inline, so that the drain spreads them.
  bool spread_replies = false;
};

// All methods are called on (or post to) the connection's strand. Owned by the server's
// registry through a shared_ptr; asynchronous operations hold shared_ptrs as well, service
// callbacks only weak ones.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  using ClosedCallback = std::function<void(HttpConnection*)>;

  HttpConnection(boost::asio::ip::tcp::socket socket, HttpRouter& router,
                 ConnectionSettings settings, std::shared_ptr<ReplyMailbox> mailbox,
                 const std::atomic<bool>& stopping, ClosedCallback on_closed);

  // Starts reading requests.
  void Start();
  // Server stopping: close now if idle between requests, else after the current reply.
  void Shutdown();
  // Close immediately (Stop's deadline passed).
  void ForceClose();

 private:
  enum class State { kIdle, kReading, kBusy, kClosed };

  void ReadHeader();
  void OnHeader(boost::beast::error_code ec);
  void ReadBody();
  void OnBody(boost::beast::error_code ec);
  void OnRequest(boost::beast::error_code ec);
  void Dispatch();
  void OnReadError(boost::beast::error_code ec);
  // Runs Send on the connection's strand: inline if the strand is free and this thread runs
  // the io_context (`dispatch`), else queued.
  void PostSend(HttpReply reply, uint64_t seq, bool dispatch);
  void Send(HttpReply reply, uint64_t seq);
  void OnWrite(boost::beast::error_code ec, bool close);
  // Replies with an error and closes, draining what the client still sends so that it
  // can read the reply (no reset while its request is unread).
  void FailAndLinger(int status, std::string message);
  void Linger();
  void Drain();
  void Close();
  HttpResponder MakeResponder();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  HttpRouter& router_;
  const ConnectionSettings settings_;
  const std::shared_ptr<ReplyMailbox> mailbox_;
  const std::atomic<bool>& stopping_;
  ClosedCallback on_closed_;

  State state_ = State::kIdle;
  bool keep_alive_ = true;
  uint64_t request_seq_ = 0;  // numbers requests; a reply must carry the current one
  std::optional<boost::beast::http::request_parser<SharedBody>> parser_;
  boost::beast::http::request<SharedBody> request_;
  SharedBody::value_type body_;  // a Content-Length body being read straight into place
  std::optional<boost::beast::http::response<GatherBody>> response_;
  boost::beast::http::response<boost::beast::http::empty_body> continue_;
  std::unique_ptr<char[]> drain_;  // allocated when lingering
};

}  // namespace quiver::frontend
