#pragma once
// The emerging-jets selection's knobs and the model names (docs/testbed-contract.md).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quiver::analysis {

inline constexpr const char* kGnnModel = "emj_gnn";
inline constexpr const char* kDnnModel = "emj_dnn";
inline constexpr const char* kEventModel = "emj_event";

inline constexpr int64_t kMaxTracks = 64;  // emj_gnn slots per jet
inline constexpr int64_t kTrackFeatures = 8;
inline constexpr int64_t kJetFeatures = 6;  // emj_dnn row, emj_event slot
inline constexpr int64_t kEventJets = 8;    // emj_event slots per event

// Cutflow steps: all, >= 4 selected jets, HT, >= 2 tagged.
inline constexpr int kCutflowSteps = 4;

enum class Tagger : uint8_t { kGnn, kDnn, kCut };
Result<Tagger> ParseTagger(std::string_view name);
std::string_view TaggerName(Tagger tagger);

enum class Mode : uint8_t { kColumnar, kEventLoop };
Result<Mode> ParseMode(std::string_view name);
std::string_view ModeName(Mode mode);

struct AnalysisOptions {
  Tagger tagger = Tagger::kGnn;
  // false (--no-ml): no inference at all; the cut-based tagger decides, score histograms
  // stay empty.
  bool use_ml = true;
  // false (--no-gnn): emj_gnn is not run (the benchmark of inference without the GNN);
  // gnn_score stays empty and the gnn tagger is refused.
  bool use_gnn = true;
  Mode mode = Mode::kColumnar;
  int64_t chunk_size = 10000;  // events per read (columnar: per inference batch)
  float jet_pt_min = 50;       // GeV
  float jet_abs_eta_max = 2.0f;
  float ht_min = 500;  // GeV, strictly greater
  int64_t min_jets = 4;
  int64_t lead_jets = 4;  // leading selected jets that are scored and tagged
  int64_t min_tagged = 2;
  float score_threshold = 0.5f;       // gnn/dnn: tagged when score > threshold
  float cut_median_log_ip2d = -1.0f;  // cut: tagged when medianLogIp2d > this
  float cut_alpha3d_max = 0.25f;      //      and alpha3d < this
  std::string model_version;          // "" = each model's default
  int max_in_flight = 4;              // columnar: requests per model outstanding at once
};

}  // namespace quiver::analysis
