#pragma once
// `quiver gateway`: model-aware balancing over many servers (docs/gateway.md). A Router
// over the upstreams of facility.yaml (and --upstream), served by the same HTTP/REST, gRPC
// and metrics frontends as `quiver serve`, with its flags for addresses and ports and its
// `QUIVER_READY http=<port> grpc=<port> metrics=<port>` line on stdout once listening.
// The file is re-read when it changes: upstreams it adds or drops are added or drained.
// SIGTERM/SIGINT stop accepting, let requests in flight finish, and exit 0.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace CLI {
class App;
}  // namespace CLI

namespace quiver::gateway {
class Router;
class ReplicaProvider;
struct FacilityConfig;
}  // namespace quiver::gateway

namespace quiver::cli {

struct GatewayOptions {
  std::string config;                  // --config facility.yaml ("" = none)
  std::vector<std::string> upstreams;  // --upstream URL (repeatable), besides the file's
  // Flags override the file's `gateway:` section.
  std::optional<std::string> http_address, grpc_address, metrics_address;
  std::optional<int> http_port, grpc_port, metrics_port;
  bool allow_http = true;
  bool allow_grpc = true;
  bool allow_metrics = true;
  int exit_timeout_secs = 30;
};

// What `quiver up` adds around the gateway.
struct GatewayHooks {
  // Runs once the Router exists and the configured upstreams are added, before the
  // frontends listen. May start servers and add them; may set `provider` (the autoscaler's
  // local replicas). An error stops the gateway (exit 1).
  std::function<Status(gateway::Router& router, const gateway::FacilityConfig& config,
                       std::shared_ptr<gateway::ReplicaProvider>& provider)>
      on_started;
  // Runs after QUIVER_READY is printed, with the bound ports (to print URLs).
  std::function<void(int http_port, int grpc_port, int metrics_port)> on_listening;
  // Runs after the frontends have stopped, before the Router goes (stop servers here).
  std::function<void()> on_stopping;
};

CLI::App* AddGatewayCommand(CLI::App& app, GatewayOptions& options);

// Runs the gateway until SIGTERM/SIGINT; returns the exit code (1 when startup fails: a
// bad file or flag, a port in use). Installs the signal handlers; call once, from main.
int RunGateway(const GatewayOptions& options, GatewayHooks hooks = {});

}  // namespace quiver::cli
