// `quiver`: the command-line entry point. Subcommands are thin: parse flags, call a
// library function, map its Status to an exit code.

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "bench/engine_bench.h"
#include "bench/engine_bench_flags.h"
#ifdef QUIVER_WITH_PERF
#include "bench/perf_command.h"
#endif
#include "cli/analyze.h"
#include "cli/admin.h"
#include "cli/gateway.h"
#include "cli/serve.h"
#include "cli/up.h"

int main(int argc, char** argv) {
  CLI::App app{"Quiver: fast, shareable ML inference for columnar HEP analysis"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  auto* bench = app.add_subcommand("bench", "Benchmarks (programs, not tests)");
  bench->require_subcommand(1);
  quiver::bench::EngineBenchOptions engine_options;
  auto* engine = bench->add_subcommand(
      "engine", "In-process Engine vs direct calls: simple_mlp throughput, identity overhead");
  quiver::bench::AddEngineBenchFlags(*engine, engine_options);

  quiver::cli::ServeOptions serve_options;
  auto* serve = quiver::cli::AddServeCommand(app, serve_options);
  quiver::cli::GatewayOptions gateway_options;
  auto* gateway = quiver::cli::AddGatewayCommand(app, gateway_options);
  quiver::cli::AdminOptions admin_options;
  auto* admin = quiver::cli::AddAdminCommand(app, admin_options);
  quiver::cli::UpOptions up_options;
  auto* up = quiver::cli::AddUpCommand(app, up_options);

#ifdef QUIVER_WITH_PERF
  quiver::bench::PerfOptions perf_options;
  auto* perf = app.add_subcommand(
      "perf", "Load generator and latency/throughput profiler (perf_analyzer's flags)");
  quiver::bench::AddPerfFlags(*perf, perf_options);
#endif

  quiver::cli::AnalyzeOptions analyze_options;
  auto* analyze = quiver::cli::AddAnalyzeCommand(app, analyze_options);
  quiver::cli::GenerateOptions generate_options;
  auto* generate = quiver::cli::AddGenerateCommand(app, generate_options);

  CLI11_PARSE(app, argc, argv);
  // Logs go to stderr: stdout carries results (bench tables, serve's QUIVER_READY line).
  spdlog::set_default_logger(spdlog::stderr_color_mt("quiver"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (engine->parsed()) return quiver::bench::RunEngineBench(engine_options);
  if (serve->parsed()) return quiver::cli::RunServe(serve_options);
  if (gateway->parsed()) return quiver::cli::RunGateway(gateway_options);
  if (admin->parsed()) return quiver::cli::RunAdmin(admin_options);
  if (up->parsed()) return quiver::cli::RunUp(up_options);
  if (analyze->parsed()) return quiver::cli::RunAnalyze(analyze_options);
  if (generate->parsed()) {
    generate_options.args = generate->remaining();
    return quiver::cli::RunGenerate(generate_options);
  }
#ifdef QUIVER_WITH_PERF
  if (perf->parsed()) return quiver::bench::RunPerf(perf_options);
#endif
  return 0;
}
