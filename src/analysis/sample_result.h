#pragma once
// SampleResult: what the analysis produces for one sample: the cutflow, the contract's
// histograms (Boost.Histogram, regular binnings) and the ids of the selected events.
// Results of chunks and files of a sample are merged with Merge (histograms add).

#include <array>
#include <boost/histogram.hpp>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/analysis_options.h"

namespace quiver::analysis {

using Histogram1D =
    decltype(boost::histogram::make_histogram(boost::histogram::axis::regular<>(1, 0.0, 1.0)));

// (run, luminosityBlock, event).
struct EventId {
  uint64_t run = 0;
  uint64_t lumi = 0;
  uint64_t event = 0;
  friend bool operator==(const EventId&, const EventId&) = default;
};

struct SampleResult {
  SampleResult();

  std::array<int64_t, kCutflowSteps> cutflow{};
  Histogram1D ht;                 // after step 2
  Histogram1D jet_pt;             // leading selected jets, after step 3
  Histogram1D gnn_score;          // same jets (ML only)
  Histogram1D dnn_score;          // same jets (ML only)
  Histogram1D event_score;        // after step 3 (ML only)
  Histogram1D n_tagged;           // after step 3
  std::vector<EventId> selected;  // events passing step 4, in file order

  // Adds `other`'s counts and appends its selected events.
  void Merge(const SampleResult& other);
  // {"cutflow": [...], "histograms": {name: {"edges": [...], "counts": [...]}},
  //  "selected": [[run, lumi, event], ...]}. Counts are the in-range bins (no flow bins).
  nlohmann::json ToJson() const;
};

// {"edges": [...], "counts": [...]} of a regular 1-D histogram.
nlohmann::json HistogramJson(const Histogram1D& h);

}  // namespace quiver::analysis
