#pragma once
// Internal to src/analysis: what the columnar and the event-loop runner share. Each runs one
// opened file into the sample's result and the run's report.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "analysis/analysis.h"
#include "physics/emj_file.h"
#include "service/inference_service.h"

namespace quiver::analysis {

struct FileRun {
  const physics::EmjFile& file;
  InferenceService* service;  // non-null with options.use_ml
  const AnalysisOptions& options;
  SampleResult& result;  // the file's sample
  RunReport& report;
  const ProgressFn& progress;
};

void RunColumnar(FileRun& run);
void RunEventLoop(FileRun& run);

// Seconds since `start`.
inline double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The FP32 output `name` of `outputs` with exactly `rows` values ([rows] or [rows, 1]).
Result<std::span<const float>> ScoresOf(const std::vector<Tensor>& outputs, std::string_view name,
                                        int64_t rows);

// Reports events [begin, end) of the run's file as failed.
void RecordFailure(FileRun& run, int64_t begin, int64_t end, const Status& status);
// Counts a chunk as processed (and its events and jets) and reports progress.
void RecordProcessed(FileRun& run, int64_t events, int64_t jets);

}  // namespace quiver::analysis
