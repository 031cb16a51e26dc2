// The event-loop runner (CMSSW-style): each event on its own; an event passing the HT cut
// builds its own model inputs and makes one synchronous request per model. Selection,
// inputs and filling are written here per event, independently of chunk_plan.cc (only the
// per-object formulas of features.h are shared), so the tests comparing the two styles
// check one against the other.

#include <algorithm>
#include <array>
#include <cstring>
#include <future>

#include "analysis/features.h"
#include "analysis/file_runner.h"

namespace quiver::analysis {
namespace {

Tensor Zeros(std::string name, Shape shape) {
  const size_t bytes = static_cast<size_t>(ElementCount(shape)) * sizeof(float);
  Buffer buffer = Buffer::Allocate(bytes);
  std::memset(buffer.mutable_data(), 0, bytes);
  return Tensor{std::move(name), DataType::kFp32, std::move(shape), std::move(buffer)};
}

float* Floats(Tensor& t) { return reinterpret_cast<float*>(t.data.mutable_data()); }

// One request, waited for.
Result<InferResponse> InferBlocking(InferenceService& service, InferRequest request) {
  std::promise<Result<InferResponse>> promise;
  auto future = promise.get_future();
  service.Infer(std::move(request),
                [&promise](Result<InferResponse> result) { promise.set_value(std::move(result)); });
  return future.get();
}

}  // namespace

void RunEventLoop(FileRun& run) {
  const AnalysisOptions& o = run.options;
  RunTiming& timing = run.report.timing;
  const bool ml = o.use_ml && run.service != nullptr;
  const int64_t n = run.file.n_events();
  std::vector<int64_t> selected;       // this event's selected jets (file order)
  std::vector<float> gnn, dnn, event;  // this event's scores

  for (int64_t a = 0; a < n; a += o.chunk_size) {
    const int64_t b = std::min(n, a + o.chunk_size);
    auto t = std::chrono::steady_clock::now();
    auto read = run.file.Read(a, b);
    timing.io_s += SecondsSince(t);
    if (!read.ok()) {
      RecordFailure(run, a, b, read.status());
      continue;
    }
    const physics::EventChunk& c = *read;
    SampleResult chunk_result;
    Status status;
    for (int64_t i = 0; i < c.size() && status.ok(); ++i) {
      t = std::chrono::steady_clock::now();
      selected.clear();
      float ht = 0.f;
      for (int64_t j = c.jet_offsets[i]; j < c.jet_offsets[i + 1]; ++j) {
        if (IsSelectedJet(c.jet_pt[j], c.jet_eta[j], o)) {
          selected.push_back(j);
          ht += c.jet_pt[j];
        }
      }
      const auto n_sel = static_cast<int64_t>(selected.size());
      const bool passes = n_sel >= o.min_jets && ht > o.ht_min;
      const int64_t n_lead = passes ? std::min(o.lead_jets, n_sel) : 0;
      gnn.assign(static_cast<size_t>(n_lead), 0.f);
      dnn.assign(static_cast<size_t>(n_lead), 0.f);
      event.assign(1, 0.f);
      if (passes && ml) {
        Tensor tracks = Zeros("tracks", {n_lead, kMaxTracks, kTrackFeatures});
        Tensor track_mask = Zeros("mask", {n_lead, kMaxTracks});
        Tensor jet = Zeros("jet", {n_lead, kJetFeatures});
        Tensor jets = Zeros("jets", {1, kEventJets, kJetFeatures});
        Tensor jet_mask = Zeros("mask", {1, kEventJets});
        for (int64_t k = 0; k < n_lead; ++k) {
          const int64_t j = selected[k];
          const int64_t t0 = c.track_offsets[j];
          const int64_t nt = std::min(c.track_offsets[j + 1] - t0, kMaxTracks);
          for (int64_t s = 0; s < nt; ++s) {
            const int64_t tr = t0 + s;
            TrackFeatures(c.track_pt[tr], c.track_eta[tr], c.track_phi[tr], c.track_charge[tr],
                          c.track_d0[tr], c.track_d0_err[tr], c.track_dz[tr], c.jet_eta[j],
                          c.jet_phi[j], Floats(tracks) + (k * kMaxTracks + s) * kTrackFeatures);
            Floats(track_mask)[k * kMaxTracks + s] = 1.f;
          }
          JetFeatures(c.jet_pt[j], c.jet_eta[j], c.jet_mass[j], c.jet_n_track[j],
                      c.jet_median_log_ip2d[j], c.jet_alpha3d[j], Floats(jet) + k * kJetFeatures);
        }
        for (int64_t k = 0; k < std::min(kEventJets, n_sel); ++k) {
          const int64_t j = selected[k];
          JetFeatures(c.jet_pt[j], c.jet_eta[j], c.jet_mass[j], c.jet_n_track[j],
                      c.jet_median_log_ip2d[j], c.jet_alpha3d[j], Floats(jets) + k * kJetFeatures);
          Floats(jet_mask)[k] = 1.f;
        }
        timing.preprocess_s += SecondsSince(t);

        t = std::chrono::steady_clock::now();
        auto ask = [&](const char* model, std::vector<Tensor> inputs, int64_t rows,
                       float* out) -> Status {
          InferRequest request;
          request.model = model;
          request.version = o.model_version;
          request.inputs = std::move(inputs);
          request.requested_outputs = {"score"};
          auto response = InferBlocking(*run.service, std::move(request));
          ++run.report.inference_calls;
          if (!response.ok()) return response.status().WithContext(model);
          auto scores = ScoresOf(response->outputs, "score", rows);
          if (!scores.ok()) return scores.status().WithContext(model);
          std::copy(scores->begin(), scores->end(), out);
          return Status::Ok();
        };
        if (o.use_gnn)
          status = ask(kGnnModel, {std::move(tracks), std::move(track_mask)}, n_lead, gnn.data());
        if (status.ok()) status = ask(kDnnModel, {std::move(jet)}, n_lead, dnn.data());
        if (status.ok())
          status = ask(kEventModel, {std::move(jets), std::move(jet_mask)}, 1, event.data());
        const double spent = SecondsSince(t);
        timing.inference_s += spent;
        timing.inference_busy_s += spent;
        if (!status.ok()) break;
        t = std::chrono::steady_clock::now();
      } else {
        timing.preprocess_s += SecondsSince(t);
        t = std::chrono::steady_clock::now();
      }
      // Bookkeeping (counted as "rest").
      SampleResult& r = chunk_result;
      ++r.cutflow[0];
      if (n_sel >= o.min_jets) {
        ++r.cutflow[1];
        r.ht(ht);
      }
      if (passes) {
        ++r.cutflow[2];
        int n_tagged = 0;
        for (int64_t k = 0; k < n_lead; ++k) {
          const int64_t j = selected[k];
          r.jet_pt(c.jet_pt[j]);
          if (ml && o.use_gnn) r.gnn_score(gnn[k]);
          if (ml) r.dnn_score(dnn[k]);
          n_tagged += IsTaggedJet(gnn[k], dnn[k], c.jet_median_log_ip2d[j], c.jet_alpha3d[j], o);
        }
        if (ml) r.event_score(event[0]);
        r.n_tagged(n_tagged);
        if (n_tagged >= o.min_tagged) {
          ++r.cutflow[3];
          r.selected.push_back({c.run[i], c.luminosity_block[i], c.event[i]});
        }
      }
    }
    if (!status.ok()) {
      RecordFailure(run, a, b, status);
      continue;
    }
    run.result.Merge(chunk_result);
    RecordProcessed(run, c.size(), c.n_jets());
  }
}

}  // namespace quiver::analysis
