#pragma once
// ServerProcess: one `quiver serve` child on 127.0.0.1 with ephemeral ports, in explicit
// model control, ready once it has printed its `QUIVER_READY http=.. grpc=.. metrics=..`
// line (cli/serve.h).

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/local/child_process.h"

namespace quiver::gateway {

// One server of facility.yaml's `servers:` (or an autoscaled replica).
struct ServerSpec {
  std::string name;
  std::filesystem::path model_repository;
  std::vector<std::string> models;  // loaded at start; empty = all of the repository
  std::vector<std::string> args;    // more `quiver serve` flags
};

// Where the program is and how long to wait for it.
struct ServerProcessOptions {
  std::filesystem::path quiver_binary;  // e.g. /proc/self/exe
  std::filesystem::path log_file;       // the child's stderr
  std::chrono::milliseconds start_timeout{120000};
  std::vector<int> cancel_fds;  // any readable = give up starting (CANCELLED)
};

// A running `quiver serve`. Not thread-safe; the destructor stops it (ChildProcess).
class ServerProcess {
 public:
  // Starts the server and waits for its ready line. UNAVAILABLE when it exits first or does
  // not get ready within start_timeout (the message has the tail of its log); the child
  // is then stopped and reaped.
  static Result<std::unique_ptr<ServerProcess>> Start(const ServerSpec& spec,
                                                      const ServerProcessOptions& options);

  // The command line Start runs.
  static std::vector<std::string> CommandLine(const ServerSpec& spec,
                                              const std::filesystem::path& quiver_binary);

  const ServerSpec& spec() const { return spec_; }
  pid_t pid() const { return child_->pid(); }
  int pidfd() const { return child_->pidfd(); }
  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string HttpUrl() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  std::string GrpcUrl() const { return "grpc://127.0.0.1:" + std::to_string(grpc_port_); }
  std::string MetricsUrl() const;  // http://127.0.0.1:<port>/metrics; "" if disabled
  ChildProcess& process() { return *child_; }

 private:
  ServerProcess(ServerSpec spec, std::unique_ptr<ChildProcess> child)
      : spec_(std::move(spec)), child_(std::move(child)) {}
  Status WaitReady(const ServerProcessOptions& options);

  ServerSpec spec_;
  std::unique_ptr<ChildProcess> child_;
  int http_port_ = 0;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

}  // namespace quiver::gateway
