#include "bench/engine_bench.h"

#include <fmt/format.h>
#include <google/protobuf/text_format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#ifdef QUIVER_WITH_TORCH
#include <ATen/Parallel.h>
#include <torch/script.h>
#endif

#include "core/files.h"
#include "engine/backends/default_backends.h"
#include "engine/engine.h"

namespace quiver::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Runs `body(thread_index)` repeatedly on `threads` threads for `seconds`; returns calls/s.
// The first exception a body throws stops every thread and is rethrown here.
template <typename Body>
double Throughput(int threads, double seconds, Body body) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> calls{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::vector<std::thread> pool;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      uint64_t n = 0;
      try {
        while (!stop.load(std::memory_order_relaxed)) {
          body(t);
          ++n;
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        stop = true;
      }
      calls += n;
    });
  }
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (!stop.load() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::min<Clock::duration>(deadline - Clock::now(),
                                                          std::chrono::milliseconds(10)));
  }
  stop = true;
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(calls.load()) / elapsed;
}

Result<InferResponse> InferSync(InferenceService& service, InferRequest request) {
  std::promise<Result<InferResponse>> promise;
  auto future = promise.get_future();
  service.Infer(std::move(request), [&promise](Result<InferResponse> r) {
    promise.set_value(std::move(r));
  });
  return future.get();
}

struct Row {
  std::string name;
  std::string a_label;
  double a;
  std::string b_label;
  double b;
  std::string unit;
  std::string verdict;
};

void Print(const std::vector<Row>& rows, bool markdown) {
  if (markdown) {
    fmt::print("| measurement | baseline | engine | result vs target |\n");
    fmt::print("|---|---|---|---|\n");
    for (const auto& r : rows) {
      fmt::print("| {} | {}: {:.1f} {} | {}: {:.1f} {} | {} |\n", r.name, r.a_label, r.a,
                 r.unit, r.b_label, r.b, r.unit, r.verdict);
    }
    return;
  }
  for (const auto& r : rows) {
    fmt::print("{:<40} {:>14}: {:>10.1f} {:<8} {:>14}: {:>10.1f} {:<8} {}\n", r.name,
               r.a_label, r.a, r.unit, r.b_label, r.b, r.unit, r.verdict);
  }
}

Result<Row> IdentityOverhead(const EngineBenchOptions& o) {
  engine::EngineOptions eo;
  eo.model_repositories = {o.model_repository};
  eo.control_mode = engine::ModelControlMode::kExplicit;
  eo.startup_models = {"identity_fp32"};
  eo.backends = engine::DefaultBackendRegistry();
  auto engine = engine::Engine::Create(std::move(eo));
  if (!engine.ok()) return engine.status();
  auto config = (*engine)->GetModelConfig("identity_fp32", "");
  if (!config.ok()) return config.status();

  std::vector<float> values(static_cast<size_t>(o.identity_elements), 1.5f);
  const Tensor input = MakeTensor<float>("INPUT0", DataType::kFp32,
                                         {static_cast<int64_t>(values.size())}, values);
  auto backend = engine::DefaultBackendRegistry()->Find("identity");
  engine::InstanceContext context;
  context.config = &config.value();
  auto instance = (*backend)->CreateInstance(context);
  if (!instance.ok()) return instance.status();
  const std::vector<std::string> outputs = {"OUTPUT0"};

  auto direct = [&](int) {
    std::vector<Tensor> out;
    engine::ComputeTimes times;
    engine::BackendBatch batch{std::span<const Tensor>(&input, 1), outputs, 0};
    (void)(*instance)->Execute(batch, out, times);
  };
  auto through_engine = [&](int) {
    InferRequest request;
    request.model = "identity_fp32";
    request.inputs = {input};
    auto r = InferSync(**engine, std::move(request));
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
  };
  Throughput(1, 0.2, direct);
  Throughput(1, 0.2, through_engine);
  std::vector<double> a, b;
  for (int round = 0; round < o.rounds; ++round) {
    a.push_back(1e9 / Throughput(1, o.seconds_per_round, direct));
    b.push_back(1e9 / Throughput(1, o.seconds_per_round, through_engine));
  }
  const double overhead_us = (Median(b) - Median(a)) / 1000.0;
  return Row{"identity_fp32 per request (1 thread)", "backend direct", Median(a) / 1000.0,
             "Engine::Infer", Median(b) / 1000.0, "us/req",
             fmt::format("+{:.2f} us/req; target < 20 us: {}", overhead_us,
                         overhead_us < 20 ? "met" : "MISSED")};
}

#ifdef QUIVER_WITH_TORCH
bool UseGpu(const EngineBenchOptions& o) { return o.device == "gpu"; }

