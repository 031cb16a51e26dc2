#include "cli/up.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/default_facility.h"
#include "gateway/local/local_config.h"
#include "gateway/local/prometheus_process.h"
#include "gateway/local/server_pool.h"

namespace quiver::cli {
namespace {

// SIGINT/SIGTERM/SIGHUP through a self-pipe, as in serve.cc (the handler only writes).
int g_signal_pipe[2] = {-1, -1};

extern "C" void OnUpSignal(int signo) {
  const int saved_errno = errno;
  const char byte = static_cast<char>(signo);
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &byte, 1);
  errno = saved_errno;
}

bool InstallSignals() {
  if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  ::fcntl(g_signal_pipe[0], F_SETFL, ::fcntl(g_signal_pipe[0], F_GETFL) & ~O_NONBLOCK);
  struct sigaction action {};
  action.sa_handler = OnUpSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) {
    if (::sigaction(s, &action, nullptr) != 0) return false;
  }
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}

int WaitForSignal() {
  char byte = 0;
  while (true) {
    const ssize_t n = ::read(g_signal_pipe[0], &byte, 1);
    if (n == 1) return static_cast<unsigned char>(byte);
    if (n < 0 && errno == EINTR) continue;
    return SIGTERM;
  }
}

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

// What `quiver up` runs besides the gateway.
struct Facility {
  std::string source;  // the file, or which embedded default
  std::vector<gateway::ServerSpec> servers;
  gateway::PrometheusConfig prometheus;
};

Result<Facility> LoadFacility(const std::string& config) {
  Facility f;
  YAML::Node root;
  std::filesystem::path base;
  try {
    if (config.empty()) {
      base = EmbeddedBase();
      f.source = "the embedded deploy/facility.yaml (paths from " + base.string() + ")";
      root = YAML::Load(kDefaultFacilityYaml);
    } else {
      base = std::filesystem::absolute(config).parent_path();
      f.source = config;
      root = YAML::LoadFile(config);
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(f.source + ": " + e.what());
  }
  const YAML::Node& r = root;
  if (!r.IsMap() && !r.IsNull()) return Status::InvalidArgument(f.source + ": expected a map");
  auto servers = gateway::ParseLocalServers(r["servers"], base);
  if (!servers.ok()) return Status::InvalidArgument(f.source + ": " + servers.status().message());
  f.servers = std::move(servers).value();
  auto prometheus = gateway::ParsePrometheus(r["prometheus"]);
  if (!prometheus.ok())
    return Status::InvalidArgument(f.source + ": " + prometheus.status().message());
  f.prometheus = *prometheus;
  return f;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "all models" : out;
}

}  // namespace

CLI::App* AddUpCommand(CLI::App& app, UpOptions& o) {
  auto* up = app.add_subcommand(
      "up", "A facility on this machine: the gateway, its quiver serve processes, Prometheus");
  up->add_option("--config", o.config, "facility.yaml (default: the embedded deploy/facility.yaml)")
      ->check(CLI::ExistingFile);
  up->add_option("--log-dir", o.log_dir, "children's logs (default: <temp>/quiver-up-<pid>)");
  up->add_flag("--print-default-config", o.print_default_config,
               "print the embedded deploy/facility.yaml and exit");
  return up;
}

int RunUp(const UpOptions& o) {
  if (o.print_default_config) {
    std::fputs(kDefaultFacilityYaml, stdout);
    return 0;
  }
  if (!InstallSignals()) {
    spdlog::error("cannot install the signal handlers: {}", std::strerror(errno));
    return 1;
  }
  auto facility = LoadFacility(o.config);
  if (!facility.ok()) {
    spdlog::error("{}", facility.status().message());
    return 1;
  }
  const std::filesystem::path log_dir =
      !o.log_dir.empty()
          ? std::filesystem::path(o.log_dir)
          : std::filesystem::temp_directory_path() / ("quiver-up-" + std::to_string(::getpid()));
  gateway::ServerPoolOptions pool_options;
  // The real path, so that `ps` shows which quiver the servers run.
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink(o.quiver_binary, ec);
  pool_options.quiver_binary = ec ? std::filesystem::path(o.quiver_binary) : exe;
  pool_options.log_dir = log_dir;
  pool_options.stop_timeout = std::chrono::seconds(15);
  // TODO(gateway): run this inside gateway::RunGateway's hooks.on_started(Router&), with
  // on_ready = AddUpstream, before_stop/on_exit = RemoveUpstream (see RunUp's report).
  gateway::ServerPool pool(pool_options);
  // A signal during start-up cancels the starts in progress (StopAll) rather than waiting
  // for them; otherwise it ends the wait below.
  std::atomic<int> signo{0};
  std::thread watcher([&] {
    signo = WaitForSignal();
    pool.StopAll();
  });
  const auto stop_watcher = [&] {
    if (signo == 0) OnUpSignal(SIGTERM);
    watcher.join();
  };
  std::printf("quiver up: %s\n  logs        %s\n", facility->source.c_str(), log_dir.c_str());
  std::fflush(stdout);
  if (Status s = pool.StartServers(facility->servers); !s.ok()) {
    if (signo == 0) spdlog::error("{}", s.message());
    stop_watcher();
    return signo == 0 ? 1 : 0;
  }
  std::unique_ptr<gateway::PrometheusProcess> prometheus;
  if (facility->prometheus.enabled && signo == 0) {
    gateway::PrometheusOptions p;
    p.port = facility->prometheus.port;
    p.log_file = log_dir / "prometheus.log";
    p.metrics_ports = pool.MetricsPorts();
    auto started = gateway::PrometheusProcess::Start(p);
    if (!started.ok()) {
      spdlog::error("{}", started.status().message());
      stop_watcher();
      return 1;
    }
    prometheus = std::move(started).value();
  }
  const auto servers = pool.Servers();
  for (size_t i = 0; i < servers.size(); ++i) {
    const auto& s = servers[i];
    std::printf("  server %-4s %s  %s  metrics %s  (%s; pid %d)\n", s.name.c_str(),
                s.grpc_url.c_str(), s.http_url.c_str(), s.metrics_url.c_str(),
                Join(facility->servers[i].models).c_str(), static_cast<int>(s.pid));
  }
  if (prometheus) std::printf("  prometheus  %s\n", prometheus->Url().c_str());
  std::printf("Ctrl-C stops everything.\n");
  std::fflush(stdout);

  watcher.join();  // until SIGINT/SIGTERM/SIGHUP; the pool is stopped then
  std::fprintf(stderr, "quiver up: SIG%s: stopped %zu server(s)%s\n", ::sigabbrev_np(signo),
               servers.size(), prometheus ? ", stopping prometheus" : "");
  prometheus.reset();
  return 0;
}

}  // namespace quiver::cli
