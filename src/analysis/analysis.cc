#include "analysis/analysis.h"

#include <fmt/format.h>

#include <memory>

#include "analysis/file_runner.h"
#include "physics/emj_file.h"

namespace quiver::analysis {

Result<Tagger> ParseTagger(std::string_view name) {
  if (name == "gnn") return Tagger::kGnn;
  if (name == "dnn") return Tagger::kDnn;
  if (name == "cut") return Tagger::kCut;
  return Status::InvalidArgument(fmt::format("unknown tagger '{}' (gnn|dnn|cut)", name));
}

std::string_view TaggerName(Tagger tagger) {
  switch (tagger) {
    case Tagger::kGnn:
      return "gnn";
    case Tagger::kDnn:
      return "dnn";
    case Tagger::kCut:
      return "cut";
  }
  return "?";
}

Result<Mode> ParseMode(std::string_view name) {
  if (name == "columnar") return Mode::kColumnar;
  if (name == "eventloop" || name == "event-loop") return Mode::kEventLoop;
  return Status::InvalidArgument(fmt::format("unknown mode '{}' (columnar|eventloop)", name));
}

std::string_view ModeName(Mode mode) { return mode == Mode::kColumnar ? "columnar" : "eventloop"; }

double RunTiming::rest_s() const {
  const double rest = wall_s - io_s - preprocess_s - inference_s;
  return rest > 0 ? rest : 0;
}

Result<std::span<const float>> ScoresOf(const std::vector<Tensor>& outputs, std::string_view name,
                                        int64_t rows) {
  for (const Tensor& t : outputs) {
    if (t.name != name) continue;
    const int64_t count = ElementCount(t.shape);
    if (t.datatype != DataType::kFp32 || count != rows || t.shape.empty() || t.shape[0] != rows ||
        t.data.size() < static_cast<size_t>(rows) * sizeof(float)) {
      return Status::InvalidArgument(fmt::format("output '{}' is {} {}, expected FP32 [{}, 1]",
                                                 name, DataTypeName(t.datatype),
                                                 ShapeToString(t.shape), rows));
    }
    return std::span<const float>(t.data_as<float>(), static_cast<size_t>(rows));
  }
  return Status::InvalidArgument(fmt::format("no output '{}'", name));
}

void RecordFailure(FileRun& run, int64_t begin, int64_t end, const Status& status) {
  run.report.failures.push_back({run.file.info().path, begin, end, status.ToString()});
  ++run.report.chunks_failed;
  run.report.events_failed += end - begin;
  if (run.progress) {
    run.progress(run.report.events_processed + run.report.events_failed, run.report.events_total);
  }
}

void RecordProcessed(FileRun& run, int64_t events, int64_t jets) {
  ++run.report.chunks_processed;
  run.report.events_processed += events;
  run.report.jets_processed += jets;
  if (run.progress) {
    run.progress(run.report.events_processed + run.report.events_failed, run.report.events_total);
  }
}

Result<RunReport> RunAnalysis(const std::vector<std::string>& inputs, InferenceService* service,
                              const AnalysisOptions& options, const ProgressFn& progress) {
  if (inputs.empty()) return Status::InvalidArgument("no input files");
  if (options.chunk_size < 1) return Status::InvalidArgument("chunk size must be >= 1");
  if (options.use_ml && service == nullptr) {
    return Status::InvalidArgument("ML tagging needs an inference service (or use --no-ml)");
  }
  if (options.min_jets < options.lead_jets) {
    return Status::InvalidArgument("the jet multiplicity cut must be >= the number of lead jets");
  }
  const auto start = std::chrono::steady_clock::now();
  RunReport report;
  // Open (and validate) every file first: bad inputs show before any work, and the
  // progress bar knows the total.
  std::vector<std::unique_ptr<physics::EmjFile>> files;
  for (const std::string& path : inputs) {
    auto file = physics::EmjFile::Open(path);
    if (!file.ok()) {
      report.failures.push_back({path, 0, 0, file.status().ToString()});
      ++report.files_failed;
      continue;
    }
    report.events_total += (*file)->n_events();
    report.files.push_back(path);
    files.push_back(std::move(file).value());
  }
  report.timing.io_s += SecondsSince(start);
  if (files.empty()) {
    return Status::InvalidArgument("no input file could be opened; first error: " +
                                   report.failures.front().message);
  }
  for (const auto& file : files) {
    FileRun run{*file, service, options, report.samples[file->info().sample], report, progress};
    if (options.mode == Mode::kColumnar) {
      RunColumnar(run);
    } else {
      RunEventLoop(run);
    }
  }
  report.timing.wall_s = SecondsSince(start);
  return report;
}

nlohmann::json RunReport::ToJson(const AnalysisOptions& options) const {
  nlohmann::json samples_json = nlohmann::json::object();
  for (const auto& [name, result] : samples) samples_json[name] = result.ToJson();
  nlohmann::json failures_json = nlohmann::json::array();
  for (const ChunkFailure& f : failures) {
    failures_json.push_back(
        {{"file", f.file}, {"begin", f.begin}, {"end", f.end}, {"error", f.message}});
  }
  const double wall = timing.wall_s > 0 ? timing.wall_s : 1e-9;
  nlohmann::json timing_json = {{"mode", ModeName(options.mode)},
                                {"tagger", options.use_ml ? TaggerName(options.tagger) : "cut"},
                                {"ml", options.use_ml},
                                {"gnn", options.use_ml && options.use_gnn},
                                {"chunk_size", options.chunk_size},
                                {"wall_s", timing.wall_s},
                                {"io_s", timing.io_s},
                                {"preprocess_s", timing.preprocess_s},
                                {"inference_s", timing.inference_s},
                                {"inference_busy_s", timing.inference_busy_s},
                                {"rest_s", timing.rest_s()},
                                {"events_total", events_total},
                                {"events_processed", events_processed},
                                {"events_failed", events_failed},
                                {"jets_processed", jets_processed},
                                {"chunks_processed", chunks_processed},
                                {"chunks_failed", chunks_failed},
                                {"files_failed", files_failed},
                                {"inference_calls", inference_calls},
                                {"events_per_s", static_cast<double>(events_processed) / wall},
                                {"jets_per_s", static_cast<double>(jets_processed) / wall},
                                {"failures", std::move(failures_json)}};
  return {{"samples", std::move(samples_json)}, {"timing", std::move(timing_json)}};
}

}  // namespace quiver::analysis
