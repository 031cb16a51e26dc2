#pragma once
// The flags of `quiver bench engine`, shared with the standalone quiver_engine_bench.

#include <CLI/CLI.hpp>

#include "bench/engine_bench.h"

namespace quiver::bench {

inline void AddEngineBenchFlags(CLI::App& command, EngineBenchOptions& o) {
  command.add_option("--model-repository", o.model_repository)->capture_default_str();
  command.add_option("--seconds", o.seconds_per_round, "seconds per window")
      ->capture_default_str();
  command.add_option("--rounds", o.rounds, "interleaved A/B windows")->capture_default_str();
  command.add_option("--batch", o.batch, "simple_mlp rows per request")->capture_default_str();
  command.add_option("--threads", o.threads, "client threads = instances")
      ->capture_default_str();
  command.add_option("--torch-threads", o.torch_threads)->capture_default_str();
  command.add_option("--identity-elements", o.identity_elements)->capture_default_str();
  command.add_option("--device", o.device, "where simple_mlp runs: cpu or gpu (CUDA device 0)")
      ->check(CLI::IsMember({"cpu", "gpu"}))
      ->capture_default_str();
  command.add_flag("--markdown", o.markdown, "print a Markdown table");
  command.add_flag("!--skip-identity", o.identity, "do not measure the identity overhead");
}

}  // namespace quiver::bench
