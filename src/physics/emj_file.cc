#include "physics/emj_file.h"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace quiver::physics {
namespace {

// Which size a dataset's length must equal.
enum class Len { kEvents, kEventsPlus1, kJets, kJetsPlus1, kTracks };

struct Spec {
  const char* path;
  H5T_class_t type_class;
  size_t size;
  bool is_signed;
  Len len;
};

// Indices into kSpecs.
enum D : size_t {
  kRun,
  kLumi,
  kEvent,
  kMetPt,
  kMetPhi,
  kWeight,
  kJetOffsets,
  kJetPt,
  kJetEta,
  kJetPhi,
  kJetMass,
  kJetNTrack,
  kJetMedianLogIp2d,
  kJetAlpha3d,
  kJetIsDark,
  kTrackOffsets,
  kTrackPt,
  kTrackEta,
  kTrackPhi,
  kTrackD0,
  kTrackD0Err,
  kTrackDz,
  kTrackDzErr,
  kTrackCharge,
  kTrackFromDark,
  kCount
};

constexpr std::array<Spec, kCount> kSpecs{{
    {"events/run", H5T_INTEGER, 4, false, Len::kEvents},
    {"events/luminosityBlock", H5T_INTEGER, 4, false, Len::kEvents},
    {"events/event", H5T_INTEGER, 8, false, Len::kEvents},
    {"events/MET_pt", H5T_FLOAT, 4, true, Len::kEvents},
    {"events/MET_phi", H5T_FLOAT, 4, true, Len::kEvents},
    {"events/weight", H5T_FLOAT, 4, true, Len::kEvents},
    {"jets/offsets", H5T_INTEGER, 8, true, Len::kEventsPlus1},
    {"jets/pt", H5T_FLOAT, 4, true, Len::kJets},
    {"jets/eta", H5T_FLOAT, 4, true, Len::kJets},
    {"jets/phi", H5T_FLOAT, 4, true, Len::kJets},
    {"jets/mass", H5T_FLOAT, 4, true, Len::kJets},
    {"jets/nTrack", H5T_INTEGER, 4, true, Len::kJets},
    {"jets/medianLogIp2d", H5T_FLOAT, 4, true, Len::kJets},
    {"jets/alpha3d", H5T_FLOAT, 4, true, Len::kJets},
    {"jets/isDark", H5T_INTEGER, 1, true, Len::kJets},
    {"tracks/offsets", H5T_INTEGER, 8, true, Len::kJetsPlus1},
    {"tracks/pt", H5T_FLOAT, 4, true, Len::kTracks},
    {"tracks/eta", H5T_FLOAT, 4, true, Len::kTracks},
    {"tracks/phi", H5T_FLOAT, 4, true, Len::kTracks},
    {"tracks/d0", H5T_FLOAT, 4, true, Len::kTracks},
    {"tracks/d0Err", H5T_FLOAT, 4, true, Len::kTracks},
    {"tracks/dz", H5T_FLOAT, 4, true, Len::kTracks},
    {"tracks/dzErr", H5T_FLOAT, 4, true, Len::kTracks},
    {"tracks/charge", H5T_INTEGER, 1, true, Len::kTracks},
    {"tracks/fromDark", H5T_INTEGER, 1, true, Len::kTracks},
}};

// HDF5 prints its error stack to stderr by default; we report Status instead. The setting
// is per thread in a thread-safe build, so every entry point calls this.
void SilenceHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

template <typename T>
hid_t NativeType() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  if constexpr (std::is_same_v<T, int8_t>) return H5T_NATIVE_INT8;
  if constexpr (std::is_same_v<T, int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, uint32_t>) return H5T_NATIVE_UINT32;
  if constexpr (std::is_same_v<T, uint64_t>) return H5T_NATIVE_UINT64;
  return H5I_INVALID_HID;
}

std::string_view TypeName(H5T_class_t c, size_t size, bool is_signed) {
  if (c == H5T_FLOAT) return size == 4 ? "float32" : size == 8 ? "float64" : "float?";
  if (c != H5T_INTEGER) return "non-numeric";
  switch (size) {
    case 1:
      return is_signed ? "int8" : "uint8";
    case 2:
      return is_signed ? "int16" : "uint16";
    case 4:
      return is_signed ? "int32" : "uint32";
    case 8:
      return is_signed ? "int64" : "uint64";
    default:
      return "int?";
  }
}

bool HasAttribute(hid_t object, const char* name) { return H5Aexists(object, name) > 0; }

