#include "cli/up.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>

#include "cli/default_facility.h"
#include "cli/upstream_pool.h"
#include "cli/gateway.h"
#include "cli/process_setup.h"
#include "gateway/autoscale/autoscale_config.h"
#include "gateway/config/facility_config.h"
#include "gateway/local/local_config.h"
#include "gateway/local/prometheus_process.h"
#include "gateway/local/server_pool.h"
#include "gateway/router.h"

namespace quiver::cli {
namespace {

// The embedded facility's relative paths start at deploy/ of the source tree we run in
// (the nearest folder above the current one with deploy/facility.yaml and models/), so
// that a checkout's own models are served; else the tree this program was built from.
std::filesystem::path EmbeddedBase() {
  std::error_code ec;
  for (auto dir = std::filesystem::current_path(ec); !ec && !dir.empty(); dir = dir.parent_path()) {
    if (std::filesystem::is_regular_file(dir / "deploy" / "facility.yaml", ec) &&
        std::filesystem::is_directory(dir / "models", ec))
      return dir / "deploy";
    if (dir == dir.parent_path()) break;
  }
  return std::filesystem::path(QUIVER_SOURCE_TREE) / "deploy";
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "all models" : out;
}

// What `quiver up` runs around the gateway; the hooks' shared state.
class Facility {
 public:
  Facility(std::string source, std::filesystem::path log_dir, std::filesystem::path binary)
      : source_(std::move(source)), log_dir_(std::move(log_dir)), binary_(std::move(binary)) {}

  // hooks.on_started: the pool (with the Router as its callbacks' target), its servers.
  Status Start(gateway::Router& router, const gateway::FacilityConfig& config,
               std::shared_ptr<gateway::ReplicaProvider>& provider) {
    auto specs = gateway::ParseLocalServers(config.servers, config.base);
    if (!specs.ok()) return specs.status().WithContext(source_);
    specs_ = std::move(specs).value();
    auto prometheus = gateway::ParsePrometheus(config.prometheus);
    if (!prometheus.ok()) return prometheus.status().WithContext(source_);
    prometheus_config_ = *prometheus;
    auto autoscale = gateway::ParseAutoscaleConfig(config.autoscale, config.base);
    if (!autoscale.ok()) return autoscale.status().WithContext(source_);

    gateway::ServerPoolOptions o;
    o.quiver_binary = binary_;
    o.log_dir = log_dir_;
    o.model_repository = autoscale->model_repository;
    o.stop_timeout = std::chrono::seconds(15);
    o.cancel_fd = ShutdownSignalFd();  // Ctrl-C while the servers start: stop waiting
    pool_ = MakeUpstreamServerPool(router, std::move(o), [this] { Retarget(); });
    provider = pool_;
    std::printf("quiver up: %s\n  logs        %s\n", source_.c_str(), log_dir_.c_str());
    std::fflush(stdout);
    Status started = pool_->StartServers(specs_);
    if (started.code() == StatusCode::kCancelled)
      return Status::Cancelled("interrupted while the servers were starting");
    return started;
  }

  // hooks.on_listening: Prometheus (it needs the gateway's metrics port), then the URLs.
  void Listening(int http_port, int grpc_port, int metrics_port) {
    if (prometheus_config_.enabled) {
      gateway::PrometheusOptions p;
      p.port = prometheus_config_.port;
      p.log_file = log_dir_ / "prometheus.log";
      p.metrics_ports = MetricsPorts(metrics_port);
      auto started = gateway::PrometheusProcess::Start(p);
      if (!started.ok()) {
        spdlog::error("up: {}", started.status().message());
        RequestShutdown(SIGTERM);
        return;
      }
      std::lock_guard lock(mutex_);
      gateway_metrics_port_ = metrics_port;
      prometheus_ = std::move(started).value();
    }
    const auto servers = pool_->Servers();
    for (size_t i = 0; i < servers.size() && i < specs_.size(); ++i) {
      const auto& s = servers[i];
      std::printf("  server %-4s %s  %s  metrics %s  (%s; pid %d)\n", s.name.c_str(),
                  s.grpc_url.c_str(), s.http_url.c_str(), s.metrics_url.c_str(),
                  Join(specs_[i].models).c_str(), static_cast<int>(s.pid));
    }
    std::printf(
        "  gateway     grpc://127.0.0.1:%d  http://127.0.0.1:%d  metrics "
        "http://127.0.0.1:%d/metrics\n",
        grpc_port, http_port, metrics_port);
    {
      std::lock_guard lock(mutex_);
      if (prometheus_) std::printf("  prometheus  %s\n", prometheus_->Url().c_str());
    }
    std::printf("Ctrl-C stops everything.\n");
    std::fflush(stdout);
  }

