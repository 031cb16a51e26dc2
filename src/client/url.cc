#include "client/url.h"

#include <charconv>

namespace quiver::client {
namespace {

Status Malformed(std::string_view text, std::string_view why) {
  return Status::InvalidArgument("malformed URL '" + std::string(text) + "': " + std::string(why));
}

}  // namespace

Result<Url> ParseUrl(std::string_view text) {
  Url url;
  url.text = std::string(text);
  const size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return Malformed(text, "expected scheme://..., e.g. grpc://127.0.0.1:8001, "
                           "http://127.0.0.1:8000 or local:///path/to/model-repository");
  }
  const std::string_view scheme = text.substr(0, sep);
  std::string_view rest = text.substr(sep + 3);
  if (scheme == "local") {
    url.scheme = Scheme::kLocal;
    if (rest.empty()) return Malformed(text, "local:// needs a model repository path");
    url.path = std::string(rest);
    return url;
  }
  uint16_t default_port = 0;
  if (scheme == "http") {
    url.scheme = Scheme::kHttp;
    default_port = 8000;
  } else if (scheme == "grpc") {
    url.scheme = Scheme::kGrpc;
    default_port = 8001;
  } else {
    return Status::InvalidArgument("unknown URL scheme '" + std::string(scheme) + "' in '" +
                                   std::string(text) +
                                   "': expected grpc://, http:// or local://");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);  // "http://h:1/" is common
  if (rest.find('/') != std::string_view::npos) {
    return Malformed(text, "a remote URL has no path (the model is chosen per call)");
  }
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // [::1]:8001
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return Malformed(text, "unclosed '[' in the host");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Malformed(text, "expected ':port' after ']'");
      port = after.substr(1);
      if (port.empty()) return Malformed(text, "empty port");
    }
  } else if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return Malformed(text, "empty port");
  }
  if (host.empty()) return Malformed(text, "empty host");
  url.host = std::string(host);
  url.port = default_port;
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return Malformed(text, "port '" + std::string(port) + "' is not a number in 1..65535");
    }
    url.port = static_cast<uint16_t>(value);
  }
  return url;
}

}  // namespace quiver::client
