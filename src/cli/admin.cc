#include "cli/admin.h"

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <string_view>

#include "client/url.h"

namespace quiver::cli {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

std::string Encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

CLI::App* AddAdminCommand(CLI::App& app, AdminOptions& o) {
  auto* cmd = app.add_subcommand(
      "admin",
      "The gateway's admin API: upstreams | add URL | remove URL | models | rollout MODEL");
  cmd->add_option("-g,--gateway", o.gateway, "the gateway's HTTP URL")->capture_default_str();
  cmd->add_option("--token", o.token, "bearer token (default: $QUIVER_TOKEN)")
      ->envname("QUIVER_TOKEN");
  cmd->add_option("action", o.words, "upstreams | add URL | remove URL | models | rollout MODEL")
      ->required()
      ->expected(1, 2);
  return cmd;
}

int RunAdmin(const AdminOptions& o) {
  const std::string& action = o.words.at(0);
  const std::string arg = o.words.size() > 1 ? o.words[1] : "";
  http::verb verb = http::verb::get;
  std::string target;
  std::string body;
  if (action == "upstreams" && arg.empty()) {
    target = "/v2/gateway/upstreams";
  } else if (action == "models" && arg.empty()) {
    target = "/v2/gateway/models";
  } else if (action == "add" && !arg.empty()) {
    verb = http::verb::post;
    target = "/v2/gateway/upstreams";
    body = "{\"url\": " + JsonString(arg) + "}";
  } else if (action == "remove" && !arg.empty()) {
    verb = http::verb::delete_;
    target = "/v2/gateway/upstreams?url=" + Encode(arg);
  } else if (action == "rollout" && !arg.empty()) {
    verb = http::verb::post;
    target = "/v2/gateway/models/" + Encode(arg) + "/rollout";
  } else {
    std::fprintf(stderr,
                 "quiver admin: expected upstreams | add URL | remove URL | models | "
                 "rollout MODEL\n");
    return 2;
  }
  auto url = client::ParseUrl(o.gateway);
  if (!url.ok() || url->scheme != client::Scheme::kHttp) {
    std::fprintf(stderr, "quiver admin: --gateway must be an http:// URL (got '%s')\n",
                 o.gateway.c_str());
    return 2;
  }
  try {
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.connect(resolver.resolve(url->host, std::to_string(url->port)));
    http::request<http::string_body> request(verb, target, 11);
    request.set(http::field::host, url->host);
    if (!o.token.empty()) request.set(http::field::authorization, "Bearer " + o.token);
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    std::printf("%s\n", response.body().c_str());
    if (response.result_int() >= 400) {
      std::fprintf(stderr, "quiver admin: %s answered %d\n", o.gateway.c_str(),
                   response.result_int());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quiver admin: %s: %s\n", o.gateway.c_str(), e.what());
    return 1;
  }
}

}  // namespace quiver::cli
