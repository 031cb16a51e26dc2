#pragma once
// RunAnalysis: the emerging-jets analysis over a list of quiver-emj/1 files, in one of two
// styles (docs/testbed-contract.md):
//  - columnar: per chunk of events, whole-chunk array operations build the inputs of every
//    scored jet and event at once; one batched asynchronous call per model per chunk
//    (columnar::RunBatched, which splits it by the model's max_batch_size and sends the
//    pieces concurrently); the next chunk is read and preprocessed while the current
//    chunk's inference runs;
//  - event loop: events one by one, one synchronous request per model per event that
//    passes the HT cut (CMSSW-style).
// Both produce identical cutflows, histograms and selected-event lists for the same model.
//
// A chunk that cannot be read, prepared or scored is reported (file, event range, message),
// counted as failed, and left out of the results; the run goes on. A file that cannot be
// opened is reported and skipped likewise.

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/analysis_options.h"
#include "analysis/sample_result.h"
#include "core/status.h"
#include "service/inference_service.h"

namespace quiver::analysis {

// One chunk (or file: begin = end = 0) that failed.
struct ChunkFailure {
  std::string file;
  int64_t begin = 0;
  int64_t end = 0;
  std::string message;
};

// Where the wall time went, seen from the thread that drives the analysis. In columnar
// mode inference_s is the time spent waiting for results (what the overlap did not hide);
// inference_busy_s adds up the model calls' own durations.
struct RunTiming {
  double wall_s = 0;
  double io_s = 0;
  double preprocess_s = 0;
  double inference_s = 0;
  double inference_busy_s = 0;
  double rest_s() const;
};

struct RunReport {
  std::map<std::string, SampleResult> samples;  // by the files' `sample` attribute
  std::vector<std::string> files;               // opened
  int64_t files_failed = 0;
  int64_t events_total = 0;  // events in the opened files = processed + failed
  int64_t events_processed = 0;
  int64_t events_failed = 0;
  int64_t jets_processed = 0;
  int64_t chunks_processed = 0;
  int64_t chunks_failed = 0;
  int64_t inference_calls = 0;  // columnar: batched calls (RunBatched); event loop: requests
  std::vector<ChunkFailure> failures;
  RunTiming timing;

  // The contract's output JSON: {"samples": {...}, "timing": {...}} (timing also has the
  // counts, rates and the options that matter for comparing runs).
  nlohmann::json ToJson(const AnalysisOptions& options) const;
};

// Called after each chunk with the events done (processed or failed) and the total.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Runs the analysis over `inputs` (file paths). `service` is used only with
// options.use_ml (it may be null otherwise). Errors: INVALID_ARGUMENT for bad options, or
// when every input failed to open; chunk and file failures are in the report.
Result<RunReport> RunAnalysis(const std::vector<std::string>& inputs, InferenceService* service,
                              const AnalysisOptions& options, const ProgressFn& progress = {});

}  // namespace quiver::analysis
