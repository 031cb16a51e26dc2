// `quiver`: the command-line entry point. Subcommands are thin: parse flags, call a
// library function, map its Status to an exit code.

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "bench/engine_bench.h"
#include "cli/serve.h"

int main(int argc, char** argv) {
  CLI::App app{"Quiver: fast, shareable ML inference for columnar HEP analysis"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->capture_default_str();

  auto* bench = app.add_subcommand("bench", "Benchmarks (programs, not tests)");
  bench->require_subcommand(1);
  quiver::bench::EngineBenchOptions engine_options;
  auto* engine = bench->add_subcommand(
      "engine", "In-process Engine vs direct calls: simple_mlp throughput, identity overhead");
  engine->add_option("--model-repository", engine_options.model_repository)
      ->capture_default_str();
  engine->add_option("--seconds", engine_options.seconds_per_round, "seconds per window")
      ->capture_default_str();
  engine->add_option("--rounds", engine_options.rounds, "interleaved A/B windows")
      ->capture_default_str();
  engine->add_option("--batch", engine_options.batch)->capture_default_str();
  engine->add_option("--threads", engine_options.threads, "client threads = instances")
      ->capture_default_str();
  engine->add_option("--torch-threads", engine_options.torch_threads)->capture_default_str();
  engine->add_option("--identity-elements", engine_options.identity_elements)
      ->capture_default_str();
  engine->add_flag("--markdown", engine_options.markdown, "print a Markdown table");

  quiver::cli::ServeOptions serve_options;
  auto* serve = quiver::cli::AddServeCommand(app, serve_options);

  CLI11_PARSE(app, argc, argv);
  // Logs go to stderr: stdout carries results (bench tables, serve's QUIVER_READY line).
  spdlog::set_default_logger(spdlog::stderr_color_mt("quiver"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (engine->parsed()) return quiver::bench::RunEngineBench(engine_options);
  if (serve->parsed()) return quiver::cli::RunServe(serve_options);
  return 0;
}
