#pragma once
// Test helpers (header-only, for tests): a synthetic quiver-emj/1 sample in memory and a
// writer of it with the HDF5 C API, with knobs to produce broken files (a missing dataset,
// a wrong dtype, offsets that run past the content).

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "physics/event_chunk.h"
#include "physics/h5_handle.h"

namespace quiver::physics::testing {

// Root attributes written by WriteEmjFile.
struct EmjAttributes {
  std::string format = "quiver-emj/1";
  std::string sample = "test";
  std::string process = "qcd";
  double ctau_mm = -1;
  int64_t seed = 1;
};

struct WriteOptions {
  std::string omit;               // a dataset path not to write, e.g. "jets/pt"
  std::string as_float64;         // a dataset path written as float64 instead
  int64_t extra_jet_offset = 0;   // added to the last jets/offsets entry (runs past content)
  int64_t jet_offset_index = -1;  // >= 0: jets/offsets[index] is set to jet_offset_value
  int64_t jet_offset_value = 0;
  hsize_t chunk = 64;  // HDF5 chunk length (gzip needs chunking)
};

// `n` events with 0..9 jets (pt-ordered, some above the analysis cuts) and 0..24 tracks per
// jet; signal-like displaced tracks when `displaced`. Deterministic in `seed`.
inline EventChunk MakeSyntheticSample(int64_t n, uint32_t seed, bool displaced, uint32_t run = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u01(0.f, 1.f);
  std::exponential_distribution<float> expo(1.f / 120.f);
  std::normal_distribution<float> gauss(0.f, 1.f);
  const float pi = std::numbers::pi_v<float>;
  EventChunk c;
  c.begin = 0;
  c.end = n;
  c.jet_offsets.push_back(0);
  c.track_offsets.push_back(0);
  for (int64_t e = 0; e < n; ++e) {
    c.run.push_back(run);
    c.luminosity_block.push_back(static_cast<uint32_t>(1 + e / 100));
    c.event.push_back(static_cast<uint64_t>(1000 + e));
    c.met_pt.push_back(expo(rng) / 3);
    c.met_phi.push_back(pi * (2 * u01(rng) - 1));
    c.weight.push_back(1.f);
    const int n_jets = static_cast<int>(u01(rng) * 10);
    std::vector<float> pts;
    for (int j = 0; j < n_jets; ++j) pts.push_back(20.f + expo(rng) * (1.f + 2 * u01(rng)));
    std::sort(pts.begin(), pts.end(), std::greater<>());
    for (float pt : pts) {
      const float eta = 2.5f * (2 * u01(rng) - 1);
      const float phi = pi * (2 * u01(rng) - 1);
      const bool dark = displaced && u01(rng) < 0.6f;
      const int n_tracks = static_cast<int>(u01(rng) * 25);
      std::vector<float> tpts;
      for (int t = 0; t < n_tracks; ++t) tpts.push_back(0.5f + expo(rng) / 10);
      std::sort(tpts.begin(), tpts.end(), std::greater<>());
      std::vector<float> logs;
      float prompt = 0, total = 0;
      for (float tpt : tpts) {
        const float d0 = (dark ? 5.f : 0.02f) * gauss(rng);
        const float d0_err = 0.01f + 0.02f * u01(rng);
        const float dz = (dark ? 5.f : 0.05f) * gauss(rng);
        c.track_pt.push_back(tpt);
        c.track_eta.push_back(eta + 0.2f * gauss(rng));
        float tphi = phi + 0.2f * gauss(rng);
        if (tphi >= pi) tphi -= 2 * pi;
        if (tphi < -pi) tphi += 2 * pi;
        c.track_phi.push_back(tphi);
        c.track_d0.push_back(d0);
        c.track_d0_err.push_back(d0_err);
        c.track_dz.push_back(dz);
        c.track_dz_err.push_back(0.02f);
        c.track_charge.push_back(u01(rng) < 0.5f ? 1 : -1);
        c.track_from_dark.push_back(dark ? 1 : 0);
        logs.push_back(std::log10(std::max(std::abs(d0), 1e-6f)));
        total += tpt;
        if (std::abs(d0 / d0_err) < 4) prompt += tpt;
      }
      std::sort(logs.begin(), logs.end());
      c.jet_pt.push_back(pt);
      c.jet_eta.push_back(eta);
      c.jet_phi.push_back(phi);
      c.jet_mass.push_back(pt * (0.05f + 0.1f * u01(rng)));
      c.jet_n_track.push_back(n_tracks);
      c.jet_median_log_ip2d.push_back(logs.empty() ? -5.f : logs[logs.size() / 2]);
      c.jet_alpha3d.push_back(total > 0 ? prompt / total : -1.f);
      c.jet_is_dark.push_back(dark ? 1 : 0);
      c.track_offsets.push_back(static_cast<int64_t>(c.track_pt.size()));
    }
    c.jet_offsets.push_back(static_cast<int64_t>(c.jet_pt.size()));
  }
  return c;
}

namespace detail {

template <typename T>
hid_t FileType(bool as_float64) {
  if (as_float64) return H5T_IEEE_F64LE;
  if constexpr (std::is_same_v<T, float>) return H5T_IEEE_F32LE;
  if constexpr (std::is_same_v<T, int8_t>) return H5T_STD_I8LE;
  if constexpr (std::is_same_v<T, int32_t>) return H5T_STD_I32LE;
  if constexpr (std::is_same_v<T, int64_t>) return H5T_STD_I64LE;
  if constexpr (std::is_same_v<T, uint32_t>) return H5T_STD_U32LE;
  if constexpr (std::is_same_v<T, uint64_t>) return H5T_STD_U64LE;
  return H5I_INVALID_HID;
}

template <typename T>
hid_t MemType() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, int8_t>) return H5T_NATIVE_INT8;
  if constexpr (std::is_same_v<T, int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, uint32_t>) return H5T_NATIVE_UINT32;
  if constexpr (std::is_same_v<T, uint64_t>) return H5T_NATIVE_UINT64;
  return H5I_INVALID_HID;
}