  // hooks.on_stopping: after the gateway's frontends stopped.
  void Stop() {
    {
      std::lock_guard lock(mutex_);
      prometheus_.reset();
    }
    if (pool_) pool_->StopAll();
  }

 private:
  std::vector<int> MetricsPorts(int gateway_port) const {
    std::vector<int> ports = pool_->MetricsPorts();
    if (gateway_port > 0) ports.push_back(gateway_port);
    return ports;
  }
  // Replicas come and go: Prometheus follows (file_sd).
  void Retarget() {
    std::lock_guard lock(mutex_);
    if (prometheus_) (void)prometheus_->SetTargets(MetricsPorts(gateway_metrics_port_));
  }

  const std::string source_;
  const std::filesystem::path log_dir_;
  const std::filesystem::path binary_;
  std::vector<gateway::ServerSpec> specs_;
  gateway::PrometheusConfig prometheus_config_;
  std::shared_ptr<gateway::ServerPool> pool_;
  std::mutex mutex_;
  std::unique_ptr<gateway::PrometheusProcess> prometheus_;  // guarded by mutex_
  int gateway_metrics_port_ = 0;                            // guarded by mutex_
};

}  // namespace

CLI::App* AddUpCommand(CLI::App& app, UpOptions& o) {
  auto* up = app.add_subcommand(
      "up", "A facility on this machine: the gateway, its quiver serve processes, Prometheus");
  up->add_option("--config", o.config, "facility.yaml (default: the embedded deploy/facility.yaml)")
      ->check(CLI::ExistingFile);
  up->add_option("--log-dir", o.log_dir, "children's logs (default: <temp>/quiver-up-<pid>)");
  up->add_option("--http-port", o.http_port, "gateway, 0 = ephemeral")->check(CLI::Range(0, 65535));
  up->add_option("--grpc-port", o.grpc_port, "gateway, 0 = ephemeral")->check(CLI::Range(0, 65535));
  up->add_option("--metrics-port", o.metrics_port, "gateway, 0 = ephemeral")
      ->check(CLI::Range(0, 65535));
  up->add_flag("--print-default-config", o.print_default_config,
               "print the embedded deploy/facility.yaml and exit");
  return up;
}

int RunUp(const UpOptions& o) {
  if (o.print_default_config) {
    std::fputs(kDefaultFacilityYaml, stdout);
    return 0;
  }
  GatewayOptions g;
  g.config = o.config;
  g.http_port = o.http_port;
  g.grpc_port = o.grpc_port;
  g.metrics_port = o.metrics_port;
  // The embedded default has no file for RunGateway to read: its servers and Prometheus
  // come from here, its `gateway:` ports through the flags.
  std::optional<gateway::FacilityConfig> embedded;
  std::string source = o.config;
  if (o.config.empty()) {
    const auto base = EmbeddedBase();
    source = "the embedded deploy/facility.yaml (paths from " + base.string() + ")";
    auto parsed =
        gateway::ParseFacilityConfig(kDefaultFacilityYaml, "embedded facility.yaml", base);
    if (!parsed.ok()) {
      spdlog::error("up: {}", parsed.status().ToString());
      return 1;
    }
    embedded = std::move(parsed).value();
    if (!g.http_port) g.http_port = embedded->listen.http_port;
    if (!g.grpc_port) g.grpc_port = embedded->listen.grpc_port;
    if (!g.metrics_port) g.metrics_port = embedded->listen.metrics_port;
  }
  const std::filesystem::path log_dir =
      !o.log_dir.empty()
          ? std::filesystem::path(o.log_dir)
          : std::filesystem::temp_directory_path() / ("quiver-up-" + std::to_string(::getpid()));
  // The real path, so that `ps` shows which quiver the servers run.
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink(o.quiver_binary, ec);
  Facility facility(source, log_dir, ec ? std::filesystem::path(o.quiver_binary) : exe);

  GatewayHooks hooks;
  hooks.on_started = [&](gateway::Router& router, const gateway::FacilityConfig& config,
                         std::shared_ptr<gateway::ReplicaProvider>& provider) {
    return facility.Start(router, embedded ? *embedded : config, provider);
  };
  hooks.on_listening = [&](int http, int grpc, int metrics) {
    facility.Listening(http, grpc, metrics);
  };
  hooks.on_stopping = [&] { facility.Stop(); };
  return RunGateway(g, std::move(hooks));
}

}  // namespace quiver::cli
