#include "cli/gateway.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "cli/process_setup.h"
#include "cli/upstream_pool.h"
#include "frontend/grpc_server.h"
#include "frontend/http_server.h"
#include "frontend/metrics_registry.h"
#include "frontend/metrics_server.h"
#include "frontend/shared_memory.h"
#include "gateway/admin_api.h"
#include "gateway/autoscale/autoscale_config.h"
#include "gateway/autoscale/autoscale_controller.h"
#include "gateway/config/facility_config.h"
#include "gateway/gateway_metrics.h"
#include "gateway/remote_upstreams.h"
#include "gateway/router.h"
#include "gateway/tenants/tenant_config.h"
#include "gateway/tenants/tenant_metrics.h"
#include "gateway/tenants/tenant_registry.h"
#include "gateway/tenants/tenant_scheduler.h"

namespace quiver::cli {
namespace {

// Re-reads the facility file when its modification time or size changes, and brings the
// Router's upstreams from the file in line with it (upstreams added by flags, hooks or the
// admin endpoint are left alone). A file that no longer parses is logged and ignored.
class FacilityWatcher {
 public:
  FacilityWatcher(std::string file, gateway::Router& router, std::vector<std::string> from_file,
                  std::chrono::milliseconds interval)
      : file_(std::move(file)),
        router_(router),
        from_file_(from_file.begin(), from_file.end()),
        interval_(interval) {
    stamp_ = Stamp();
    thread_ = std::thread([this] { Loop(); });
  }
  ~FacilityWatcher() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::pair<int64_t, int64_t> Stamp() const {
    struct stat st {};
    if (::stat(file_.c_str(), &st) != 0) return {-1, -1};
    return {static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
            static_cast<int64_t>(st.st_size)};
  }

  void Loop() {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
      const auto stamp = Stamp();
      if (stamp == stamp_ || stamp.first < 0) continue;
      stamp_ = stamp;
      lock.unlock();
      Reload();
      lock.lock();
    }
  }

  void Reload() {
    auto config = gateway::LoadFacilityConfig(file_);
    if (!config.ok()) {
      spdlog::error("gateway: {} changed but is not usable, keeping the running set-up: {}", file_,
                    config.status().ToString());
      return;
    }
    const std::set<std::string> wanted(config->upstreams.begin(), config->upstreams.end());
    for (const auto& url : wanted) {
      if (from_file_.contains(url)) continue;
      Status s = router_.AddUpstream(url);
      spdlog::info("gateway: {} adds upstream {}: {}", file_, url, s.ToString());
      if (s.ok() || s.code() == StatusCode::kAlreadyExists) from_file_.insert(url);
    }
    for (auto it = from_file_.begin(); it != from_file_.end();) {
      if (wanted.contains(*it)) {
        ++it;
        continue;
      }
      Status s = router_.RemoveUpstream(*it);  // drains first
      spdlog::info("gateway: {} drops upstream {}: {}", file_, *it, s.ToString());
      it = from_file_.erase(it);
    }
  }

  const std::string file_;
  gateway::Router& router_;
  std::set<std::string> from_file_;  // touched by the watcher thread only
  const std::chrono::milliseconds interval_;
  std::pair<int64_t, int64_t> stamp_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mutex_
  std::thread thread_;
};

Result<gateway::FacilityConfig> LoadConfig(const GatewayOptions& o) {
  gateway::FacilityConfig config;
  if (!o.config.empty()) {
    auto loaded = gateway::LoadFacilityConfig(o.config);
    if (!loaded.ok()) return loaded.status();
    config = std::move(loaded).value();
  }
  auto& l = config.listen;
  if (o.http_address) l.http_address = *o.http_address;
  if (o.grpc_address) l.grpc_address = *o.grpc_address;
  if (o.metrics_address) l.metrics_address = *o.metrics_address;
  if (o.http_port) l.http_port = *o.http_port;
  if (o.grpc_port) l.grpc_port = *o.grpc_port;
  if (o.metrics_port) l.metrics_port = *o.metrics_port;
  return config;
}

}  // namespace

CLI::App* AddGatewayCommand(CLI::App& app, GatewayOptions& o) {
  auto* cmd = app.add_subcommand(
      "gateway", "Model-aware gateway over many inference servers (KServe v2 HTTP/REST and gRPC)");
  cmd->add_option("--config", o.config, "facility.yaml (upstreams, tenants, policies)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--upstream", o.upstreams,
                  "upstream server URL, grpc://host:port or http://host:port (repeatable)");
  cmd->add_option("--http-address", o.http_address);
  cmd->add_option("--http-port", o.http_port, "0 = ephemeral")->check(CLI::Range(0, 65535));
  cmd->add_option("--grpc-address", o.grpc_address);
  cmd->add_option("--grpc-port", o.grpc_port, "0 = ephemeral")->check(CLI::Range(0, 65535));
  cmd->add_option("--metrics-address", o.metrics_address);
  cmd->add_option("--metrics-port", o.metrics_port, "0 = ephemeral")->check(CLI::Range(0, 65535));
  cmd->add_option("--allow-http", o.allow_http, "serve HTTP/REST")->capture_default_str();
  cmd->add_option("--allow-grpc", o.allow_grpc, "serve gRPC")->capture_default_str();
  cmd->add_option("--allow-metrics", o.allow_metrics, "serve Prometheus metrics")
      ->capture_default_str();
  cmd->add_option("--exit-timeout-secs", o.exit_timeout_secs,
                  "on SIGTERM/SIGINT, how long in-flight requests may take to finish")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return cmd;
}

