#include "gateway/admin_api.h"

#include <nlohmann/json.hpp>

namespace quiver::gateway {
namespace {

using nlohmann::json;

// Messages may carry bytes from the request (a URL, a model name) that are not UTF-8:
// replaced, never a throw.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

AdminReply Error(const Status& status) {
  return {HttpStatusFor(status.code()), Dump(json{{"error", status.message()}})};
}

AdminReply Ok(const json& body) { return {200, Dump(body)}; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "%xx" escapes and '+' as in a query string; a malformed escape is kept as it is.
std::string DecodeQueryValue(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 &&
               HexDigit(s[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string QueryParam(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == key) {
      return DecodeQueryValue(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

AdminReply Upstreams(Router& router) {
  json list = json::array();
  for (const auto& u : router.Upstreams()) {
    list.push_back({{"url", u.url},
                    {"health", u.health},
                    {"draining", u.draining},
                    {"stale", u.stale},
                    {"in_flight", u.in_flight},
                    {"ready_models", u.ready_models}});
  }
  return Ok({{"upstreams", list}});
}

AdminReply Models(const Router& router) {
  json list = json::array();
  for (const auto& m : router.Load()) {
    list.push_back({{"model", m.model},
                    {"requests_total", m.requests_total},
                    {"succeeded", m.succeeded},
                    {"failed", m.failed},
                    {"rejected", m.rejected},
                    {"queue_us_total", m.queue_ns_total / 1000},
                    {"in_flight", m.in_flight},
                    {"waiting", m.waiting},
                    {"ready_replicas", m.ready_replicas},
                    {"capacity", m.capacity}});
  }
  return Ok({{"models", list}});
}

AdminReply Handle(Router& router, std::string_view method, std::string_view target,
                  std::string_view body) {
  std::string_view path = target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  if (!path.starts_with(kAdminPrefix)) {
    return Error(Status::NotFound("not an admin endpoint: " + std::string(path)));
  }
  path.remove_prefix(kAdminPrefix.size());

  if (path == "upstreams") {
    if (method == "GET") return Upstreams(router);
    if (method == "POST") {
      const json request = json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (!request.is_object() || !request.contains("url") || !request["url"].is_string()) {
        return Error(
            Status::InvalidArgument(R"(expected a JSON body {"url": "grpc://host:port"})"));
      }
      if (Status s = router.AddUpstream(request["url"].get<std::string>()); !s.ok()) {
        return Error(s);
      }
      return Upstreams(router);
    }
    if (method == "DELETE") {
      const std::string url = QueryParam(query, "url");
      if (url.empty()) return Error(Status::InvalidArgument("expected ?url=<upstream URL>"));
      if (Status s = router.RemoveUpstream(url); !s.ok()) return Error(s);
      return Upstreams(router);
    }
    return {405, Dump(json{{"error", "use GET, POST or DELETE on /v2/gateway/upstreams"}})};
  }
  if (path == "models") {
    if (method != "GET") return {405, Dump(json{{"error", "use GET on /v2/gateway/models"}})};
    return Models(router);
  }
  constexpr std::string_view kModels = "models/";
  constexpr std::string_view kRollout = "/rollout";
  if (path.starts_with(kModels) && path.ends_with(kRollout) &&
      path.size() > kModels.size() + kRollout.size()) {
    if (method != "POST") return {405, Dump(json{{"error", "use POST to start a rollout"}})};
    const std::string model(
        path.substr(kModels.size(), path.size() - kModels.size() - kRollout.size()));
    auto steps = router.Rollout(model);
    if (!steps.ok()) return Error(steps.status());
    return Ok({{"model", model}, {"steps", *steps}});
  }
  return Error(Status::NotFound("unknown admin endpoint /v2/gateway/" + std::string(path)));
}

}  // namespace

AdminReply HandleAdmin(Router& router, std::string_view method, std::string_view target,
                       std::string_view body) {
  try {
    return Handle(router, method, target, body);
  } catch (const std::exception& e) {  // never let a request take the gateway down
    return Error(Status::Internal(std::string("admin request failed: ") + e.what()));
  }
}

}  // namespace quiver::gateway
