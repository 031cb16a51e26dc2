#include "cli/serve.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "cli/process_setup.h"
#include "engine/backends/default_backends.h"
#include "engine/engine.h"
#include "frontend/grpc_server.h"
#include "frontend/metrics_server.h"
#include "frontend/http_server.h"
#include "frontend/shared_memory.h"

namespace quiver::cli {
namespace {

// Logs every model version that is not READY (except models never asked to load);
// returns how many there are.
int ReportUnavailableModels(engine::Engine& engine) {
  auto index = engine.Index();
  if (!index.ok()) {
    spdlog::error("cannot read the model repository index: {}", index.status().ToString());
    return 1;
  }
  int failed = 0;
  for (const auto& entry : *index) {
    if (entry.state == "READY" || entry.reason.empty() || entry.reason == "unloaded") continue;
    spdlog::error("model '{}' version '{}' is {}: {}", entry.name, entry.version, entry.state,
                  entry.reason);
    ++failed;
  }
  return failed;
}

}  // namespace

CLI::App* AddServeCommand(CLI::App& app, ServeOptions& o) {
  auto* serve = app.add_subcommand(
      "serve", "Triton/KServe-v2-compatible inference server (HTTP/REST and gRPC)");
  serve
      ->add_option("--model-repository,--model-store", o.model_repositories,
                   "model repository root (repeatable)")
      ->required()
      ->check(CLI::ExistingDirectory);
  serve->add_option("--model-control-mode", o.model_control_mode, "none|poll|explicit")
      ->check(CLI::IsMember({"none", "poll", "explicit"}))
      ->capture_default_str();
  serve
      ->add_option("--repository-poll-secs", o.repository_poll_secs,
                   "poll mode: seconds between repository scans (0 = never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  serve->add_option("--load-model", o.load_models,
                    "explicit mode: model to load at start, '*' for all (repeatable)");
  serve->add_option("--exit-on-error", o.exit_on_error, "exit when a model fails to load at start")
      ->capture_default_str();
  serve
      ->add_option("--exit-timeout-secs", o.exit_timeout_secs,
                   "on SIGTERM/SIGINT, how long in-flight requests may take to finish")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  serve->add_option("--allow-http", o.allow_http, "serve HTTP/REST")->capture_default_str();
  serve->add_option("--http-address", o.http_address)->capture_default_str();
  serve->add_option("--http-port", o.http_port, "0 = ephemeral")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  serve
      ->add_option("--http-thread-count", o.http_thread_count,
                   "HTTP I/O threads (0 = one per CPU this process may run on: its affinity, e.g. taskset)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  serve->add_option("--allow-grpc", o.allow_grpc, "serve gRPC")->capture_default_str();
  serve->add_option("--grpc-address", o.grpc_address)->capture_default_str();
  serve->add_option("--grpc-port", o.grpc_port, "0 = ephemeral")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  serve
      ->add_option("--grpc-thread-count", o.grpc_thread_count,
                   "gRPC threads, one completion queue each (0 = 1 below 16 usable CPUs, "
                   "then one per 8, at most 4)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  serve->add_option("--allow-metrics", o.allow_metrics, "serve Prometheus metrics")
      ->capture_default_str();
  serve->add_option("--metrics-address", o.metrics_address)->capture_default_str();
  serve->add_option("--metrics-port", o.metrics_port, "0 = ephemeral")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  return serve;
}

int RunServe(const ServeOptions& o) {
  KeepLargeBuffersInHeap();
  if (!InstallShutdownSignals()) {
    spdlog::error("cannot install the SIGTERM/SIGINT handlers: {}", std::strerror(errno));
    return 1;
  }

  engine::EngineOptions engine_options;
  for (const auto& root : o.model_repositories) engine_options.model_repositories.push_back(root);
  auto mode = engine::ParseModelControlMode(o.model_control_mode);
  if (!mode.ok()) {
    spdlog::error("{}", mode.status().message());
    return 1;
  }
  engine_options.control_mode = *mode;
  engine_options.poll_interval = std::chrono::seconds(o.repository_poll_secs);
  engine_options.startup_models = o.load_models;
  if (!o.load_models.empty() && *mode != engine::ModelControlMode::kExplicit) {
    spdlog::warn("--load-model is ignored unless --model-control-mode=explicit");
  }
  engine_options.backends = engine::DefaultBackendRegistry();

  auto created = engine::Engine::Create(std::move(engine_options));
  if (!created.ok()) {
    spdlog::error("cannot start the engine: {}", created.status().ToString());
    return 1;
  }
  std::unique_ptr<engine::Engine> engine = std::move(created).value();
  // A model named with --load-model that is not there (a typo, a missing directory) is a
  // failed load, as in Triton; the Engine only logs it.
  int missing = 0;
  if (*mode == engine::ModelControlMode::kExplicit) {
    for (const auto& name : o.load_models) {
      if (name != "*" && !engine->ModelReady(name, "")) {
        spdlog::error("--load-model {}: the model is not ready (see the error above)", name);
        ++missing;
      }
    }
  }
  if (missing > 0 && o.exit_on_error) {
    spdlog::error("{} model(s) named with --load-model failed to load; exiting "
                  "(--exit-on-error=false to serve the others)",
                  missing);
    return 1;
  }
  // Not ready = a model or version failed to load (models not loaded on purpose, as in
  // explicit mode, do not count).
  if (!engine->Ready()) {
    const int failed = ReportUnavailableModels(*engine);
    if (o.exit_on_error) {
      spdlog::error(
          "{} model version(s) failed to load; exiting (--exit-on-error=false to "
          "serve the others)",
          failed);
      return 1;
    }
  }

  const auto exit_timeout = std::chrono::seconds(o.exit_timeout_secs);
  frontend::SharedMemoryManager shm;

  std::unique_ptr<frontend::HttpServer> http;
  if (o.allow_http) {
    frontend::HttpServerOptions http_options;
    http_options.address = o.http_address;
    http_options.port = static_cast<uint16_t>(o.http_port);
    http_options.threads = o.http_thread_count;
    http_options.stop_timeout = exit_timeout;
    http = std::make_unique<frontend::HttpServer>(*engine, shm, http_options);
    if (Status s = http->Start(); !s.ok()) {
      spdlog::error("HTTP server: {}", s.ToString());
      return 1;
    }
  }

  std::unique_ptr<frontend::GrpcServer> grpc;
  if (o.allow_grpc) {
    frontend::GrpcServerOptions grpc_options;
    grpc_options.address = o.grpc_address;
    grpc_options.port = o.grpc_port;
    grpc_options.shutdown_grace = exit_timeout;
    grpc_options.threads = o.grpc_thread_count;
    grpc = std::make_unique<frontend::GrpcServer>(*engine, shm, grpc_options);
    if (Status s = grpc->Start(); !s.ok()) {
      spdlog::error("gRPC server: {}", s.ToString());
      return 1;
    }
  }

  // Declared after `engine`, so that early returns destroy them first.
  std::unique_ptr<frontend::MetricsRegistry> metrics_registry;
  std::unique_ptr<frontend::MetricsServer> metrics;
  if (o.allow_metrics) {
    frontend::MetricsOptions metrics_options;
    engine::Engine* e = engine.get();
    metrics_options.total_pending_count = [e] { return e->PendingCount(); };
    metrics_registry =
        std::make_unique<frontend::MetricsRegistry>(*engine, std::move(metrics_options));
    frontend::MetricsServerOptions server_options;
    server_options.address = o.metrics_address;
    server_options.port = static_cast<uint16_t>(o.metrics_port);
    metrics = std::make_unique<frontend::MetricsServer>(*metrics_registry, server_options);
    if (Status s = metrics->Start(); !s.ok()) {
      spdlog::error("metrics server: {}", s.ToString());
      return 1;
    }
  }

  std::printf("QUIVER_READY http=%d grpc=%d metrics=%d\n",
              http ? static_cast<int>(http->port()) : 0, grpc ? grpc->port() : 0,
              metrics ? static_cast<int>(metrics->port()) : 0);
  std::fflush(stdout);
  spdlog::info("serving {} repository(ies): HTTP {}:{}, gRPC {}:{}", o.model_repositories.size(),
               o.http_address, http ? http->port() : 0, o.grpc_address, grpc ? grpc->port() : 0);

  const int signo = WaitForShutdownSignal();
  spdlog::info("{}: shutting down ({} request(s) in flight, waiting up to {} s)",
               signo == SIGTERM ? "SIGTERM" : "SIGINT", engine->PendingCount(),
               o.exit_timeout_secs);
  // A second signal while draining: the operator does not want to wait.
  std::thread([] {
    WaitForShutdownSignal();
    spdlog::warn("second shutdown signal: exiting without draining");
    std::_Exit(1);
  }).detach();

  // Both frontends drain at the same time, so shutdown takes at most one exit timeout.
  std::thread grpc_stopper([&grpc] {
    if (grpc) grpc->Stop();
  });
  if (http) http->Stop();
  grpc_stopper.join();
  if (metrics) metrics->Stop();
  metrics.reset();
  metrics_registry.reset();
  http.reset();
  grpc.reset();
  engine.reset();
  spdlog::info("shut down cleanly");
  return 0;
}

}  // namespace quiver::cli
