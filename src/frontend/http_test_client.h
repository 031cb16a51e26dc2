#pragma once
// A minimal blocking HTTP/1.1 client for the frontend's tests: sends raw bytes or whole
// requests over one keep-alive connection to 127.0.0.1 and reads responses with Beast's
// parser. A 60 s receive timeout turns a server that never answers into a test failure
// instead of a hang (it is a guard, not a synchronisation point).

#include <sys/socket.h>
#include <sys/time.h>

// GCC 12 reports a false -Wmaybe-uninitialized inside Beast's response parser when
// optimising with sanitizers; the warning is in Boost, not here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#pragma GCC diagnostic pop

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace quiver::frontend::testing {

struct TestResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool keep_alive = true;

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class TestClient {
 public:
  explicit TestClient(uint16_t port) : socket_(ioc_) {
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), port);
    socket_.connect(ep);
    timeval tv{60, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

  void SendRaw(std::string_view bytes) {
    boost::system::error_code ec;
    boost::asio::write(socket_, boost::asio::buffer(bytes.data(), bytes.size()), ec);
  }

  // Reads one response; nullopt when the connection ends (or times out) first.
  std::optional<TestResponse> Read() {
    namespace http = boost::beast::http;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    boost::system::error_code ec;
    http::read(socket_, buffer_, parser, ec);
    if (ec) return std::nullopt;
    auto& res = parser.get();
    TestResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(field.value());
    }
    out.body = std::move(res.body());
    out.keep_alive = res.keep_alive();
    return out;
  }

  // Sends a request built from the arguments (Content-Length added) and reads the reply.
  TestResponse Request(std::string method, const std::string& target, std::string_view body = {},
                       const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    std::string raw = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n";
    for (const auto& [k, v] : headers) raw += k + ": " + v + "\r\n";
    if (method != "GET" || !body.empty()) {
      raw += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    raw += "\r\n";
    raw.append(body.data(), body.size());
    SendRaw(raw);
    auto r = Read();
    return r ? *r : TestResponse{};
  }

  TestResponse Get(const std::string& target) { return Request("GET", target); }
  TestResponse Post(const std::string& target, std::string_view body = {},
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return Request("POST", target, body, headers);
  }

  // True when the server has closed the connection (reads EOF or a reset).
  bool PeerClosed() {
    char c;
    boost::system::error_code ec;
    socket_.read_some(boost::asio::buffer(&c, 1), ec);
    return static_cast<bool>(ec);
  }

  // Half-closes: the server sees end-of-stream after what was sent.
  void ShutdownSend() {
    boost::system::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  }

  void Close() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

}  // namespace quiver::frontend::testing
