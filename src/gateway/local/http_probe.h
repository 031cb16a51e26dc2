#pragma once
// HttpGet: `GET path` on 127.0.0.1:port, for readiness checks of children (Prometheus's
// /-/ready, a server's /v2/health/ready) and tests, without a client library.

#include <chrono>
#include <string>
#include <string_view>

namespace quiver::gateway {

struct HttpReply {
  int status = -1;   // -1: no answer (refused, reset, timed out, not HTTP)
  std::string body;  // everything after the headers
};

// One request with `Connection: close`, read to the end; `timeout` bounds each socket
// operation.
HttpReply HttpGet(int port, std::string_view path, std::chrono::milliseconds timeout);

// HttpGet's status code only.
int HttpGetStatus(int port, std::string_view path, std::chrono::milliseconds timeout);

// A port that was free on 127.0.0.1 a moment ago (for programs that cannot bind port 0
// and report it); 0 on failure.
int PickFreePort();

}  // namespace quiver::gateway