// A scratch repository with the shipped simple_mlp at `instances` instances (on the CPU or
// on CUDA device 0), so that Engine and direct calls use the same number of threads and
// devices; max_batch_size is raised to `batch` when the shipped config's is smaller.
Result<fs::path> MakeMlpRepository(const fs::path& source, int instances, bool gpu, int batch) {
  const fs::path dir = fs::temp_directory_path() /
                       fmt::format("quiver-bench-{}", static_cast<long>(::getpid()));
  const fs::path model = dir / "simple_mlp";
  std::error_code ec;
  fs::create_directories(model / "1", ec);
  fs::copy_file(source / "simple_mlp" / "1" / "model.pt", model / "1" / "model.pt",
                fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::NotFound("cannot copy simple_mlp: " + ec.message());
  std::ifstream in(source / "simple_mlp" / "config.pbtxt");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ModelConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(text, &config)) {
    return Status::InvalidArgument("cannot parse simple_mlp/config.pbtxt");
  }
  config.set_max_batch_size(std::max(config.max_batch_size(), batch));
  config.clear_instance_group();
  auto* group = config.add_instance_group();
  group->set_count(instances);
  if (gpu) {
    group->set_kind(inference::ModelInstanceGroup::KIND_GPU);
    group->add_gpus(0);
  } else {
    group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  }
  google::protobuf::TextFormat::PrintToString(config, &text);
  std::ofstream(model / "config.pbtxt") << text;
  return dir;
}

// simple_mlp's statistics (its one version).
Result<ModelStatistics> MlpStatistics(engine::Engine& engine) {
  auto stats = engine.GetStatistics("simple_mlp", "");
  if (!stats.ok()) return stats.status();
  if (stats->size() != 1) return Status::Internal("simple_mlp: expected one version's statistics");
  return stats->front();
}

// Why simple_mlp is not ready, from the repository index.
std::string NotReadyReason(engine::Engine& engine) {
  auto index = engine.Index();
  if (!index.ok()) return index.status().ToString();
  for (const auto& entry : *index) {
    if (entry.name == "simple_mlp" && !entry.reason.empty()) return entry.reason;
  }
  return "see the log";
}

