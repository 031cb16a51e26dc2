#pragma once
// HttpServer: the KServe v2 HTTP/REST frontend (Triton-compatible, with the binary tensor
// data, system shared memory, model repository, model configuration and statistics
// extensions) over any InferenceService. Boost.Beast, HTTP/1.1 with keep-alive; Beast is
// kept out of this header.
//
// Threading: `threads` I/O threads run every connection; each connection is serialised on
// its own strand. Inference never blocks an I/O thread: the service's callback (any
// thread) posts the reply back to the connection. Model load/unload and repository scans
// run on a separate small pool.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"
#include "frontend/authenticator.h"
#include "frontend/shared_memory.h"
#include "service/inference_service.h"

namespace quiver::frontend {

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8000;  // 0 picks an ephemeral port; see HttpServer::port()
  int threads = 0;       // I/O threads; 0 = one per CPU this process may run on (UsableCpus)
  // Largest request body accepted; larger ones get 413 and the connection is closed.
  size_t max_body_bytes = size_t{1} << 30;
  // A keep-alive connection waiting this long for its next request is closed.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
  // Time allowed to receive one request (headers and body) once it has started.
  std::chrono::milliseconds read_timeout{std::chrono::minutes(2)};
  // Stop() waits this long for in-flight requests before closing their connections.
  std::chrono::milliseconds stop_timeout{std::chrono::seconds(10)};
  // Endpoints beyond KServe's under `extension_prefix` (the gateway's admin API, e.g.
  // "/v2/gateway/"): `extension(method, target, body)` runs on the blocking pool and returns
  // the HTTP status and a JSON body. Empty: none.
  std::string extension_prefix;
  std::function<std::pair<int, std::string>(std::string_view method, std::string_view target,
                                            std::string_view body)>
      extension;
  // Empty: auth off (every caller is tenant ""). Set: every endpoint but v2/health/live and
  // v2/health/ready needs `Authorization: Bearer <token>` (401 otherwise).
  Authenticator authenticator;
};

// Serves `service` and `shm`, which must outlive the server. Start/Stop/port are
// thread-safe; Stop is idempotent and runs from the destructor too.
class HttpServer {
 public:
  HttpServer(InferenceService& service, SharedMemoryManager& shm, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. UNAVAILABLE when the address cannot be
  // bound (in use, bad address); ALREADY_EXISTS if already started.
  Status Start();
  // Stops accepting, closes idle connections, lets in-flight requests finish and send
  // their replies (up to stop_timeout, then closes what is left), joins the threads.
  // Replies for inferences that complete later are dropped.
  void Stop();
  // The bound port (the ephemeral one when options.port was 0); 0 before Start.
  uint16_t port() const;
  const HttpServerOptions& options() const { return options_; }

 private:
  class Impl;
  HttpServerOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::frontend