inline void StringAttribute(hid_t object, const char* name, const std::string& value) {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
  const char* p = value.c_str();
  H5Awrite(attr.get(), type.get(), &p);
}

template <typename T>
void NumberAttribute(hid_t object, const char* name, T value) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(object, name, FileType<T>(std::is_same_v<T, double>), space.get(),
                           H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
  H5Awrite(attr.get(), std::is_same_v<T, double> ? H5T_NATIVE_DOUBLE : MemType<T>(), &value);
}

}  // namespace detail

// Writes `c` (offsets starting at 0) as a quiver-emj/1 file at `path`; false on failure.
inline bool WriteEmjFile(const std::string& path, const EventChunk& c,
                         const EmjAttributes& attrs = {}, const WriteOptions& options = {}) {
  H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) return false;
  const hid_t f = file.get();
  detail::StringAttribute(f, "format", attrs.format);
  detail::StringAttribute(f, "sample", attrs.sample);
  detail::StringAttribute(f, "process", attrs.process);
  detail::StringAttribute(f, "settings", "{}");
  detail::NumberAttribute<double>(f, "ctau_mm", attrs.ctau_mm);
  detail::NumberAttribute<int64_t>(f, "seed", attrs.seed);
  detail::NumberAttribute<int64_t>(f, "n_events", c.size());
  for (const char* g : {"events", "jets", "tracks"}) {
    H5Handle group(H5Gcreate2(f, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  }
  bool ok = true;
  auto write = [&]<typename T>(const std::string& name, std::vector<T> values) {
    if (name == options.omit) return;
    const hsize_t n = values.size();
    H5Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    H5Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    const hsize_t chunk =
        std::max<hsize_t>(1, std::min<hsize_t>(options.chunk, std::max<hsize_t>(n, 1)));
    H5Pset_chunk(plist.get(), 1, &chunk);
    H5Pset_deflate(plist.get(), 4);
    const bool f64 = name == options.as_float64;
    H5Handle d(H5Dcreate2(f, name.c_str(), detail::FileType<T>(f64), space.get(), H5P_DEFAULT,
                          plist.get(), H5P_DEFAULT),
               H5Dclose);
    if (!d.valid()) {
      ok = false;
      return;
    }
    if (n > 0 &&
        H5Dwrite(d.get(), detail::MemType<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
      ok = false;
    }
  };
  write("events/run", c.run);
  write("events/luminosityBlock", c.luminosity_block);
  write("events/event", c.event);
  write("events/MET_pt", c.met_pt);
  write("events/MET_phi", c.met_phi);
  write("events/weight", c.weight);
  std::vector<int64_t> jet_offsets = c.jet_offsets;
  jet_offsets.back() += options.extra_jet_offset;
  if (options.jet_offset_index >= 0)
    jet_offsets[options.jet_offset_index] = options.jet_offset_value;
  write("jets/offsets", jet_offsets);
  write("jets/pt", c.jet_pt);
  write("jets/eta", c.jet_eta);
  write("jets/phi", c.jet_phi);
  write("jets/mass", c.jet_mass);
  write("jets/nTrack", c.jet_n_track);
  write("jets/medianLogIp2d", c.jet_median_log_ip2d);
  write("jets/alpha3d", c.jet_alpha3d);
  write("jets/isDark", c.jet_is_dark);
  write("tracks/offsets", c.track_offsets);
  write("tracks/pt", c.track_pt);
  write("tracks/eta", c.track_eta);
  write("tracks/phi", c.track_phi);
  write("tracks/d0", c.track_d0);
  write("tracks/d0Err", c.track_d0_err);
  write("tracks/dz", c.track_dz);
  write("tracks/dzErr", c.track_dz_err);
  write("tracks/charge", c.track_charge);
  write("tracks/fromDark", c.track_from_dark);
  return ok;
}

}  // namespace quiver::physics::testing
