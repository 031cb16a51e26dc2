#pragma once
// EchoHttpServer: KServe v2 REST without an engine, for quiver_echo_server. Same Boost.Beast
// setup as frontend::HttpServer (an io_context run by N threads, a strand per connection,
// a beast::tcp_stream with TCP_NODELAY, the body read into frontend::SharedBody and the reply
// sent scatter-gather from frontend::GatherBody, 100-continue answered), routes in
// echo_http_routes.h. Beast is kept out of this header.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "bench/echo_model.h"
#include "core/status.h"

namespace quiver::bench {

struct EchoHttpOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8000;  // 0 picks a free one (see port())
  int threads = 0;       // I/O threads; 0 = one per usable CPU (UsableCpus, as the frontend)
  size_t max_body_bytes = size_t{1} << 30;
};

// Serves `model`, which must outlive the server. Start and Stop are called from one thread;
// Stop is idempotent, runs on destruction and does not wait for in-flight requests.
class EchoHttpServer {
 public:
  EchoHttpServer(EchoModel& model, EchoHttpOptions options);
  ~EchoHttpServer();
  EchoHttpServer(const EchoHttpServer&) = delete;
  EchoHttpServer& operator=(const EchoHttpServer&) = delete;

  // UNAVAILABLE when the address cannot be bound; INVALID_ARGUMENT when called twice.
  Status Start();
  void Stop();
  // The bound port after Start.
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::bench