int RunGateway(const GatewayOptions& o, GatewayHooks hooks) {
  KeepLargeBuffersInHeap();
  if (!InstallShutdownSignals()) {
    spdlog::error("cannot install the SIGTERM/SIGINT handlers");
    return 1;
  }
  auto loaded = LoadConfig(o);
  if (!loaded.ok()) {
    spdlog::error("gateway: {}", loaded.status().ToString());
    return 1;
  }
  gateway::FacilityConfig config = std::move(loaded).value();

  auto autoscale = gateway::ParseAutoscaleConfig(config.autoscale, config.base);
  if (!autoscale.ok()) {
    spdlog::error("gateway: {}", autoscale.status().WithContext(o.config).ToString());
    return 1;
  }
  gateway::RouterOptions router_options = config.router;
  router_options.factory = gateway::RemoteUpstreamFactory(router_options);
  if (autoscale->provider != gateway::AutoscaleProviderKind::kNone) {
    // Autoscaled models may have zero replicas: their requests wait for one.
    for (const auto& [model, policy] : autoscale->models) {
      router_options.wait_for_models.insert(model);
    }
  }
  // Tenants (docs/tenants.md): with `tenants:`, the frontends authenticate and the Router
  // admits per tenant (limits, fair queueing); without, auth is off and all are admitted.
  auto tenants = gateway::ParseTenants(config.tenants, config.base);
  if (!tenants.ok()) {
    spdlog::error("gateway: {}", tenants.status().WithContext(o.config).ToString());
    return 1;
  }
  std::shared_ptr<const gateway::TenantRegistry> tokens;
  std::unique_ptr<gateway::RequestScheduler> scheduler;
  if (!tenants->empty()) {
    tokens = std::make_shared<const gateway::TenantRegistry>(*tenants);
    scheduler = gateway::MakeTenantScheduler(*tenants, Clock::System());
  }
  const gateway::RequestScheduler* admission = scheduler.get();  // owned by the Router
  auto created =
      gateway::Router::Create(std::move(router_options), Clock::System(), std::move(scheduler));
  if (!created.ok()) {
    spdlog::error("gateway: {}", created.status().ToString());
    return 1;
  }
  std::unique_ptr<gateway::Router> router = std::move(created).value();
  std::vector<std::string> from_flags = o.upstreams;
  for (const auto& url : config.upstreams) {
    if (Status s = router->AddUpstream(url); !s.ok()) {
      spdlog::error("gateway: {}: {}", o.config, s.ToString());
      return 1;
    }
  }
  for (const auto& url : from_flags) {
    if (Status s = router->AddUpstream(url); !s.ok() && s.code() != StatusCode::kAlreadyExists) {
      spdlog::error("gateway: --upstream: {}", s.ToString());
      return 1;
    }
  }
  std::shared_ptr<gateway::ReplicaProvider> provider;
  if (hooks.on_started) {
    if (Status s = hooks.on_started(*router, config, provider); !s.ok()) {
      spdlog::error("gateway: {}", s.ToString());
      if (hooks.on_stopping) hooks.on_stopping();
      return 1;
    }
  }
  // autoscale.provider local without `quiver up`: the gateway starts and stops its own
  // `quiver serve` replicas (logs in a folder named in the log).
  std::shared_ptr<gateway::ServerPool> local_pool;
  if (autoscale->provider == gateway::AutoscaleProviderKind::kLocal && !provider) {
    gateway::ServerPoolOptions pool_options;
    pool_options.quiver_binary = "/proc/self/exe";
    pool_options.log_dir = std::filesystem::temp_directory_path() /
                           ("quiver-gateway-replicas-" + std::to_string(::getpid()));
    pool_options.model_repository = autoscale->model_repository;
    spdlog::info("gateway: local replicas log to {}", pool_options.log_dir.string());
    local_pool = MakeUpstreamServerPool(*router, std::move(pool_options));
    provider = local_pool;
  }

  const auto exit_timeout = std::chrono::seconds(o.exit_timeout_secs);
  frontend::SharedMemoryManager shm;  // clients on this host may send tensors in shm
  std::unique_ptr<frontend::HttpServer> http;
  std::unique_ptr<frontend::GrpcServer> grpc;
  std::unique_ptr<frontend::MetricsRegistry> registry;
  std::unique_ptr<frontend::MetricsServer> metrics;
  std::unique_ptr<gateway::AutoscaleController> autoscaler;
  auto stop_all = [&] {
    if (autoscaler) autoscaler->Stop();
    std::thread grpc_stopper([&grpc] {
      if (grpc) grpc->Stop();
    });
    if (http) http->Stop();
    grpc_stopper.join();
    if (metrics) metrics->Stop();
    if (local_pool) local_pool->StopAll();
    if (hooks.on_stopping) hooks.on_stopping();
  };
  auto fail = [&](std::string_view what, const Status& s) {
    spdlog::error("gateway: {}: {}", what, s.ToString());
    stop_all();
    return 1;
  };

  if (o.allow_http) {
    frontend::HttpServerOptions options;
    options.address = config.listen.http_address;
    options.port = static_cast<uint16_t>(config.listen.http_port);
    options.stop_timeout = exit_timeout;
    options.extension_prefix = std::string(gateway::kAdminPrefix);
    options.extension = [r = router.get()](std::string_view method, std::string_view target,
                                           std::string_view body) {
      auto reply = gateway::HandleAdmin(*r, method, target, body);
      return std::pair<int, std::string>(reply.status, std::move(reply.json));
    };
    if (tokens) options.authenticator = gateway::MakeAuthenticator(tokens);
    http = std::make_unique<frontend::HttpServer>(*router, shm, options);
    if (Status s = http->Start(); !s.ok()) return fail("HTTP server", s);
  }
  if (o.allow_grpc) {
    frontend::GrpcServerOptions options;
    options.address = config.listen.grpc_address;
    options.port = config.listen.grpc_port;
    options.shutdown_grace = exit_timeout;
    if (tokens) options.authenticator = gateway::MakeAuthenticator(tokens);
    grpc = std::make_unique<frontend::GrpcServer>(*router, shm, options);
    if (Status s = grpc->Start(); !s.ok()) return fail("gRPC server", s);
  }
  if (autoscale->provider != gateway::AutoscaleProviderKind::kNone) {
    // kubernetes: advisory (KEDA or the HPA act on the metrics); local: through `provider`.
    autoscaler = std::make_unique<gateway::AutoscaleController>(
        autoscale->ControllerOptions(), [r = router.get()] { return r->Load(); },
        autoscale->provider == gateway::AutoscaleProviderKind::kLocal ? provider : nullptr,
        Clock::System());
    autoscaler->Start();
  }
  if (o.allow_metrics) {
    frontend::MetricsOptions options;
    gateway::GatewayMetricsSources sources;
    sources.router = router.get();
    if (autoscaler) {
      sources.desired_replicas = [a = autoscaler.get()](std::string_view m) {
        return a->DesiredReplicas(m);
      };
    }
    if (admission) {
      sources.more = [admission, tokens](std::string& out) {
        gateway::RenderTenantMetrics(admission->Stats(), tokens->unauthenticated(), out);
      };
    }
    options.extra_families = [sources](std::string& out) {
      gateway::RenderGatewayMetrics(sources, out);
    };
    registry = std::make_unique<frontend::MetricsRegistry>(*router, std::move(options));
    frontend::MetricsServerOptions server_options;
    server_options.address = config.listen.metrics_address;
    server_options.port = static_cast<uint16_t>(config.listen.metrics_port);
    metrics = std::make_unique<frontend::MetricsServer>(*registry, server_options);
    if (Status s = metrics->Start(); !s.ok()) return fail("metrics server", s);
  }
  std::unique_ptr<FacilityWatcher> watcher;
  if (!o.config.empty()) {
    watcher = std::make_unique<FacilityWatcher>(
        o.config, *router, config.upstreams,
        std::chrono::duration_cast<std::chrono::milliseconds>(config.router.poll_interval));
  }

  const int http_port = http ? static_cast<int>(http->port()) : 0;
  const int grpc_port = grpc ? grpc->port() : 0;
  const int metrics_port = metrics ? static_cast<int>(metrics->port()) : 0;
  std::printf("QUIVER_READY http=%d grpc=%d metrics=%d\n", http_port, grpc_port, metrics_port);
  std::fflush(stdout);
  spdlog::info("gateway over {} upstream(s): HTTP {}:{}, gRPC {}:{}, metrics {}:{}",
               router->Upstreams().size(), config.listen.http_address, http_port,
               config.listen.grpc_address, grpc_port, config.listen.metrics_address, metrics_port);
  if (hooks.on_listening) hooks.on_listening(http_port, grpc_port, metrics_port);

  const int signo = WaitForShutdownSignal();
  spdlog::info("{}: gateway shutting down (waiting up to {} s for requests in flight)",
               signo == SIGTERM ? "SIGTERM" : "SIGINT", o.exit_timeout_secs);
  std::thread([] {
    WaitForShutdownSignal();
    spdlog::warn("second shutdown signal: exiting without draining");
    std::_Exit(1);
  }).detach();
  watcher.reset();
  stop_all();
  metrics.reset();
  registry.reset();
  autoscaler.reset();
  http.reset();
  grpc.reset();
  router.reset();
  spdlog::info("gateway shut down cleanly");
  return 0;
}

}  // namespace quiver::cli
