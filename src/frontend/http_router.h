#pragma once
// HttpRouter: maps KServe v2 / Triton REST requests onto an InferenceService and the
// SharedMemoryManager. Transport-free (no Beast, no sockets): HttpServer's connections
// hand it a parsed request and send back the HttpReply it produces, so the routing and
// status-code logic can be tested and reused without a network.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "frontend/authenticator.h"
#include "frontend/shared_memory.h"
#include "protocol/http_infer_codec.h"
#include "service/inference_service.h"

namespace quiver::frontend {

enum class HttpMethod : uint8_t { kGet, kPost, kDelete, kOther };

// One received request. The body is owned by `keepalive` (tensors borrow it).
struct HttpRequest {
  HttpMethod method = HttpMethod::kGet;
  std::string_view target;  // origin-form, may carry a query string
  std::span<const std::byte> body;
  size_t body_padding = 0;  // readable bytes after the body (see protocol::InferBody)
  std::shared_ptr<const void> keepalive;
  std::optional<std::string_view> header_length;  // Inference-Header-Content-Length
  std::string_view content_encoding;              // Content-Encoding, empty if none
  std::string_view accept_encoding;               // Accept-Encoding, empty if none
  std::string_view authorization;  // Authorization, empty if none; read only with auth on
};

// What to send back. `prepare`, when set, runs on the connection's executor just before
// sending and may rewrite the reply (the infer handler encodes responses there, off the
// backend's thread).
struct HttpReply {
  int status = 200;
  std::string content_type;      // no Content-Type header when empty
  std::string body;              // sent first (JSON)
  std::vector<Buffer> chunks;    // sent after `body`, without copying (binary tensors)
  std::optional<size_t> header_length;  // Inference-Header-Content-Length, if any
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::function<void(HttpReply&)> prepare;
  // The engine batch this reply was delivered with (InferResponse::delivery_batch), if any:
  // the I/O threads are woken once after the batch's last reply. Valid only while the
  // engine's callback runs; the responder takes it.
  DeliveryBatch* delivery_batch = nullptr;

  static HttpReply Json(int status, std::string json);
  // {"error": message} with the status from HttpStatusFor(status.code()).
  static HttpReply Error(const Status& status);
  static HttpReply Error(int http_status, std::string_view message);
  static HttpReply Empty(int status = 200);
  size_t body_size() const;
};

// Where a request goes: the endpoint and the names taken from the path.
struct HttpRoute {
  enum Kind {
    kNotFound,
    kServerMetadata,
    kHealth,       // action: live | ready
    kStatsAll,     // GET v2/models/stats
    kModel,        // action: "" (metadata) | ready | config | infer | stats
    kRepoIndex,
    kRepoControl,  // action: load | unload
    kRepoNamed,    // v2/repository/{name}/...: UNSUPPORTED, as in Triton
    kSystemShm,    // action: status | register | unregister; region may be empty
    kCudaShm,      // UNSUPPORTED
    kUnsupported,  // Triton endpoints Quiver does not implement (trace, logging, generate)
  };
  Kind kind = kNotFound;
  std::string model;    // percent-decoded
  std::string version;  // digits only, empty for the default version
  std::string action;
  std::string region;
};

// Parses an origin-form target (the query string is ignored). Path segments are
// percent-decoded; a version segment must be all digits (otherwise kNotFound, as Triton's
// routes are written).
HttpRoute ParseRoute(std::string_view target);

// Delivers the reply; called exactly once per Handle, on any thread (possibly inline).
using HttpResponder = std::function<void(HttpReply)>;
// Runs a task that may block for long (model load/unload, repository scans) off the I/O
// threads.
using BlockingExecutor = std::function<void(std::function<void()>)>;

// Thread-safe: Handle may run concurrently on many connections.
class HttpRouter {
 public:
  // `max_body_bytes` also bounds decompressed request bodies. With an `authenticator`,
  // every endpoint but v2/health/* needs a bearer token (401 otherwise).
  HttpRouter(InferenceService& service, SharedMemoryManager& shm, BlockingExecutor blocking,
             size_t max_body_bytes, Authenticator authenticator = {});
  ~HttpRouter();
  HttpRouter(const HttpRouter&) = delete;
  HttpRouter& operator=(const HttpRouter&) = delete;

  // Answers `request` through `respond`. Infer never blocks: the reply comes from the
  // service's callback.
  void Handle(const HttpRequest& request, HttpResponder respond);
  // Whether requests must carry a token (the connection reads Authorization only then).
  bool authenticates() const { return static_cast<bool>(authenticator_); }

  // Endpoints beyond KServe's (the gateway's admin API): requests whose path starts with
  // `prefix` go to `handler` on the blocking executor. Set before serving.
  using ExtensionHandler = std::function<std::pair<int, std::string>(
      std::string_view method, std::string_view target, std::string_view body)>;
  void SetExtension(std::string prefix, ExtensionHandler handler);

 private:
  void HandleModel(const HttpRoute& route, HttpResponder& respond);
  void HandleInfer(const HttpRequest& request, const HttpRoute& route, std::string tenant,
                   HttpResponder& respond);
  void HandleRepository(const HttpRequest& request, const HttpRoute& route,
                        HttpResponder& respond);
  HttpReply HandleSystemShm(const HttpRequest& request, const HttpRoute& route);
  HttpReply HandleCudaShm(const HttpRoute& route);
  HttpReply ServerMetadata();

  InferenceService& service_;
  SharedMemoryManager& shm_;
  BlockingExecutor blocking_;
  std::string extension_prefix_;
  ExtensionHandler extension_;
  size_t max_body_bytes_;
  Authenticator authenticator_;
};

// Percent-decodes a URL path segment; nullopt for a malformed escape.
std::optional<std::string> PercentDecode(std::string_view segment);

}  // namespace quiver::frontend
