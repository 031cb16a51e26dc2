"""HDF5 and ROOT round trips of the nested layout, and clear errors for bad files."""

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

import quiver_testbed
from quiver_testbed import h5io, rootio
from quiver_testbed.reco import JET_DTYPES, TRACK_DTYPES


def synthetic_events(n=40, seed=1):
    """Random events with the contract's fields; includes events without jets and jets
    without tracks."""
    rng = np.random.default_rng(seed)
    njet = rng.integers(0, 5, n)
    njet[0], njet[1] = 0, 3
    ntrk = rng.integers(0, 7, njet.sum())
    ntrk[0] = 0
    def col(size, dtype):
        if np.dtype(dtype).kind == "f":
            return rng.normal(size=size).astype(dtype)
        return rng.integers(-1, 2, size).astype(dtype)
    tracks = ak.zip({k: col(ntrk.sum(), t) for k, t in TRACK_DTYPES.items()}, depth_limit=1)
    jet_cols = {k: col(njet.sum(), t) for k, t in JET_DTYPES.items()}
    jet_cols["nTrack"] = ntrk.astype(np.int32)
    jet_cols["tracks"] = ak.unflatten(tracks, ntrk)
    jets = ak.unflatten(ak.zip(jet_cols, depth_limit=1), njet)
    return ak.zip({"run": np.full(n, 7, np.uint32), "luminosityBlock": np.ones(n, np.uint32),
                   "event": np.arange(1, n + 1, dtype=np.uint64),
                   "MET_pt": rng.random(n).astype(np.float32),
                   "MET_phi": rng.random(n).astype(np.float32),
                   "weight": np.ones(n, np.float32), "jets": jets}, depth_limit=1)


ATTRS = {"sample": "test", "process": "qcd", "ctau_mm": -1.0, "seed": 1, "settings": "{}"}


@pytest.fixture(scope="module")
def events():
    return synthetic_events()


@pytest.fixture()
def h5file(tmp_path, events):
    path = tmp_path / "sample.h5"
    h5io.write_h5(path, events, ATTRS)
    return path


def assert_same(a, b):
    assert a.fields == b.fields
    for f in a.fields:
        if f == "jets":
            continue
        assert ak.to_numpy(a[f]).tolist() == ak.to_numpy(b[f]).tolist(), f
    assert ak.num(a.jets).to_list() == ak.num(b.jets).to_list()
    for f in JET_DTYPES:
        assert ak.to_list(a.jets[f]) == ak.to_list(b.jets[f]), f"jets.{f}"
    assert ak.to_list(ak.num(a.jets.tracks, axis=2)) == ak.to_list(ak.num(b.jets.tracks, axis=2))
    for f in TRACK_DTYPES:
        assert ak.to_list(a.jets.tracks[f]) == ak.to_list(b.jets.tracks[f]), f"tracks.{f}"


def test_h5_round_trip_field_by_field(h5file, events):
    back = quiver_testbed.read_h5(h5file)
    assert_same(events, back)
    assert str(back.type) == str(events.type)
    with h5py.File(h5file) as f:
        assert f.attrs["format"] == "quiver-emj/1" and f.attrs["n_events"] == len(events)
        assert f["jets/offsets"].dtype == np.int64 and f["events/event"].dtype == np.uint64
        assert f["tracks/d0"].compression == "gzip"


def test_h5_reads_an_event_range(h5file, events):
    part = quiver_testbed.read_h5(h5file, start=1, stop=9)
    assert_same(events[1:9], part)
    assert len(quiver_testbed.read_h5(h5file, start=5, stop=5)) == 0


def test_h5_write_is_byte_reproducible(tmp_path, events):
    for name in ("a.h5", "b.h5"):
        h5io.write_h5(tmp_path / name, events, ATTRS)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_root_round_trip_field_by_field(tmp_path, events):
    path = tmp_path / "sample.root"
    rootio.write_root(path, events)
    t = rootio.read_root(path)
    assert t["event"].tolist() == events.event.tolist()
    assert t["nJet"].tolist() == ak.num(events.jets).to_list()
    for f in JET_DTYPES:
        assert ak.to_list(t[f"Jet_{f}"]) == ak.to_list(events.jets[f]), f
    assert ak.to_list(t["Jet_nConstituents"]) == ak.to_list(events.jets.nTrack)
    # PFCands are the jets' tracks in jet order; JetPFCands rebuilds the nesting.
    flat_tracks = ak.flatten(events.jets.tracks, axis=2)
    for f in TRACK_DTYPES:
        assert ak.to_list(t[f"PFCands_{f}"]) == ak.to_list(flat_tracks[f]), f
    for i in range(len(events)):
        jet_idx = t["JetPFCands_jetIdx"][i].tolist()
        cand = t["JetPFCands_pFCandsIdx"][i].tolist()
        for j, trk in enumerate(events.jets.tracks[i]):
            rows = [c for c, jj in zip(cand, jet_idx) if jj == j]
            assert t["PFCands_pt"][i][rows].tolist() == trk.pt.to_list()


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(quiver_testbed.TestbedFileError, match="nope.h5: no such file"):
        quiver_testbed.read_h5(missing)
    with pytest.raises(quiver_testbed.TestbedFileError, match="nope.root"):
        rootio.read_root(tmp_path / "nope.root")


