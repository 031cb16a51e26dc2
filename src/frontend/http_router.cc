#include "frontend/http_router.h"

#include "core/strings.h"

#include <algorithm>

#include "protocol/json_messages.h"

namespace quiver::frontend {
namespace {

constexpr std::string_view kJsonType = "application/json";

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string_view BodyText(const HttpRequest& r) {
  return {reinterpret_cast<const char*>(r.body.data()), r.body.size()};
}

HttpReply MethodNotAllowed() { return HttpReply::Error(405, "Method Not Allowed"); }
HttpReply NotFound() { return HttpReply::Error(404, "Not Found"); }

// 401 with the challenge RFC 7235 requires.
HttpReply Unauthenticated(const Status& status) {
  HttpReply reply = HttpReply::Error(status);
  reply.headers.emplace_back("WWW-Authenticate", "Bearer");
  return reply;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// HttpReply

HttpReply HttpReply::Json(int status, std::string json) {
  HttpReply r;
  r.status = status;
  r.content_type = std::string(kJsonType);
  r.body = std::move(json);
  return r;
}

HttpReply HttpReply::Error(const Status& status) {
  return Json(HttpStatusFor(status.code()), protocol::ErrorJson(status.message()));
}

HttpReply HttpReply::Error(int http_status, std::string_view message) {
  return Json(http_status, protocol::ErrorJson(message));
}

HttpReply HttpReply::Empty(int status) {
  HttpReply r;
  r.status = status;
  return r;
}

size_t HttpReply::body_size() const {
  size_t n = body.size();
  for (const Buffer& b : chunks) n += b.size();
  return n;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex(s[i + 1]);
    const int lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Routing

namespace {

// Splits "/v2/models/m" into decoded segments; nullopt for a malformed path.
std::optional<std::vector<std::string>> Segments(std::string_view target) {
  const size_t q = target.find_first_of("?#");
  std::string_view path = target.substr(0, q);
  if (path.empty() || path.front() != '/') return std::nullopt;
  path.remove_prefix(1);
  std::vector<std::string> out;
  while (true) {
    const size_t slash = path.find('/');
    auto decoded = PercentDecode(path.substr(0, slash));
    if (!decoded || decoded->empty()) return std::nullopt;
    out.push_back(std::move(*decoded));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool IsModelAction(std::string_view a) {
  return a == "ready" || a == "config" || a == "infer" || a == "stats";
}
bool IsUnsupportedModelAction(std::string_view a) {
  return a == "generate" || a == "generate_stream";
}
bool IsShmAction(std::string_view a) {
  return a == "status" || a == "register" || a == "unregister";
}

}  // namespace

HttpRoute ParseRoute(std::string_view target) {
  HttpRoute r;
  auto segs_opt = Segments(target);
  if (!segs_opt || segs_opt->empty() || (*segs_opt)[0] != "v2") return r;
  const std::vector<std::string>& s = *segs_opt;
  const size_t n = s.size();
  if (n == 1) {
    r.kind = HttpRoute::kServerMetadata;
    return r;
  }
  if (s[1] == "health" && n == 3 && (s[2] == "live" || s[2] == "ready")) {
    r.kind = HttpRoute::kHealth;
    r.action = s[2];
  } else if (s[1] == "models" && n >= 3) {
    if (n == 3 && s[2] == "stats") {
      r.kind = HttpRoute::kStatsAll;
      return r;
    }
    r.model = s[2];
    size_t i = 3;
    if (n >= 5 && s[3] == "versions") {
      if (!AllDigits(s[4])) return r;  // Triton's version pattern is [0-9]+
      r.version = s[4];
      i = 5;
    }
    if (n == i) {
      r.kind = HttpRoute::kModel;
    } else if (n == i + 1 && IsModelAction(s[i])) {
      r.kind = HttpRoute::kModel;
      r.action = s[i];
    } else if (n == i + 1 && IsUnsupportedModelAction(s[i])) {
      r.kind = HttpRoute::kUnsupported;
      r.action = s[i];
    } else if (n == i + 2 && s[i] == "trace" && s[i + 1] == "setting") {
      r.kind = HttpRoute::kUnsupported;
      r.action = "trace";
    }
  } else if (s[1] == "repository") {
    if (n == 3 && s[2] == "index") {
      r.kind = HttpRoute::kRepoIndex;
    } else if (n == 5 && s[2] == "models" && (s[4] == "load" || s[4] == "unload")) {
      r.kind = HttpRoute::kRepoControl;
      r.model = s[3];
      r.action = s[4];
    } else if ((n == 4 && s[3] == "index") ||
               (n == 6 && s[3] == "models" && (s[5] == "load" || s[5] == "unload"))) {
      r.kind = HttpRoute::kRepoNamed;
    }
  } else if (s[1] == "systemsharedmemory" || s[1] == "cudasharedmemory") {
    const HttpRoute::Kind kind = s[1] == "systemsharedmemory" ? HttpRoute::kSystemShm : HttpRoute::kCudaShm;
    if (n == 3 && IsShmAction(s[2])) {
      r.kind = kind;
      r.action = s[2];
    } else if (n == 5 && s[2] == "region" && IsShmAction(s[4])) {
      r.kind = kind;
      r.region = s[3];
      r.action = s[4];
    }
  } else if ((n == 3 && s[1] == "trace" && s[2] == "setting") || (n == 2 && s[1] == "logging")) {
    r.kind = HttpRoute::kUnsupported;
    r.action = s[1];
  }
  return r;
}

HttpRouter::HttpRouter(InferenceService& service, SharedMemoryManager& shm,
                       BlockingExecutor blocking, size_t max_body_bytes,
                       Authenticator authenticator)
    : service_(service),
      shm_(shm),
      blocking_(std::move(blocking)),
      max_body_bytes_(max_body_bytes),
      authenticator_(std::move(authenticator)) {}

HttpRouter::~HttpRouter() = default;

void HttpRouter::SetExtension(std::string prefix, ExtensionHandler handler) {
  extension_prefix_ = std::move(prefix);
  extension_ = std::move(handler);
}

void HttpRouter::Handle(const HttpRequest& request, HttpResponder respond) {
  const HttpRoute route = ParseRoute(request.target);
  const bool get = request.method == HttpMethod::kGet;
  const bool post = request.method == HttpMethod::kPost;
  std::string tenant;
  if (authenticator_ && route.kind != HttpRoute::kHealth) {
    auto who = authenticator_(BearerToken(request.authorization));
    if (!who.ok()) {
      respond(Unauthenticated(who.status()));
      return;
    }
    tenant = std::move(who).value();
  }
  // Extensions (the gateway's admin API) need a token too: only health is open.
  if (extension_ && request.target.starts_with(extension_prefix_)) {
    std::string_view method = request.method == HttpMethod::kGet      ? "GET"
                              : request.method == HttpMethod::kPost   ? "POST"
                              : request.method == HttpMethod::kDelete ? "DELETE"
                                                                      : "OTHER";
    blocking_([this, method, target = std::string(request.target),
               body = std::string(BodyText(request)), respond = std::move(respond)] {
      auto [status, json] = extension_(method, target, body);
      respond(HttpReply::Json(status, std::move(json)));
    });
    return;
  }
  switch (route.kind) {
    case HttpRoute::kNotFound: respond(NotFound()); return;
    case HttpRoute::kServerMetadata:
      respond(get ? ServerMetadata() : MethodNotAllowed());
      return;
    case HttpRoute::kHealth: {
      if (!get) {
        respond(MethodNotAllowed());
        return;
      }
      // As Triton's HandleServerHealth: 200 or 400, both with an empty body.
      const bool ok = route.action == "live" ? service_.Live() : service_.Ready();
      respond(HttpReply::Empty(ok ? 200 : 400));
      return;
    }
    case HttpRoute::kStatsAll: {
      if (!get) {
        respond(MethodNotAllowed());
        return;
      }
      auto stats = service_.GetStatistics("", "");
      respond(stats.ok() ? HttpReply::Json(200, protocol::StatisticsJson(*stats))
                         : HttpReply::Error(stats.status()));
      return;
    }
    case HttpRoute::kModel:
      if (route.action == "infer") {
        if (!post) {
          respond(MethodNotAllowed());
          return;
        }
        HandleInfer(request, route, std::move(tenant), respond);
        return;
      }
      if (!get) {
        respond(MethodNotAllowed());
        return;
      }
      HandleModel(route, respond);
      return;
    case HttpRoute::kRepoIndex:
    case HttpRoute::kRepoControl:
      if (!post) {
        respond(MethodNotAllowed());
        return;
      }
      HandleRepository(request, route, respond);
      return;
    case HttpRoute::kRepoNamed:
      respond(post ? HttpReply::Error(Status::Unsupported(
                         "'repository_name' specification is not supported"))
                   : MethodNotAllowed());
      return;
    case HttpRoute::kSystemShm:
    case HttpRoute::kCudaShm: {
      const bool status_action = route.action == "status";
      if ((status_action && !get) || (!status_action && !post)) {
        respond(MethodNotAllowed());
        return;
      }
      respond(route.kind == HttpRoute::kCudaShm ? HandleCudaShm(route)
                                                : HandleSystemShm(request, route));
      return;
    }
    case HttpRoute::kUnsupported:
      respond(HttpReply::Error(
          Status::Unsupported("the '" + route.action + "' endpoint is not supported")));
      return;
  }
  respond(NotFound());
}

HttpReply HttpRouter::ServerMetadata() {
  auto metadata = service_.GetServerMetadata();
  if (!metadata.ok()) return HttpReply::Error(metadata.status());
  // The frontend itself provides these two extensions, whatever serves behind it.
  for (std::string_view ext : {"binary_tensor_data", "system_shared_memory"}) {
    auto& exts = metadata->extensions;
    if (std::find(exts.begin(), exts.end(), ext) == exts.end()) exts.emplace_back(ext);
  }
  return HttpReply::Json(200, protocol::ServerMetadataJson(*metadata));
}

void HttpRouter::HandleModel(const HttpRoute& route, HttpResponder& respond) {
  const std::string& m = route.model;
  const std::string& v = route.version;
  if (route.action.empty()) {
    auto metadata = service_.GetModelMetadata(m, v);
    if (!metadata.ok()) {
      respond(HttpReply::Error(metadata.status()));
      return;
    }
    // Asked for one version: report that one, as Triton does.
    if (!v.empty()) metadata->versions = {v};
    respond(HttpReply::Json(200, protocol::ModelMetadataJson(*metadata)));
  } else if (route.action == "ready") {
    // As Triton's HandleModelReady: an unknown model or version is just "not ready", a 400
    // with this fixed text (the model and version are in the URL).
    respond(service_.ModelReady(m, v) ? HttpReply::Empty(200)
                                      : HttpReply::Error(400, "Model version not ready"));
  } else if (route.action == "config") {
    auto config = service_.GetModelConfig(m, v);
    if (!config.ok()) {
      respond(HttpReply::Error(config.status()));
      return;
    }
    auto json = protocol::ModelConfigJson(*config);
    respond(json.ok() ? HttpReply::Json(200, std::move(json).value())
                      : HttpReply::Error(json.status()));
  } else if (route.action == "stats") {
    auto stats = service_.GetStatistics(m, v);
    respond(stats.ok() ? HttpReply::Json(200, protocol::StatisticsJson(*stats))
                       : HttpReply::Error(stats.status()));
  } else {
    respond(NotFound());
  }
}

void HttpRouter::HandleRepository(const HttpRequest& request, const HttpRoute& route,
                                  HttpResponder& respond) {
  const std::string_view body = BodyText(request);
  if (route.kind == HttpRoute::kRepoIndex) {
    auto ready_only = protocol::ParseRepositoryIndexRequest(body);
    if (!ready_only.ok()) {
      respond(HttpReply::Error(ready_only.status()));
      return;
    }
    // Index() rescans the repository directories: keep it off the I/O threads.
    blocking_([this, ready = *ready_only, respond = std::move(respond)] {
      auto index = service_.Index();
      respond(index.ok() ? HttpReply::Json(200, protocol::RepositoryIndexJson(*index, ready))
                         : HttpReply::Error(index.status()));
    });
    return;
  }
  const bool load = route.action == "load";
  Status parsed =
      load ? protocol::ParseModelLoadRequest(body) : protocol::ParseModelUnloadRequest(body);
  if (!parsed.ok()) {
    respond(HttpReply::Error(parsed));
    return;
  }
  blocking_([this, load, model = route.model, respond = std::move(respond)] {
    Status s = load ? service_.Load(model) : service_.Unload(model);
    // As Triton: unloading a model that is not loaded (or not known) succeeds.
    if (!load && s.code() == StatusCode::kNotFound) s = Status::Ok();
    respond(s.ok() ? HttpReply::Json(200, "") : HttpReply::Error(s));
  });
}

// This server has no CUDA: as a Triton built without GPU support, the status lists no region,
// unregistering succeeds (there is nothing to unregister) and registering is refused with
// Triton's words. Clients that clean up with unregister_cuda_shared_memory() keep working.
HttpReply HttpRouter::HandleCudaShm(const HttpRoute& route) {
  if (route.action == "status") {
    if (route.region.empty()) return HttpReply::Json(200, "[]");
    return HttpReply::Error(
        Status::NotFound("Unable to find cuda shared memory region: '" + route.region + "'"));
  }
  if (route.action == "register") {
    if (route.region.empty()) {
      return HttpReply::Error(Status::InvalidArgument(
          "'region name' is necessary to register cuda shared memory region"));
    }
    return HttpReply::Error(Status::InvalidArgument(
        "failed to register CUDA shared memory region: '" + route.region +
        "', GPUs not supported"));
  }
  return HttpReply::Json(200, "");
}

HttpReply HttpRouter::HandleSystemShm(const HttpRequest& request, const HttpRoute& route) {
  if (route.action == "status") {
    auto regions = shm_.Regions(route.region);
    if (!regions.ok()) return HttpReply::Error(regions.status());
    std::vector<protocol::SystemShmStatus> status;
    status.reserve(regions->size());
    for (const SharedMemoryRegion& r : *regions) {
      status.push_back({r.name, r.key, r.offset, r.byte_size});
    }
    return HttpReply::Json(200, protocol::SystemShmStatusJson(status));
  }
  if (route.action == "register") {
    if (route.region.empty()) {
      return HttpReply::Error(Status::InvalidArgument(
          "'region name' is necessary to register system shared memory region"));
    }
    auto req = protocol::ParseSystemShmRegisterRequest(BodyText(request));
    if (!req.ok()) return HttpReply::Error(req.status());
    Status s = shm_.RegisterSystem(route.region, req->key, req->offset, req->byte_size);
    return s.ok() ? HttpReply::Json(200, "") : HttpReply::Error(s);
  }
  // Unregistering an unknown region succeeds, as with Triton.
  Status s = shm_.Unregister(route.region);
  if (!s.ok() && s.code() != StatusCode::kNotFound) return HttpReply::Error(s);
  return HttpReply::Json(200, "");
}

}  // namespace quiver::frontend
