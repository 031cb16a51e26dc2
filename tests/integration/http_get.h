#pragma once
// A blocking HTTP/1.1 request to 127.0.0.1 for multi-process tests (metrics, admin and
// statistics endpoints): enough for `Connection: close` exchanges, nothing more.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <string_view>

namespace quiver::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer (connection refused, reset)
  std::string body;
};

inline HttpAnswer HttpExchange(int port, std::string_view method, std::string_view target,
                               std::string_view body = {},
                               std::string_view extra_headers = {}) {
  HttpAnswer answer;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return answer;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return answer;
  }
  std::string request = std::string(method) + " " + std::string(target) +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                        std::string(extra_headers) +
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                        std::string(body);
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      ::close(fd);
      return answer;
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buffer[16384];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) raw.append(buffer, n);
  ::close(fd);
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || raw.size() < 12) return answer;
  answer.status = std::stoi(raw.substr(9, 3));
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end != std::string::npos) answer.body = raw.substr(header_end + 4);
  return answer;
}

inline HttpAnswer HttpGet(int port, std::string_view target) {
  return HttpExchange(port, "GET", target);
}

}  // namespace quiver::testing