def test_truncated_and_garbage_files_name_the_file(tmp_path, h5file):
    data = h5file.read_bytes()
    trunc = tmp_path / "truncated.h5"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(quiver_testbed.TestbedFileError, match="truncated.h5"):
        quiver_testbed.read_h5(trunc)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(quiver_testbed.TestbedFileError, match="garbage.h5: not a readable"):
        quiver_testbed.read_h5(garbage)


def test_corrupt_chunk_names_file_and_dataset(tmp_path, events):
    path = tmp_path / "badchunk.h5"
    h5io.write_h5(path, events, ATTRS)
    with h5py.File(path) as f:
        info = f["tracks/d0"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:  # overwrite the compressed chunk with garbage
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    with pytest.raises(quiver_testbed.TestbedFileError,
                       match=r"badchunk.h5: cannot read dataset 'tracks/d0'"):
        quiver_testbed.read_h5(path)


def test_missing_or_inconsistent_dataset_names_file_and_dataset(tmp_path, events):
    a = tmp_path / "nodataset.h5"
    h5io.write_h5(a, events, ATTRS)
    with h5py.File(a, "a") as f:
        del f["tracks/d0"]
    with pytest.raises(quiver_testbed.TestbedFileError,
                       match=r"nodataset.h5: dataset 'tracks/d0' is missing"):
        quiver_testbed.read_h5(a)
    b = tmp_path / "short.h5"
    h5io.write_h5(b, events, ATTRS)
    with h5py.File(b, "a") as f:
        pt = f["jets/pt"][:-1]
        del f["jets/pt"]
        f["jets/pt"] = pt
    with pytest.raises(quiver_testbed.TestbedFileError, match=r"short.h5: dataset 'jets/pt'"):
        quiver_testbed.read_h5(b)


def test_truncated_root_file_names_the_file(tmp_path, events):
    path = tmp_path / "cut.root"
    rootio.write_root(path, events)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(quiver_testbed.TestbedFileError, match="cut.root"):
        rootio.read_root(path)


def test_read_many_counts_add_up(tmp_path, h5file, events):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF garbage")
    paths = [h5file, bad, tmp_path / "missing.h5", h5file]
    merged, report = quiver_testbed.read_many(paths)
    assert len(report["processed"]) == 2 and len(report["failed"]) == 2
    assert len(report["processed"]) + len(report["failed"]) == len(paths)
    assert "bad.h5" in report["failed"][str(bad)]
    assert len(merged) == 2 * len(events)


@pytest.mark.parametrize("name, damage", [
    ("jets/offsets", lambda off: off.__setitem__(5, off[-1] + 7)),  # beyond the jets
    ("tracks/offsets", lambda off: off.__setitem__(slice(3, 5), off[4:2:-1])),  # decreasing
    ("tracks/offsets", lambda off: off.__setitem__(0, 2)),  # does not start at 0
])
def test_corrupt_offsets_name_file_and_dataset(tmp_path, events, name, damage):
    # Offsets that do not describe the content must not give silently wrong events.
    path = tmp_path / "badoffsets.h5"
    h5io.write_h5(path, events, ATTRS)
    with h5py.File(path, "a") as f:
        off = f[name][:]
        damage(off)
        f[name][:] = off
    with pytest.raises(quiver_testbed.TestbedFileError, match=f"badoffsets.h5: .*'{name}'"):
        quiver_testbed.read_h5(path)
    _, report = quiver_testbed.read_many([path])
    assert list(report["failed"]) == [str(path)]


def test_corrupt_offsets_chunk_names_the_dataset(tmp_path, events):
    path = tmp_path / "badoffchunk.h5"
    h5io.write_h5(path, events, ATTRS)
    with h5py.File(path) as f:
        info = f["jets/offsets"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    with pytest.raises(quiver_testbed.TestbedFileError,
                       match=r"badoffchunk.h5: cannot read dataset 'jets/offsets'"):
        quiver_testbed.read_h5(path)


def test_wrong_dtype_or_form_names_file(tmp_path, events):
    # A dataset in another dtype would be reinterpreted byte by byte; a damaged form
    # attribute would rebuild another layout.
    a = tmp_path / "float64.h5"
    h5io.write_h5(a, events, ATTRS)
    with h5py.File(a, "a") as f:
        pt = f["jets/pt"][:].astype(np.float64)
        del f["jets/pt"]
        f["jets/pt"] = pt
    with pytest.raises(quiver_testbed.TestbedFileError,
                       match=r"float64.h5: dataset 'jets/pt' has dtype float64"):
        quiver_testbed.read_h5(a)
    b = tmp_path / "badform.h5"
    h5io.write_h5(b, events, ATTRS)
    with h5py.File(b, "a") as f:
        f.attrs["form"] = f.attrs["form"].replace('"jets/pt"', '"jets/nope"')
    with pytest.raises(quiver_testbed.TestbedFileError, match=r"badform.h5: the form attribute"):
        quiver_testbed.read_h5(b)


def test_file_error_survives_pickling(tmp_path):
    # Raised in a worker process (Dask, a process pool), it reaches the caller intact.
    import pickle
    with pytest.raises(quiver_testbed.TestbedFileError) as info:
        quiver_testbed.read_h5(tmp_path / "gone.h5")
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == str(info.value) and back.path == info.value.path
