#pragma once
// `quiver up`: a facility on one machine in one command (docs/facility.md). The gateway
// runs in this process (RunGateway); facility.yaml's `servers:` run as `quiver serve`
// children (this program, re-executed) and become its upstreams; the same pool is the
// autoscaler's `local` provider; optionally Debian's Prometheus scrapes them all. Prints the
// URLs; SIGINT/SIGTERM stop the gateway, then every child (they also die with this process
// if it is killed: PR_SET_PDEATHSIG). Without --config, the embedded deploy/facility.yaml.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "gateway/local/server_pool.h"

namespace CLI {
class App;
}  // namespace CLI

namespace quiver::gateway {
class Router;
}  // namespace quiver::gateway

namespace quiver::cli {

// The flags of `quiver up`.
struct UpOptions {
  std::string config;                            // --config; empty = the embedded default facility
  std::string log_dir;                           // --log-dir; empty = <temp>/quiver-up-<pid>
  std::string quiver_binary = "/proc/self/exe";  // what the servers run
  // The gateway's ports (override the file's `gateway:`; 0 = ephemeral).
  std::optional<int> http_port, grpc_port, metrics_port;
  bool print_default_config = false;  // --print-default-config: show it, exit
};

// Adds the `up` subcommand, its flags bound to `options`, to `app`.
CLI::App* AddUpCommand(CLI::App& app, UpOptions& options);


// Runs the facility until SIGINT/SIGTERM; returns the exit code (1 when the configuration
// is bad or a child does not start; what started is stopped again). Installs process-wide
// signal handlers; call once, from the main thread.
int RunUp(const UpOptions& options);

}  // namespace quiver::cli
