// quiver_engine_bench: `quiver bench engine` as a program of its own, for QUIVER_ENGINE_ONLY
// builds (no frontends, hence no `quiver` program), e.g. on the GPU machine.

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

#include "bench/engine_bench.h"
#include "bench/engine_bench_flags.h"

int main(int argc, char** argv) {
  CLI::App app{"In-process Engine vs direct calls (as `quiver bench engine`)"};
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->capture_default_str();
  quiver::bench::EngineBenchOptions options;
  quiver::bench::AddEngineBenchFlags(app, options);
  CLI11_PARSE(app, argc, argv);
  // Logs go to stderr: stdout carries the table.
  spdlog::set_default_logger(spdlog::stderr_color_mt("quiver"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  return quiver::bench::RunEngineBench(options);
}
