#pragma once
// Per-object feature formulas shared by the columnar and the event-loop analysis, so that
// both feed the models bit-identical inputs (docs/testbed-contract.md, "Models").

#include <cmath>
#include <cstdint>
#include <numbers>

#include "analysis/analysis_options.h"

namespace quiver::analysis {

// The jet selection: pt > min and abs(eta) < max.
inline bool IsSelectedJet(float pt, float eta, const AnalysisOptions& o) {
  return pt > o.jet_pt_min && std::abs(eta) < o.jet_abs_eta_max;
}

// The cut-based tagger.
inline bool IsCutTagged(float median_log_ip2d, float alpha3d, const AnalysisOptions& o) {
  return median_log_ip2d > o.cut_median_log_ip2d && alpha3d < o.cut_alpha3d_max;
}

// The tagger's decision for one jet (scores unused by the cut tagger and without ML).
inline bool IsTaggedJet(float gnn, float dnn, float median_log_ip2d, float alpha3d,
                        const AnalysisOptions& o) {
  switch (o.use_ml ? o.tagger : Tagger::kCut) {
    case Tagger::kGnn:
      return gnn > o.score_threshold;
    case Tagger::kDnn:
      return dnn > o.score_threshold;
    case Tagger::kCut:
      break;
  }
  return IsCutTagged(median_log_ip2d, alpha3d, o);
}

// a - b wrapped to [-pi, pi).
inline float DeltaPhi(float a, float b) {
  constexpr float kPi = std::numbers::pi_v<float>;
  float d = a - b;
  while (d >= kPi) d -= 2 * kPi;
  while (d < -kPi) d += 2 * kPi;
  return d;
}

// The 8 track features: log(pt), deta, dphi, charge, d0, d0/d0Err, dz, sqrt(d0^2 + dz^2).
inline void TrackFeatures(float pt, float eta, float phi, int8_t charge, float d0, float d0_err,
                          float dz, float jet_eta, float jet_phi, float* out) {
  out[0] = std::log(pt);
  out[1] = eta - jet_eta;
  out[2] = DeltaPhi(phi, jet_phi);
  out[3] = static_cast<float>(charge);
  out[4] = d0;
  out[5] = d0 / d0_err;
  out[6] = dz;
  out[7] = std::sqrt(d0 * d0 + dz * dz);
}

// The 6 jet features: log(pt), eta, mass, nTrack, medianLogIp2d, alpha3d.
inline void JetFeatures(float pt, float eta, float mass, int32_t n_track, float median_log_ip2d,
                        float alpha3d, float* out) {
  out[0] = std::log(pt);
  out[1] = eta;
  out[2] = mass;
  out[3] = static_cast<float>(n_track);
  out[4] = median_log_ip2d;
  out[5] = alpha3d;
}

}  // namespace quiver::analysis
