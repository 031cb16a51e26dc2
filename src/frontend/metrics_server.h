#pragma once
// MetricsServer: a small HTTP/1.1 server (Boost.Beast, keep-alive) exposing a
// MetricsRegistry at GET /metrics, as Triton's metrics port (default 8002).
//   GET or HEAD /metrics -> 200, Content-Type: text/plain; version=0.0.4; charset=utf-8
//   other methods on /metrics -> 405; any other path -> 404.
// A query string on /metrics is ignored. Beast is kept out of this header.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "frontend/metrics_registry.h"

namespace quiver::frontend {

struct MetricsServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8002;  // 0 picks an ephemeral port; see MetricsServer::port()
  int threads = 1;       // I/O threads (a scrape is cheap); must be >= 1
  // A keep-alive connection idle (or sending a request) this long is closed.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
};

// Serves `registry`, which must outlive the server. Start/Stop/port are thread-safe; Stop is
// idempotent and runs from the destructor too. A stopped server cannot be restarted.
class MetricsServer {
 public:
  MetricsServer(MetricsRegistry& registry, MetricsServerOptions options);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds, listens and starts the I/O threads. UNAVAILABLE when the address cannot be
  // bound; ALREADY_EXISTS if already started; INVALID_ARGUMENT for threads < 1.
  Status Start();
  // Stops accepting, closes every connection (a scrape being written is cut short) and
  // joins the threads.
  void Stop();
  // The bound port (the ephemeral one when options.port was 0); 0 before Start.
  uint16_t port() const;
  const MetricsServerOptions& options() const { return options_; }

 private:
  class Impl;
  MetricsServerOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::frontend
