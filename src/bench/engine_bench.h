#pragma once
// `quiver bench engine`: in-process throughput and overhead of the Engine, measured
// side by side with direct calls on the same threads (ratios, not absolute times).

#include <string>

namespace quiver::bench {

struct EngineBenchOptions {
  std::string model_repository = "models";
  double seconds_per_round = 1.0;  // each measurement window
  int rounds = 5;                  // A/B windows are interleaved; medians are reported
  int batch = 64;                  // simple_mlp batch size per request
  int threads = 1;                 // client threads (= instances = direct-call threads)
  int torch_threads = 1;           // intra-op threads for both paths
  int identity_elements = 4;       // FP32 elements per identity request
  bool markdown = false;           // print a docs/benchmarks.md-ready table
  // Where simple_mlp runs, for the Engine (instance_group kind) and the direct calls:
  // "cpu" or "gpu" (CUDA device 0; inputs and outputs travel through host memory on both
  // paths). "gpu" adds a row: the Engine on the GPU vs direct calls on the CPU.
  std::string device = "cpu";
  bool identity = true;  // also measure the identity_fp32 overhead
};

// Runs both benchmarks and prints a table; returns a process exit code.
int RunEngineBench(const EngineBenchOptions& options);

}  // namespace quiver::bench
