#pragma once
// EventChunk: events [begin, end) of one quiver-emj/1 file as columns (awkward layout:
// offsets + one array per field), offsets rebased so that each chunk stands alone.

#include <cstdint>
#include <vector>

namespace quiver::physics {

struct EventChunk {
  int64_t begin = 0;  // event range [begin, end) in the file
  int64_t end = 0;

  // One value per event.
  std::vector<uint32_t> run, luminosity_block;
  std::vector<uint64_t> event;
  std::vector<float> met_pt, met_phi, weight;

  // Jets of event i: [jet_offsets[i], jet_offsets[i+1]); jet_offsets[0] == 0.
  std::vector<int64_t> jet_offsets;
  std::vector<float> jet_pt, jet_eta, jet_phi, jet_mass, jet_median_log_ip2d, jet_alpha3d;
  std::vector<int32_t> jet_n_track;
  std::vector<int8_t> jet_is_dark;

  // Tracks of jet j (chunk-local index): [track_offsets[j], track_offsets[j+1]); starts at 0.
  std::vector<int64_t> track_offsets;
  std::vector<float> track_pt, track_eta, track_phi, track_d0, track_d0_err, track_dz, track_dz_err;
  std::vector<int8_t> track_charge, track_from_dark;

  int64_t size() const { return end - begin; }
  int64_t n_jets() const { return jet_offsets.empty() ? 0 : jet_offsets.back(); }
  int64_t n_tracks() const { return track_offsets.empty() ? 0 : track_offsets.back(); }
};

}  // namespace quiver::physics