Result<std::string> ReadStringAttribute(hid_t object, const char* name) {
  if (!HasAttribute(object, name))
    return Status::InvalidArgument(fmt::format("no attribute '{}'", name));
  H5Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  if (!attr.valid())
    return Status::InvalidArgument(fmt::format("cannot open attribute '{}'", name));
  H5Handle type(H5Aget_type(attr.get()), H5Tclose);
  if (!type.valid() || H5Tget_class(type.get()) != H5T_STRING) {
    return Status::InvalidArgument(fmt::format("attribute '{}' is not a string", name));
  }
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) {
    return Status::InvalidArgument(fmt::format("attribute '{}' is not a scalar", name));
  }
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* value = nullptr;
    if (H5Aread(attr.get(), mem.get(), &value) < 0) {
      return Status::InvalidArgument(fmt::format("cannot read attribute '{}'", name));
    }
    std::string out = value != nullptr ? value : "";
    H5free_memory(value);
    return out;
  }
  const size_t size = H5Tget_size(type.get());
  std::string out(size, '\0');
  H5Handle mem(H5Tcopy(type.get()), H5Tclose);
  if (H5Aread(attr.get(), mem.get(), out.data()) < 0) {
    return Status::InvalidArgument(fmt::format("cannot read attribute '{}'", name));
  }
  out.resize(std::strlen(out.c_str()));  // fixed-length strings are NUL padded
  return out;
}

template <typename T>
Result<T> ReadNumberAttribute(hid_t object, const char* name) {
  if (!HasAttribute(object, name))
    return Status::InvalidArgument(fmt::format("no attribute '{}'", name));
  H5Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  H5Handle type(attr.valid() ? H5Aget_type(attr.get()) : H5I_INVALID_HID, H5Tclose);
  const H5T_class_t c = type.valid() ? H5Tget_class(type.get()) : H5T_NO_CLASS;
  if (c != H5T_INTEGER && c != H5T_FLOAT) {
    return Status::InvalidArgument(fmt::format("attribute '{}' is not a number", name));
  }
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) {
    return Status::InvalidArgument(fmt::format("attribute '{}' is not a scalar", name));
  }
  T value{};
  if (H5Aread(attr.get(), NativeType<T>(), &value) < 0) {
    return Status::InvalidArgument(fmt::format("cannot read attribute '{}'", name));
  }
  return value;
}

// Reads entries [start, start + count) of the 1-D dataset kSpecs[index] into `out`, which
// holds `count` values of the C++ type matching the spec (converted by HDF5 if the file's
// byte order differs).
Status ReadSlice(hid_t dataset, size_t index, int64_t start, int64_t count, void* out) {
  const Spec& spec = kSpecs[index];
  if (count == 0) return Status::Ok();
  hid_t mem_type = H5I_INVALID_HID;
  if (spec.type_class == H5T_FLOAT) {
    mem_type = H5T_NATIVE_FLOAT;
  } else {
    switch (spec.size) {
      case 1:
        mem_type = spec.is_signed ? H5T_NATIVE_INT8 : H5T_NATIVE_UINT8;
        break;
      case 4:
        mem_type = spec.is_signed ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT32;
        break;
      default:
        mem_type = spec.is_signed ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
        break;
    }
  }
  H5Handle file_space(H5Dget_space(dataset), H5Sclose);
  const hsize_t offset = static_cast<hsize_t>(start);
  const hsize_t n = static_cast<hsize_t>(count);
  H5Handle mem_space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  if (!file_space.valid() || !mem_space.valid() ||
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &offset, nullptr, &n, nullptr) < 0 ||
      H5Dread(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
    return Status::InvalidArgument(
        fmt::format("dataset '{}': reading entries [{}, {}) failed "
                    "(corrupt or truncated file?)",
                    spec.path, start, start + count));
  }
  return Status::Ok();
}

}  // namespace

struct EmjFile::Datasets {
  std::array<H5Handle, kCount> handles;
  std::array<int64_t, kCount> lengths{};
};

EmjFile::EmjFile(std::string path) : ds_(std::make_unique<Datasets>()) {
  info_.path = std::move(path);
}
EmjFile::~EmjFile() = default;