Result<std::vector<Row>> MlpThroughput(const EngineBenchOptions& o) {
  at::set_num_threads(o.torch_threads);
  const bool gpu = UseGpu(o);
  if (gpu && (!at::hasCUDA() || at::getNumGPUs() == 0)) {
    return Status::Unavailable(
        "--device gpu: libtorch sees no CUDA device (a CPU-only libtorch, or no GPU/driver)");
  }
  auto repo = MakeMlpRepository(o.model_repository, o.threads, gpu, o.batch);
  if (!repo.ok()) return repo.status();
  // Declared before the Engine, so that it outlives it.
  struct RemoveOnExit {
    fs::path dir;
    ~RemoveOnExit() { RemoveTree(dir); }
  } remove_on_exit{*repo};
  engine::EngineOptions eo;
  eo.model_repositories = {*repo};
  eo.backends = engine::DefaultBackendRegistry();
  auto engine = engine::Engine::Create(std::move(eo));
  if (!engine.ok()) return engine.status();
  if (!(*engine)->ModelReady("simple_mlp", "")) {
    return Status::Unavailable("simple_mlp did not load: " + NotReadyReason(**engine));
  }

  const int64_t features = 32;
  std::vector<float> data(static_cast<size_t>(o.batch * features));
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  for (auto& x : data) x = dist(rng);
  const Tensor input = MakeTensor<float>("INPUT__0", DataType::kFp32, {o.batch, features}, data);

  // Direct calls do what the Engine does around forward(): inputs from host memory to the
  // device, the result back to host memory.
  const std::string model_file = (*repo / "simple_mlp" / "1" / "model.pt").string();
  const at::Device device = gpu ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  std::vector<torch::jit::Module> modules, cpu_modules;
  for (int t = 0; t < o.threads; ++t) {
    modules.push_back(torch::jit::load(model_file, device));
    modules.back().eval();
    if (gpu) {
      cpu_modules.push_back(torch::jit::load(model_file));
      cpu_modules.back().eval();
    }
  }
  auto call = [&](torch::jit::Module& module, bool on_gpu) {
    c10::InferenceMode guard;
    auto x = torch::from_blob(const_cast<float*>(data.data()), {o.batch, features});
    if (on_gpu) x = x.to(device);
    auto y = module.forward({x}).toTensor();
    if (on_gpu) y = y.to(at::kCPU);
    y = y.contiguous();
    if (y.size(0) != o.batch) throw std::runtime_error("bad output");
  };
  auto direct = [&](int t) { call(modules[static_cast<size_t>(t)], gpu); };
  auto cpu_direct = [&](int t) { call(cpu_modules[static_cast<size_t>(t)], false); };
  auto through_engine = [&](int) {
    InferRequest request;
    request.model = "simple_mlp";
    request.inputs = {input};
    auto r = InferSync(**engine, std::move(request));
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
  };
  // Warm both paths up (TorchScript's profiling executor optimises after a few runs),
  // then alternate which goes first so that drifts in machine load cancel.
  Throughput(o.threads, 0.3, direct);
  Throughput(o.threads, 0.3, through_engine);
  std::vector<double> a, b, c, ratios;
  if (gpu) {
    Throughput(o.threads, 0.3, cpu_direct);
    for (int round = 0; round < o.rounds; ++round) {
      c.push_back(Throughput(o.threads, o.seconds_per_round, cpu_direct) * o.batch);
    }
  }
  ModelStatistics stats_before;  // GPU only: for the time-per-batch row
  if (gpu) {
    auto stats = MlpStatistics(**engine);
    if (!stats.ok()) return stats.status();
    stats_before = std::move(stats).value();
  }
  for (int round = 0; round < o.rounds; ++round) {
    double da = 0, db = 0;
    if (round % 2 == 0) {
      da = Throughput(o.threads, o.seconds_per_round, direct) * o.batch;
      db = Throughput(o.threads, o.seconds_per_round, through_engine) * o.batch;
    } else {
      db = Throughput(o.threads, o.seconds_per_round, through_engine) * o.batch;
      da = Throughput(o.threads, o.seconds_per_round, direct) * o.batch;
    }
    a.push_back(da);
    b.push_back(db);
    ratios.push_back(db / da);
  }
  const double ratio = Median(ratios);
  std::vector<Row> rows;
  rows.push_back(Row{fmt::format("simple_mlp batch {} ({} thread(s){})", o.batch, o.threads,
                                 gpu ? ", GPU" : ""),
                     gpu ? "TorchScript GPU direct" : "TorchScript direct", Median(a),
                     gpu ? "Engine GPU" : "Engine", Median(b), "infer/s",
                     fmt::format("ratio {:.3f}; target >= 0.95: {}", ratio,
                                 ratio >= 0.95 ? "met" : "MISSED")});
  if (gpu) {
    // GPU windows vary more than CPU ones: show each round's ratio.
    std::string each;
    for (double r : ratios) each += fmt::format(" {:.2f}", r);
    rows.back().verdict += "; rounds:" + each;
    // Where a batch's time goes: the Engine's statistics over the measured windows.
    auto stats_after = MlpStatistics(**engine);
    if (!stats_after.ok()) return stats_after.status();
    const ModelStatistics& s0 = stats_before;
    const ModelStatistics& s1 = *stats_after;
    const auto per_request = [&](const StatisticDuration& d0, const StatisticDuration& d1) {  // us
      const uint64_t n = s1.success.count - s0.success.count;
      return n == 0 ? 0.0 : static_cast<double>(d1.ns - d0.ns) / 1000.0 / static_cast<double>(n);
    };
    const double input_us = per_request(s0.compute_input, s1.compute_input);
    const double infer_us = per_request(s0.compute_infer, s1.compute_infer);
    const double output_us = per_request(s0.compute_output, s1.compute_output);
    // Wall time per batch on one thread (each thread runs one batch at a time), averaged
    // over the windows as the statistics are.
    const auto batch_us = [&](const std::vector<double>& infer_per_s) {
      double sum = 0;
      for (double x : infer_per_s) sum += x;
      return sum > 0 ? 1e6 * o.threads * o.batch * static_cast<double>(infer_per_s.size()) / sum
                     : 0.0;
    };
    const double engine_us = batch_us(b);
    rows.push_back(Row{
        fmt::format("simple_mlp batch {} ({} thread(s)), GPU, time per batch", o.batch,
                    o.threads),
        "TorchScript GPU direct", batch_us(a), "Engine GPU", engine_us, "us",
        fmt::format("Engine: compute input {:.1f} + infer {:.1f} + output {:.1f} us (its "
                    "statistics), rest {:.1f} us (validation, scheduling, response)",
                    input_us, infer_us, output_us,
                    engine_us - input_us - infer_us - output_us)});
    rows.push_back(Row{fmt::format("simple_mlp batch {} ({} thread(s)), GPU vs CPU", o.batch,
                                   o.threads),
                       fmt::format("TorchScript CPU direct ({} torch threads)", o.torch_threads),
                       Median(c), "Engine GPU", Median(b), "infer/s",
                       fmt::format("Engine GPU / CPU direct: {:.2f}x", Median(b) / Median(c))});
  }
  return rows;
}
#endif

}  // namespace

int RunEngineBench(const EngineBenchOptions& options) {
  std::vector<Row> rows;
  try {
#ifdef QUIVER_WITH_TORCH
    auto mlp = MlpThroughput(options);
    if (!mlp.ok()) {
      fmt::print(stderr, "simple_mlp benchmark failed: {}\n", mlp.status().ToString());
      return 1;
    }
    rows.insert(rows.end(), mlp->begin(), mlp->end());
#else
    if (options.device != "cpu") {
      fmt::print(stderr, "built without libtorch: --device {} is not available\n",
                 options.device);
      return 1;
    }
    fmt::print(stderr, "built without libtorch: skipping the simple_mlp benchmark\n");
#endif
    if (options.identity) {
      auto identity = IdentityOverhead(options);
      if (!identity.ok()) {
        fmt::print(stderr, "identity benchmark failed: {}\n", identity.status().ToString());
        return 1;
      }
      rows.push_back(*identity);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "benchmark failed: {}\n", e.what());
    return 1;
  }
  Print(rows, options.markdown);
  return 0;
}

}  // namespace quiver::bench
