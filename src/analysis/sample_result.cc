#include "analysis/sample_result.h"

namespace quiver::analysis {
namespace bh = boost::histogram;

namespace {
Histogram1D Make(unsigned bins, double lo, double hi) {
  return bh::make_histogram(bh::axis::regular<>(bins, lo, hi));
}
}  // namespace

SampleResult::SampleResult()
    : ht(Make(40, 0, 4000)),
      jet_pt(Make(40, 0, 2000)),
      gnn_score(Make(20, 0, 1)),
      dnn_score(Make(20, 0, 1)),
      event_score(Make(20, 0, 1)),
      n_tagged(Make(5, 0, 5)) {}

void SampleResult::Merge(const SampleResult& other) {
  for (int i = 0; i < kCutflowSteps; ++i) cutflow[i] += other.cutflow[i];
  ht += other.ht;
  jet_pt += other.jet_pt;
  gnn_score += other.gnn_score;
  dnn_score += other.dnn_score;
  event_score += other.event_score;
  n_tagged += other.n_tagged;
  selected.insert(selected.end(), other.selected.begin(), other.selected.end());
}

nlohmann::json HistogramJson(const Histogram1D& h) {
  const auto& axis = h.axis(0);
  nlohmann::json edges = nlohmann::json::array();
  nlohmann::json counts = nlohmann::json::array();
  for (int i = 0; i < axis.size(); ++i) {
    edges.push_back(axis.value(i));
    counts.push_back(static_cast<int64_t>(h.at(i)));
  }
  edges.push_back(axis.value(axis.size()));
  return {{"edges", std::move(edges)}, {"counts", std::move(counts)}};
}

nlohmann::json SampleResult::ToJson() const {
  nlohmann::json selected_ids = nlohmann::json::array();
  for (const EventId& id : selected) selected_ids.push_back({id.run, id.lumi, id.event});
  return {{"cutflow", cutflow},
          {"histograms",
           {{"ht", HistogramJson(ht)},
            {"jet_pt", HistogramJson(jet_pt)},
            {"gnn_score", HistogramJson(gnn_score)},
            {"dnn_score", HistogramJson(dnn_score)},
            {"event_score", HistogramJson(event_score)},
            {"n_tagged", HistogramJson(n_tagged)}}},
          {"selected", std::move(selected_ids)}};
}

}  // namespace quiver::analysis
