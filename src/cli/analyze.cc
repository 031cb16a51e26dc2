#include "cli/analyze.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "analysis/analysis.h"
#include "client/client.h"
#include "client/local_service.h"

#ifndef QUIVER_DEFAULT_MODELS
#define QUIVER_DEFAULT_MODELS "models"
#endif
#ifndef QUIVER_VENV_PYTHON
#define QUIVER_VENV_PYTHON ".venv/bin/python"
#endif
#ifndef QUIVER_PYTHON_PATH
#define QUIVER_PYTHON_PATH "python"
#endif

namespace quiver::cli {
namespace {

// A one-line bar on stderr, redrawn at most every 100 ms.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void Update(int64_t done, int64_t total) {
    if (!enabled_ || total <= 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const int width = 30;
    const int filled = static_cast<int>(width * done / total);
    std::fprintf(stderr, "\r[%s%s] %lld/%lld events  %.0f ev/s ", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), elapsed > 0 ? done / elapsed : 0.0);
    if (done >= total) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

void PrintSummary(const analysis::RunReport& r, const analysis::AnalysisOptions& o) {
  static const char* kSteps[analysis::kCutflowSteps] = {"all", ">=4 jets", "HT>500", ">=2 tagged"};
  std::printf("%-16s", "sample");
  for (const char* step : kSteps) std::printf(" %11s", step);
  std::printf(" %9s\n", "eff");
  for (const auto& [name, s] : r.samples) {
    std::printf("%-16s", name.c_str());
    for (int64_t c : s.cutflow) std::printf(" %11lld", static_cast<long long>(c));
    std::printf(" %9.4f\n", s.cutflow[0] > 0 ? double(s.cutflow[3]) / double(s.cutflow[0]) : 0.0);
  }
  const analysis::RunTiming& t = r.timing;
  const double wall = t.wall_s > 0 ? t.wall_s : 1e-9;
  std::printf(
      "\nmode %s, tagger %s, chunk %lld: %lld events processed, %lld failed (of %lld); "
      "%lld chunks processed, %lld failed; %lld file(s) failed to open\n",
      std::string(analysis::ModeName(o.mode)).c_str(),
      o.use_ml ? std::string(analysis::TaggerName(o.tagger)).c_str() : "cut (no ML)",
      static_cast<long long>(o.chunk_size), static_cast<long long>(r.events_processed),
      static_cast<long long>(r.events_failed), static_cast<long long>(r.events_total),
      static_cast<long long>(r.chunks_processed), static_cast<long long>(r.chunks_failed),
      static_cast<long long>(r.files_failed));
  std::printf("wall %.3f s: I/O %.3f, preprocessing %.3f, inference %.3f (busy %.3f), rest %.3f\n",
              t.wall_s, t.io_s, t.preprocess_s, t.inference_s, t.inference_busy_s, t.rest_s());
  std::printf("throughput: %.0f events/s, %.0f jets/s, %lld inference calls\n",
              r.events_processed / wall, r.jets_processed / wall,
              static_cast<long long>(r.inference_calls));
}

}  // namespace

CLI::App* AddAnalyzeCommand(CLI::App& app, AnalyzeOptions& o) {
  auto* cmd = app.add_subcommand("analyze", "Emerging-jets analysis of quiver-emj/1 HDF5 files");
  cmd->add_option("--input,-i", o.inputs, "HDF5 file (repeatable)")->required();
  cmd->add_option("--url,-u", o.urls,
                  "Inference endpoint(s): local://<repo>, grpc://host:port, http://host:port; "
                  "repeat or comma-separate for failover (default local://" QUIVER_DEFAULT_MODELS
                  ")")
      ->delimiter(',');
  cmd->add_option("--mode", o.mode, "columnar|eventloop")->capture_default_str();
  cmd->add_option("--chunk-size", o.analysis.chunk_size, "Events per chunk")->capture_default_str();
  cmd->add_option("--tagger", o.tagger, "gnn|dnn|cut")->capture_default_str();
  cmd->add_flag("--no-ml", o.no_ml, "Cut-based tagger, no inference at all");
  cmd->add_flag("--no-gnn", o.no_gnn,
                "Run emj_dnn and emj_event only (tagger dnn or cut; gnn_score stays empty)");
  cmd->add_option("--score-threshold", o.analysis.score_threshold, "ML tag: score > this")
      ->capture_default_str();
  cmd->add_option("--cut-median-log-ip2d", o.analysis.cut_median_log_ip2d,
                  "Cut tag: medianLogIp2d > this")
      ->capture_default_str();
  cmd->add_option("--cut-alpha3d", o.analysis.cut_alpha3d_max, "Cut tag: alpha3d < this")
      ->capture_default_str();
  cmd->add_option("--jet-pt-min", o.analysis.jet_pt_min, "Jet selection pt > this (GeV)")
      ->capture_default_str();
  cmd->add_option("--jet-eta-max", o.analysis.jet_abs_eta_max, "Jet selection |eta| < this")
      ->capture_default_str();
  cmd->add_option("--ht-min", o.analysis.ht_min, "HT > this (GeV)")->capture_default_str();
  cmd->add_option("--model-version", o.analysis.model_version, "Model version (default: latest)");
  cmd->add_option("--max-in-flight", o.analysis.max_in_flight,
                  "Columnar: requests per model outstanding at once")
      ->capture_default_str();
  cmd->add_option("--timeout-ms", o.timeout_ms, "Per-call deadline (0 = none)");
  cmd->add_option("--token", o.token,
                  "Bearer token sent to remote endpoints (the gateway's tenants); default: the "
                  "environment variable QUIVER_TOKEN")
      ->envname("QUIVER_TOKEN");
  cmd->add_option("--output,-o", o.output, "Write the results and timing as JSON");
  cmd->add_flag("--progress", o.progress, "Progress bar even when stderr is not a terminal");
  return cmd;
}

int RunAnalyze(AnalyzeOptions o) {
  auto mode = analysis::ParseMode(o.mode);
  auto tagger = analysis::ParseTagger(o.tagger);
  if (!mode.ok() || !tagger.ok()) {
    std::fprintf(stderr, "quiver analyze: %s\n",
                 (!mode.ok() ? mode.status() : tagger.status()).message().c_str());
    return 2;
  }
  analysis::AnalysisOptions& a = o.analysis;
  a.mode = *mode;
  a.tagger = *tagger;
  a.use_ml = !o.no_ml;
  a.use_gnn = !o.no_gnn;
  if (o.no_ml) a.tagger = analysis::Tagger::kCut;
  if (a.use_ml && !a.use_gnn && a.tagger == analysis::Tagger::kGnn) {
    std::fprintf(stderr, "quiver analyze: --no-gnn needs --tagger dnn or cut\n");
    return 2;
  }

  std::shared_ptr<client::Client> client;
  if (a.use_ml) {
    client::EnableLocalUrls();
    client::ClientOptions options;
    options.urls = o.urls;
    if (options.urls.empty()) options.urls = {"local://" QUIVER_DEFAULT_MODELS};
    options.timeout = std::chrono::milliseconds(o.timeout_ms);
    options.token = o.token;
    auto made = client::Client::Create(options);
    if (!made.ok()) {
      std::fprintf(stderr, "quiver analyze: %s\n", made.status().ToString().c_str());
      return 1;
    }
    client = std::move(made).value();
    // A missing model would fail every chunk; say so once, before reading anything.
    for (const char* model : {analysis::kGnnModel, analysis::kDnnModel, analysis::kEventModel}) {
      if (!a.use_gnn && model == std::string_view(analysis::kGnnModel)) continue;
      auto metadata = client->GetModelMetadata(model, a.model_version);
      if (!metadata.ok()) {
        std::fprintf(stderr, "quiver analyze: model '%s' at %s: %s\n", model,
                     fmt::format("{}", fmt::join(options.urls, ",")).c_str(),
                     metadata.status().ToString().c_str());
        return 1;
      }
    }
  }
  ProgressBar bar(o.progress || ::isatty(STDERR_FILENO));
  auto report = analysis::RunAnalysis(
      o.inputs, client.get(), a, [&bar](int64_t done, int64_t total) { bar.Update(done, total); });
  if (!report.ok()) {
    std::fprintf(stderr, "quiver analyze: %s\n", report.status().ToString().c_str());
    return 1;
  }
  for (const analysis::ChunkFailure& f : report->failures) {
    if (f.begin == f.end) {
      std::fprintf(stderr, "failed: %s: %s\n", f.file.c_str(), f.message.c_str());
    } else {
      std::fprintf(stderr, "failed: %s events [%lld, %lld): %s\n", f.file.c_str(),
                   static_cast<long long>(f.begin), static_cast<long long>(f.end),
                   f.message.c_str());
    }
  }
  PrintSummary(*report, a);
  if (!o.output.empty()) {
    nlohmann::json j = report->ToJson(a);
    j["timing"]["url"] = a.use_ml ? nlohmann::json(client->options().urls) : nlohmann::json();
    std::ofstream out(o.output);
    out << j.dump(1) << '\n';
    if (!out) {
      std::fprintf(stderr, "quiver analyze: cannot write %s\n", o.output.c_str());
      return 1;
    }
  }
  return report->failures.empty() ? 0 : 1;
}

CLI::App* AddGenerateCommand(CLI::App& app, GenerateOptions& options) {
  auto* cmd = app.add_subcommand(
      "generate", "Generate test bed samples: python -m quiver_testbed generate <args>");
  cmd->prefix_command();  // everything after `generate` goes to the generator
  cmd->allow_extras();
  cmd->set_help_flag();  // `quiver generate --help` is the generator's help
  (void)options;
  return cmd;
}

int RunGenerate(const GenerateOptions& options) {
  const char* env = std::getenv("QUIVER_PYTHON");
  const std::string python = env != nullptr && *env != '\0' ? env : QUIVER_VENV_PYTHON;
  if (::access(python.c_str(), X_OK) != 0) {
    std::fprintf(stderr,
                 "quiver generate: no Python interpreter at %s (set QUIVER_PYTHON to the project "
                 "venv's python, or create .venv: scripts/setup)\n",
                 python.c_str());
    return 1;
  }
  // The package lives in the source tree's python/ unless the venv has it installed.
  std::string path = QUIVER_PYTHON_PATH;
  if (const char* old = std::getenv("PYTHONPATH"); old != nullptr && *old != '\0') {
    path += ":";
    path += old;
  }
  ::setenv("PYTHONPATH", path.c_str(), 1);
  std::vector<std::string> args = {python, "-m", "quiver_testbed", "generate"};
  args.insert(args.end(), options.args.begin(), options.args.end());
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  ::execv(python.c_str(), argv.data());
  std::fprintf(stderr, "quiver generate: cannot run %s: %s\n", python.c_str(),
               std::strerror(errno));
  return 1;
}

}  // namespace quiver::cli
