#include "analysis/chunk_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "analysis/features.h"
#include "columnar/pad.h"

namespace quiver::analysis {
namespace {

// Per-object feature columns (one vector per feature) and the lists' offsets.
template <size_t F>
struct Columns {
  std::vector<int64_t> offsets{0};
  std::array<std::vector<float>, F> fields;

  columnar::JaggedView View(std::string_view name) const {
    columnar::JaggedView view{name, offsets, {}};
    for (size_t f = 0; f < F; ++f) view.fields.push_back({"feature", fields[f]});
    return view;
  }
  void Append(const float* values) {
    for (size_t f = 0; f < F; ++f) fields[f].push_back(values[f]);
  }
};

Result<std::vector<Tensor>> Pad(const columnar::JaggedView& view, int64_t max_len,
                                const char* values_name) {
  columnar::PadOptions options;
  options.max_len = max_len;
  options.mask_type = DataType::kFp32;
  options.values_name = values_name;
  options.mask_name = "mask";
  auto padded = columnar::PadJagged(view, options);
  if (!padded.ok()) return padded.status();
  return std::vector<Tensor>{std::move(padded->values), std::move(padded->mask)};
}

// emj_gnn's inputs: the tracks of `jets` (the first 64 of each, pt order) as feature
// columns, padded.
Result<std::vector<Tensor>> GnnInputs(const physics::EventChunk& c,
                                      const std::vector<int64_t>& jets) {
  Columns<kTrackFeatures> tracks;
  for (int64_t j : jets) {
    const int64_t begin = c.track_offsets[j];
    const int64_t end = std::min(c.track_offsets[j + 1], begin + kMaxTracks);
    std::array<float, kTrackFeatures> f;
    for (int64_t t = begin; t < end; ++t) {
      TrackFeatures(c.track_pt[t], c.track_eta[t], c.track_phi[t], c.track_charge[t], c.track_d0[t],
                    c.track_d0_err[t], c.track_dz[t], c.jet_eta[j], c.jet_phi[j], f.data());
      tracks.Append(f.data());
    }
    tracks.offsets.push_back(static_cast<int64_t>(tracks.fields[0].size()));
  }
  return Pad(tracks.View("tracks"), kMaxTracks, "tracks");
}

}  // namespace

Result<ChunkPlan> PlanChunk(const physics::EventChunk& c, const AnalysisOptions& o) {
  const int64_t n = c.size();
  const int64_t n_jets = c.n_jets();
  if (static_cast<int64_t>(c.jet_offsets.size()) != n + 1 ||
      static_cast<int64_t>(c.jet_pt.size()) != n_jets ||
      static_cast<int64_t>(c.track_offsets.size()) != n_jets + 1) {
    return Status::InvalidArgument("chunk columns have inconsistent lengths");
  }
  ChunkPlan plan;

  // Jet mask, then the selected jets compressed: sel_offsets[i] is event i's first.
  std::vector<uint8_t> selected(static_cast<size_t>(n_jets));
  for (int64_t j = 0; j < n_jets; ++j) selected[j] = IsSelectedJet(c.jet_pt[j], c.jet_eta[j], o);
  std::vector<int64_t> prefix(static_cast<size_t>(n_jets) + 1, 0);
  for (int64_t j = 0; j < n_jets; ++j) prefix[j + 1] = prefix[j] + selected[j];
  std::vector<int64_t> sel_jets;
  sel_jets.reserve(static_cast<size_t>(prefix.back()));
  for (int64_t j = 0; j < n_jets; ++j) {
    if (selected[j]) sel_jets.push_back(j);
  }
  std::vector<int64_t> sel_offsets(static_cast<size_t>(n) + 1);
  for (int64_t i = 0; i <= n; ++i) sel_offsets[i] = prefix[c.jet_offsets[i]];

  // Counts and HT (segmented sum in jet order, float, as the event loop adds them).
  plan.n_selected.resize(static_cast<size_t>(n));
  plan.ht.assign(static_cast<size_t>(n), 0.f);
  for (int64_t i = 0; i < n; ++i) {
    plan.n_selected[i] = static_cast<int32_t>(sel_offsets[i + 1] - sel_offsets[i]);
    float ht = 0.f;
    for (int64_t k = sel_offsets[i]; k < sel_offsets[i + 1]; ++k) ht += c.jet_pt[sel_jets[k]];
    plan.ht[i] = ht;
  }
  plan.lead_offsets.push_back(0);
  for (int64_t i = 0; i < n; ++i) {
    if (plan.n_selected[i] < o.min_jets || !(plan.ht[i] > o.ht_min)) continue;
    plan.passing.push_back(i);
    const int64_t take = std::min<int64_t>(o.lead_jets, plan.n_selected[i]);
    for (int64_t k = 0; k < take; ++k) plan.lead_jets.push_back(sel_jets[sel_offsets[i] + k]);
    plan.lead_offsets.push_back(static_cast<int64_t>(plan.lead_jets.size()));
  }
  if (!o.use_ml) return plan;

  if (o.use_gnn) {
    auto gnn = GnnInputs(c, plan.lead_jets);
    if (!gnn.ok()) return gnn.status();
    plan.gnn_inputs = std::move(gnn).value();
  }

  // Jet features: one row per lead jet; lists of the first 8 selected jets per event.
  Buffer jet_rows = Buffer::Allocate(plan.lead_jets.size() * kJetFeatures * sizeof(float));
  auto* row = reinterpret_cast<float*>(jet_rows.mutable_data());
  auto jet_features = [&](int64_t j, float* out) {
    JetFeatures(c.jet_pt[j], c.jet_eta[j], c.jet_mass[j], c.jet_n_track[j],
                c.jet_median_log_ip2d[j], c.jet_alpha3d[j], out);
  };
  for (size_t k = 0; k < plan.lead_jets.size(); ++k)
    jet_features(plan.lead_jets[k], row + k * kJetFeatures);
  plan.dnn_inputs.push_back(
      Tensor{"jet", DataType::kFp32, {plan.n_lead(), kJetFeatures}, std::move(jet_rows)});

  Columns<kJetFeatures> event_jets;
  for (int64_t i : plan.passing) {
    const int64_t take = std::min<int64_t>(kEventJets, plan.n_selected[i]);
    std::array<float, kJetFeatures> f;
    for (int64_t k = 0; k < take; ++k) {
      jet_features(sel_jets[sel_offsets[i] + k], f.data());
      event_jets.Append(f.data());
    }
    event_jets.offsets.push_back(static_cast<int64_t>(event_jets.fields[0].size()));
  }
  auto event = Pad(event_jets.View("event jets"), kEventJets, "jets");
  if (!event.ok()) return event.status();
  plan.event_inputs = std::move(event).value();
  return plan;
}

Status FinishChunk(const physics::EventChunk& c, const ChunkPlan& plan, std::span<const float> gnn,
                   std::span<const float> dnn, std::span<const float> event,
                   const AnalysisOptions& o, SampleResult& out) {
  const bool ml = o.use_ml;
  const bool with_gnn = ml && o.use_gnn;
  if (ml && ((with_gnn && static_cast<int64_t>(gnn.size()) != plan.n_lead()) ||
             static_cast<int64_t>(dnn.size()) != plan.n_lead() ||
             static_cast<int64_t>(event.size()) != plan.n_passing())) {
    return Status::Internal(fmt::format(
        "scores do not match the chunk: {} gnn, {} dnn for {} jets; {} event for {} events",
        gnn.size(), dnn.size(), plan.n_lead(), event.size(), plan.n_passing()));
  }
  for (int64_t i = 0; i < c.size(); ++i) {
    ++out.cutflow[0];
    if (plan.n_selected[i] >= o.min_jets) {
      ++out.cutflow[1];
      out.ht(plan.ht[i]);
    }
  }
  for (int64_t k = 0; k < plan.n_passing(); ++k) {
    ++out.cutflow[2];
    int n_tagged = 0;
    for (int64_t r = plan.lead_offsets[k]; r < plan.lead_offsets[k + 1]; ++r) {
      const int64_t j = plan.lead_jets[r];
      out.jet_pt(c.jet_pt[j]);
      if (with_gnn) out.gnn_score(gnn[r]);
      if (ml) out.dnn_score(dnn[r]);
      n_tagged += IsTaggedJet(with_gnn ? gnn[r] : 0.f, ml ? dnn[r] : 0.f, c.jet_median_log_ip2d[j],
                              c.jet_alpha3d[j], o);
    }
    if (ml) out.event_score(event[k]);
    out.n_tagged(n_tagged);
    if (n_tagged >= o.min_tagged) {
      ++out.cutflow[3];
      const int64_t i = plan.passing[k];
      out.selected.push_back({c.run[i], c.luminosity_block[i], c.event[i]});
    }
  }
  return Status::Ok();
}

}  // namespace quiver::analysis
