#pragma once
// Endpoint URLs of the client: the scheme chooses the transport, so switching local and
// remote inference is a one-string change.
//   grpc://host[:port]      KServe v2 gRPC (default port 8001)
//   http://host[:port]      KServe v2 HTTP/REST with the binary tensor extension (8000)
//   local:///path/to/repo   the in-process Engine over a model repository

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quiver::client {

enum class Scheme : uint8_t { kHttp, kGrpc, kLocal };

struct Url {
  Scheme scheme = Scheme::kHttp;
  std::string host;  // remote schemes; IPv6 literals without brackets
  uint16_t port = 0;
  std::string path;  // local: the model repository
  std::string text;  // as given, for messages
};

// INVALID_ARGUMENT naming the URL and what is wrong: no "://", unknown scheme (the
// message lists the known ones), empty host, bad or out-of-range port, a path on a
// remote URL, an empty local path.
Result<Url> ParseUrl(std::string_view text);

}  // namespace quiver::client