Result<std::unique_ptr<EmjFile>> EmjFile::Open(const std::string& path) {
  SilenceHdf5();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound(path + ": no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    return Status::InvalidArgument(path + ": not an HDF5 file (or its header is corrupt)");
  }
  std::unique_ptr<EmjFile> file(new EmjFile(path));
  file->file_ = H5Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file->file_.valid())
    return Status::InvalidArgument(path + ": cannot open as HDF5 (corrupt?)");
  const hid_t f = file->file_.get();
  auto bad = [&](const std::string& what) { return Status::InvalidArgument(path + ": " + what); };

  auto format = ReadStringAttribute(f, "format");
  if (!format.ok()) return bad(format.status().message());
  if (*format != kEmjFormat) {
    return bad(fmt::format("attribute 'format' is '{}', expected '{}'", *format, kEmjFormat));
  }
  auto sample = ReadStringAttribute(f, "sample");
  if (!sample.ok()) return bad(sample.status().message());
  file->info_.sample = *sample;
  if (auto process = ReadStringAttribute(f, "process"); process.ok())
    file->info_.process = *process;
  if (auto ctau = ReadNumberAttribute<double>(f, "ctau_mm"); ctau.ok()) file->info_.ctau_mm = *ctau;
  if (auto seed = ReadNumberAttribute<int64_t>(f, "seed"); seed.ok()) file->info_.seed = *seed;

  Datasets& ds = *file->ds_;
  for (size_t i = 0; i < kCount; ++i) {
    const Spec& spec = kSpecs[i];
    if (H5Lexists(f, spec.path, H5P_DEFAULT) <= 0) {
      // H5Lexists fails (< 0) when a parent group is missing: the same answer.
      return bad(fmt::format("dataset '{}' is missing", spec.path));
    }
    H5Handle d(H5Dopen2(f, spec.path, H5P_DEFAULT), H5Dclose);
    if (!d.valid()) return bad(fmt::format("dataset '{}' cannot be opened", spec.path));
    H5Handle type(H5Dget_type(d.get()), H5Tclose);
    const H5T_class_t c = H5Tget_class(type.get());
    const size_t size = H5Tget_size(type.get());
    const bool is_signed =
        c == H5T_FLOAT || (c == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_2);
    if (c != spec.type_class || size != spec.size || is_signed != spec.is_signed) {
      return bad(fmt::format("dataset '{}' is {}, expected {}", spec.path,
                             TypeName(c, size, is_signed),
                             TypeName(spec.type_class, spec.size, spec.is_signed)));
    }
    H5Handle space(H5Dget_space(d.get()), H5Sclose);
    if (!space.valid() || H5Sget_simple_extent_ndims(space.get()) != 1) {
      return bad(fmt::format("dataset '{}' is not one-dimensional", spec.path));
    }
    hsize_t dim = 0;
    H5Sget_simple_extent_dims(space.get(), &dim, nullptr);
    ds.lengths[i] = static_cast<int64_t>(dim);
    ds.handles[i] = std::move(d);
  }

  SampleInfo& info = file->info_;
  info.n_events = ds.lengths[kEvent];
  if (auto n = ReadNumberAttribute<int64_t>(f, "n_events"); n.ok() && *n != info.n_events) {
    return bad(fmt::format("attribute 'n_events' is {} but 'events/event' has {} entries", *n,
                           info.n_events));
  }
  // The ends of both offsets arrays fix the jet and track counts.
  auto ends = [&](size_t index, int64_t expected_length, const char* why, int64_t& last) -> Status {
    const Spec& spec = kSpecs[index];
    const int64_t length = ds.lengths[index];
    if (length != expected_length) {
      return bad(fmt::format("dataset '{}' has {} entries, expected {} ({})", spec.path, length,
                             expected_length, why));
    }
    int64_t first = 0;
    QUIVER_RETURN_IF_ERROR(
        ReadSlice(ds.handles[index].get(), index, 0, 1, &first).WithContext(path));
    if (first != 0)
      return bad(fmt::format("dataset '{}' starts at {}, expected 0", spec.path, first));
    QUIVER_RETURN_IF_ERROR(
        ReadSlice(ds.handles[index].get(), index, length - 1, 1, &last).WithContext(path));
    if (last < 0) return bad(fmt::format("dataset '{}' ends at {} (negative)", spec.path, last));
    return Status::Ok();
  };
  QUIVER_RETURN_IF_ERROR(ends(kJetOffsets, info.n_events + 1, "n_events + 1", info.n_jets));
  QUIVER_RETURN_IF_ERROR(
      ends(kTrackOffsets, info.n_jets + 1, "the last entry of jets/offsets + 1", info.n_tracks));
  for (size_t i = 0; i < kCount; ++i) {
    const Spec& spec = kSpecs[i];
    const int64_t expected = spec.len == Len::kEvents        ? info.n_events
                             : spec.len == Len::kEventsPlus1 ? info.n_events + 1
                             : spec.len == Len::kJets        ? info.n_jets
                             : spec.len == Len::kJetsPlus1   ? info.n_jets + 1
                                                             : info.n_tracks;
    if (ds.lengths[i] != expected) {
      return bad(fmt::format("dataset '{}' has {} entries, expected {}{}", spec.path, ds.lengths[i],
                             expected,
                             spec.len == Len::kJets     ? " (the end of jets/offsets)"
                             : spec.len == Len::kTracks ? " (the end of tracks/offsets)"
                                                        : ""));
    }
  }
  return file;
}

