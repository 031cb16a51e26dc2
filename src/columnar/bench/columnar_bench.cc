// quiver_columnar_bench: throughput of the columnar bridge on synthetic jets.
//   quiver_columnar_bench [jets=100000] [max_constituents=64] [features=8] [repeats=5]
// Jets get 1..max_constituents constituents (uniform); times are the best of `repeats`
// (robust on a shared machine).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "columnar/batch_runner.h"
#include "columnar/pad.h"
#include "columnar/reduce.h"
#include "columnar/stack.h"
#include "engine/backends/identity_backend.h"
#include "engine/engine.h"

namespace quiver::columnar {
namespace {

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Best wall time and best CPU time of the calling thread (less disturbed on a busy
// machine; it leaves out work done on other threads, e.g. the engine's).
struct Times {
  double wall = 1e30;
  double cpu = 1e30;
};

Times BestSeconds(int repeats, const std::function<void()>& body) {
  Times best;
  for (int r = 0; r < repeats; ++r) {
    const double cpu0 = ThreadCpuSeconds();
    auto start = std::chrono::steady_clock::now();
    body();
    best.wall = std::min(
        best.wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    best.cpu = std::min(best.cpu, ThreadCpuSeconds() - cpu0);
  }
  return best;
}

void Report(const char* what, int64_t objects, Times t, double bytes) {
  std::printf("%-56s %8.2f ms wall %8.2f ms cpu  %7.2f M objects/s  %6.2f GB/s (cpu)\n", what,
              t.wall * 1e3, t.cpu * 1e3, double(objects) / t.cpu / 1e6, bytes / t.cpu / 1e9);
}

void Check(const Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

int Main(int argc, char** argv) {
  const int64_t jets = argc > 1 ? std::atoll(argv[1]) : 100000;
  const int64_t max_constituents = argc > 2 ? std::atoll(argv[2]) : 64;
  const int64_t num_features = argc > 3 ? std::atoll(argv[3]) : 8;
  const int repeats = argc > 4 ? std::atoi(argv[4]) : 5;

  std::mt19937 rng(1);
  std::vector<int64_t> offsets{0};
  for (int64_t j = 0; j < jets; ++j) {
    offsets.push_back(offsets.back() +
                      std::uniform_int_distribution<int64_t>(1, max_constituents)(rng));
  }
  const size_t content = size_t(offsets.back());
  std::vector<std::vector<float>> features(static_cast<size_t>(num_features),
                                           std::vector<float>(content));
  std::uniform_real_distribution<float> u(0, 100);
  for (auto& f : features) {
    for (float& x : f) x = u(rng);
  }
  JaggedView view{"jets", offsets, {}};
  for (int64_t f = 0; f < num_features; ++f) view.fields.push_back({"f", features[size_t(f)]});
  std::printf("%lld jets, %zu constituents (mean %.1f), %lld features, best of %d\n",
              static_cast<long long>(jets), content, double(content) / double(jets),
              static_cast<long long>(num_features), repeats);
  const double in_bytes = double(content) * double(num_features) * sizeof(float);

  auto pad = [&](const char* what, PadOptions o) {
    Padded keep;
    const Times s = BestSeconds(repeats, [&] {
      auto p = PadJagged(view, o);
      Check(p.status());
      keep = std::move(*p);
    });
    Report(what, jets, s, in_bytes + double(keep.values.data.size() + keep.mask.data.size()));
    return keep;
  };
  PadOptions first{.max_len = max_constituents};
  {
    const size_t bytes =
        size_t(jets * max_constituents) * (size_t(num_features) * sizeof(float) + 1);
    const Times s = BestSeconds(repeats, [&] {
      Buffer b = Buffer::Allocate(bytes);
      std::memset(b.mutable_data(), 0, bytes);
    });
    Report("floor: allocate + memset the padded output size", jets, s, double(bytes));
  }
  Padded padded = pad("pad, keep first, [n, L, F], BOOL mask", first);
  {
    Padded reuse = padded;  // the same sizes; written again in place
    std::span<float> values(reinterpret_cast<float*>(reuse.values.data.mutable_data()),
                            reuse.values.data.size() / sizeof(float));
    std::span<std::byte> mask(reuse.mask.data.mutable_data(), reuse.mask.data.size());
    const Times s = BestSeconds(repeats, [&] { Check(PadJaggedInto(view, first, values, mask)); });
    Report("pad into reused buffers (PadJaggedInto), keep first", jets, s,
           in_bytes + double(values.size_bytes() + mask.size()));
    PadOptions sorted{.max_len = max_constituents,
                      .truncation = Truncation::kTopByKey,
                      .sort_key = view.fields[0]};
    const Times t = BestSeconds(repeats, [&] { Check(PadJaggedInto(view, sorted, values, mask)); });
    Report("pad into reused buffers (PadJaggedInto), sorted by key", jets, t,
           in_bytes + double(values.size_bytes() + mask.size()));
  }
  pad("pad, keep first, [n, F, L] (channels-first)",
      PadOptions{.max_len = max_constituents, .layout = PadLayout::kFeaturesObjects});
  PadOptions top{.max_len = max_constituents / 2,
                 .truncation = Truncation::kTopByKey,
                 .sort_key = view.fields[0]};
  pad("pad, top L/2 by key (sort + truncate), [n, L/2, F]", top);
  PadOptions top_all = top;
  top_all.max_len = max_constituents;
  pad("pad, sorted by key, [n, L, F]", top_all);

  {
    Tensor out;
    const Times s = BestSeconds(repeats, [&] {
      auto r = UnpadToContent(padded.values, view, first, 0.f);
      Check(r.status());
      out = std::move(*r);
    });
    Report("unpad [n, L, F] -> content, storage order", jets, s,
           double(padded.values.data.size()) + in_bytes);
  }
  {
    std::vector<FieldView> flat;
    std::vector<std::vector<float>> per_jet(static_cast<size_t>(num_features),
                                            std::vector<float>(static_cast<size_t>(jets)));
    for (auto& f : per_jet) {
      for (float& x : f) x = u(rng);
    }
    for (int64_t f = 0; f < num_features; ++f) flat.push_back({"f", per_jet[size_t(f)]});
    const Times s = BestSeconds(repeats, [&] { Check(StackColumns(flat).status()); });
    Report("stack F per-jet columns -> [n, F]", jets, s,
           2.0 * double(jets) * double(num_features) * sizeof(float));
  }
  {
    Tensor per_constituent = MakeTensor<float>("pt", DataType::kFp32, {int64_t(content)},
                                               std::span<const float>(features[0]));
    const Times s = BestSeconds(repeats, [&] {
      Check(ReduceLists(per_constituent, offsets, Reduction::kMax, 0.f).status());
    });
    Report("reduce max over constituents -> per jet", jets, s, double(content) * sizeof(float));
  }

  // RunBatched through the in-process Engine, identity model: chunking, concurrency and
  // gathering overhead with no model compute.
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / "quiver-columnar-bench";
  fs::remove_all(root);
  fs::create_directories(root / "pid" / "1");
  std::ofstream(root / "pid" / "1" / "weights.txt") << "1";
  std::ofstream(root / "pid" / "config.pbtxt")
      << "name: \"pid\"\nbackend: \"identity\"\nmax_batch_size: 1024\n"
         "input { name: \"PF\" data_type: TYPE_FP32 dims: [ -1, -1 ] }\n"
         "input { name: \"MASK\" data_type: TYPE_BOOL dims: [ -1 ] }\n"
         "output { name: \"PF_OUT\" data_type: TYPE_FP32 dims: [ -1, -1 ] }\n"
         "output { name: \"MASK_OUT\" data_type: TYPE_BOOL dims: [ -1 ] }\n"
         "instance_group { count: 2 kind: KIND_CPU }\n";
  auto registry = std::make_shared<engine::BackendRegistry>();
  registry->Register("identity", std::make_shared<engine::IdentityBackend>());
  engine::EngineOptions eo;
  eo.model_repositories = {root};
  eo.backends = registry;
  auto engine = engine::Engine::Create(std::move(eo));
  Check(engine.status());
  std::vector<Tensor> inputs{padded.values, padded.mask};
  inputs[0].name = "PF";
  inputs[1].name = "MASK";
  for (int in_flight : {1, 4}) {
    BatchOptions bo;
    bo.max_in_flight = in_flight;
    const Times s =
        BestSeconds(repeats, [&] { Check(RunBatched(**engine, "pid", inputs, bo).status()); });
    const std::string what =
        "RunBatched via Engine (identity), batch 1024, in flight " + std::to_string(in_flight);
    Report(what.c_str(), jets, s,
           2.0 * double(padded.values.data.size() + padded.mask.data.size()));
  }
  engine->reset();
  fs::remove_all(root);
  return 0;
}

}  // namespace
}  // namespace quiver::columnar

int main(int argc, char** argv) { return quiver::columnar::Main(argc, argv); }