Result<EventChunk> EmjFile::Read(int64_t begin, int64_t end) const {
  SilenceHdf5();
  const std::string& path = info_.path;
  if (begin < 0 || end < begin || end > info_.n_events) {
    return Status::InvalidArgument(
        fmt::format("{}: events [{}, {}) outside [0, {})", path, begin, end, info_.n_events));
  }
  const std::string where = fmt::format("{}: events [{}, {})", path, begin, end);
  EventChunk c;
  c.begin = begin;
  c.end = end;
  const int64_t n = end - begin;
  auto read = [&]<typename T>(size_t index, int64_t start, int64_t count, std::vector<T>& out) {
    out.resize(static_cast<size_t>(count));
    return ReadSlice(ds_->handles[index].get(), index, start, count, out.data());
  };
  QUIVER_RETURN_IF_ERROR(read(kRun, begin, n, c.run).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kLumi, begin, n, c.luminosity_block).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kEvent, begin, n, c.event).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kMetPt, begin, n, c.met_pt).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kMetPhi, begin, n, c.met_phi).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kWeight, begin, n, c.weight).WithContext(where));

  // Offsets of the slice, checked and rebased to 0; `base` gets the first one (where the
  // slice's content starts).
  auto offsets = [&](size_t index, int64_t start, int64_t count, int64_t content,
                     std::vector<int64_t>& out, int64_t& base) -> Status {
    QUIVER_RETURN_IF_ERROR(read(index, start, count + 1, out));
    for (int64_t i = 0; i < count; ++i) {
      if (out[i + 1] < out[i]) {
        return Status::InvalidArgument(
            fmt::format("dataset '{}' decreases at entry {}", kSpecs[index].path, start + i + 1));
      }
    }
    if (out.front() < 0 || out.back() > content) {
      return Status::InvalidArgument(
          fmt::format("dataset '{}' entries [{}, {}] run outside its content [0, {}]",
                      kSpecs[index].path, start, start + count, content));
    }
    base = out.front();
    for (int64_t& o : out) o -= base;
    return Status::Ok();
  };
  int64_t jet_begin = 0;
  QUIVER_RETURN_IF_ERROR(
      offsets(kJetOffsets, begin, n, info_.n_jets, c.jet_offsets, jet_begin).WithContext(where));
  const int64_t nj = c.jet_offsets.back();
  QUIVER_RETURN_IF_ERROR(read(kJetPt, jet_begin, nj, c.jet_pt).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kJetEta, jet_begin, nj, c.jet_eta).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kJetPhi, jet_begin, nj, c.jet_phi).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kJetMass, jet_begin, nj, c.jet_mass).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kJetNTrack, jet_begin, nj, c.jet_n_track).WithContext(where));
  QUIVER_RETURN_IF_ERROR(
      read(kJetMedianLogIp2d, jet_begin, nj, c.jet_median_log_ip2d).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kJetAlpha3d, jet_begin, nj, c.jet_alpha3d).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kJetIsDark, jet_begin, nj, c.jet_is_dark).WithContext(where));

  int64_t track_begin = 0;
  QUIVER_RETURN_IF_ERROR(offsets(kTrackOffsets, jet_begin, nj, info_.n_tracks, c.track_offsets,
                                 track_begin)
                             .WithContext(where));
  const int64_t nt = c.track_offsets.back();
  QUIVER_RETURN_IF_ERROR(read(kTrackPt, track_begin, nt, c.track_pt).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kTrackEta, track_begin, nt, c.track_eta).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kTrackPhi, track_begin, nt, c.track_phi).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kTrackD0, track_begin, nt, c.track_d0).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kTrackD0Err, track_begin, nt, c.track_d0_err).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kTrackDz, track_begin, nt, c.track_dz).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kTrackDzErr, track_begin, nt, c.track_dz_err).WithContext(where));
  QUIVER_RETURN_IF_ERROR(read(kTrackCharge, track_begin, nt, c.track_charge).WithContext(where));
  QUIVER_RETURN_IF_ERROR(
      read(kTrackFromDark, track_begin, nt, c.track_from_dark).WithContext(where));
  return c;
}

}  // namespace quiver::physics
