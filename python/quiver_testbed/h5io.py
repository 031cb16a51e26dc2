"""HDF5 files of the contract (docs/testbed-contract.md, docs/data-format.md): one dataset per
field plus offsets, chunked and gzip'ed, and the awkward `form` in the root attributes so
`read_h5` rebuilds the nested array with ak.from_buffers.

Writes are byte-reproducible: no timestamps (track_times=False), attributes and datasets
always created in the same order, deterministic compression.
"""

import json
import os

import awkward as ak
import h5py
import numpy as np

from .reco import JET_DTYPES, TRACK_DTYPES
from .samples import FORMAT

EVENT_DTYPES = {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64,
                "MET_pt": np.float32, "MET_phi": np.float32, "weight": np.float32}
H5_CHUNK = 65536  # elements per HDF5 chunk


class TestbedFileError(RuntimeError):
    """A test-bed data file is missing, unreadable or inconsistent; the message names the file
    (and the dataset)."""

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message

    def __reduce__(self):  # picklable (process pools, Dask workers) with its two arguments
        return type(self), (self.path, self.message)


def _numpy_form(path, dtype):
    return {"class": "NumpyArray", "primitive": np.dtype(dtype).name, "form_key": path}


def build_form():
    """The awkward form of an events array; form keys are the HDF5 dataset paths."""
    track = {"class": "RecordArray", "fields": list(TRACK_DTYPES),
             "contents": [_numpy_form(f"tracks/{k}", t) for k, t in TRACK_DTYPES.items()]}
    jet_fields = list(JET_DTYPES) + ["tracks"]
    jet = {"class": "RecordArray", "fields": jet_fields,
           "contents": [_numpy_form(f"jets/{k}", t) for k, t in JET_DTYPES.items()]
           + [{"class": "ListOffsetArray", "offsets": "i64", "form_key": "tracks/offsets",
               "content": track}]}
    ev_fields = list(EVENT_DTYPES) + ["jets"]
    return ak.forms.from_dict({
        "class": "RecordArray", "fields": ev_fields,
        "contents": [_numpy_form(f"events/{k}", t) for k, t in EVENT_DTYPES.items()]
        + [{"class": "ListOffsetArray", "offsets": "i64", "form_key": "jets/offsets",
            "content": jet}]})


def _offsets(counts):
    off = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=off[1:])
    return off


def flat_columns(events):
    """dataset path -> numpy array (contract dtypes) of an events array."""
    cols = {f"events/{k}": ak.to_numpy(events[k]).astype(t) for k, t in EVENT_DTYPES.items()}
    jets = ak.flatten(events.jets, axis=1)
    cols["jets/offsets"] = _offsets(ak.to_numpy(ak.num(events.jets, axis=1)))
    for k, t in JET_DTYPES.items():
        cols[f"jets/{k}"] = ak.to_numpy(jets[k]).astype(t)
    tracks = ak.flatten(jets.tracks, axis=1)
    cols["tracks/offsets"] = _offsets(ak.to_numpy(ak.num(jets.tracks, axis=1)))
    for k, t in TRACK_DTYPES.items():
        cols[f"tracks/{k}"] = ak.to_numpy(tracks[k]).astype(t)
    return cols


def write_h5(path, events, attrs):
    """Write an events array to path (atomically: a .tmp file renamed at the end).

    attrs: the root attributes besides format/n_events/form (sample, process, ctau_mm, seed,
    settings), written in a fixed order."""
    tmp = f"{path}.tmp"
    cols = flat_columns(events)
    with h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        for key in ("sample", "process", "ctau_mm", "seed", "settings",
                    "n_failed_pythia"):
            if key in attrs:
                f.attrs[key] = attrs[key]
        f.attrs["n_events"] = len(events)
        f.attrs["form"] = build_form().to_json()
        for name, arr in cols.items():
            chunk = (max(1, min(H5_CHUNK, len(arr))),)
            f.create_dataset(name, data=arr, chunks=chunk, compression="gzip",
                             compression_opts=4, shuffle=True, track_times=False)
    os.replace(tmp, path)


def _check_lengths(path, f, n_events):
    """Dataset lengths and offsets ends agree (reads only the offsets' first and last entries;
    a dataset that cannot be read is named)."""
    def length(name):
        if name not in f:
            raise TestbedFileError(path, f"dataset {name!r} is missing")
        return f[name].shape[0]

    def ends(name):
        try:
            return int(f[name][0]), int(f[name][-1])
        except (OSError, KeyError, ValueError) as err:
            raise TestbedFileError(path, f"cannot read dataset {name!r} (corrupt?): "
                                   f"{err}") from None

    for k in EVENT_DTYPES:
        if length(f"events/{k}") != n_events:
            raise TestbedFileError(path, f"dataset 'events/{k}' has {f[f'events/{k}'].shape[0]}"
                                   f" entries, expected n_events = {n_events}")
    for group, fields, parent_n in (("jets", JET_DTYPES, n_events), ("tracks", TRACK_DTYPES,
                                                                       None)):
        if parent_n is None:
            parent_n = length("jets/pt")
        if length(f"{group}/offsets") != parent_n + 1:
            raise TestbedFileError(path, f"dataset '{group}/offsets' has "
                                   f"{f[f'{group}/offsets'].shape[0]} entries, expected "
                                   f"{parent_n + 1}")
        first, total = ends(f"{group}/offsets")
        if first != 0:
            raise TestbedFileError(path, f"dataset '{group}/offsets' starts at {first}, not 0")
        for k in fields:
            if length(f"{group}/{k}") != total:
                raise TestbedFileError(path, f"dataset '{group}/{k}' has "
                                       f"{f[f'{group}/{k}'].shape[0]} entries, the offsets "
                                       f"say {total}")


def _check_offsets(path, name, off, total):
    """Offsets read for a range must be non-decreasing and inside [0, total]."""
    if len(off) and (off[0] < 0 or off[-1] > total or np.any(np.diff(off) < 0)):
        raise TestbedFileError(path, f"dataset {name!r} is corrupt: its offsets are not "
                               f"non-decreasing within [0, {total}]")


def read_h5(path, start=None, stop=None):
    """Events [start, stop) of a test-bed HDF5 file as an awkward array.

    Raises TestbedFileError naming the file (and the dataset) when the file is missing, not
    HDF5, truncated or inconsistent."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TestbedFileError(path, "no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise TestbedFileError(path, f"not a readable HDF5 file (truncated or corrupt?): "
                               f"{err}") from None
    form = build_form()
    expected = {ds: np.dtype(t) for group, table in (("events", EVENT_DTYPES),
                                                     ("jets", JET_DTYPES),
                                                     ("tracks", TRACK_DTYPES))
                for ds, t in ((f"{group}/{k}", t) for k, t in table.items())}
    expected.update({"jets/offsets": np.dtype(np.int64), "tracks/offsets": np.dtype(np.int64)})
    with f:
        current = None
        # h5py raises OSError, KeyError, ValueError or RuntimeError for damaged metadata.
        try:
            if f.attrs.get("format") != FORMAT:
                raise TestbedFileError(path, f"format attribute is {f.attrs.get('format')!r}, "
                                       f"expected {FORMAT!r}")
            try:
                n_events = int(f.attrs["n_events"])
                file_form = ak.forms.from_json(f.attrs["form"])
            except (KeyError, ValueError, TypeError) as err:
                raise TestbedFileError(path, f"bad root attribute: {err}") from None
            # The layout is fixed by the format: another one is a damaged attribute.
            if not file_form.is_equal_to(form, all_parameters=True, form_key=True):
                raise TestbedFileError(path, f"the form attribute is not the {FORMAT} layout")
            a, b, _ = slice(start, stop).indices(n_events)
            b = max(a, b)
            _check_lengths(path, f, n_events)
            for name, dtype in expected.items():
                if f[name].dtype != dtype:
                    raise TestbedFileError(path, f"dataset {name!r} has dtype {f[name].dtype}, "
                                           f"expected {dtype}")
            current = "jets/offsets"
            joff = f["jets/offsets"][a:b + 1]
            _check_offsets(path, current, joff, f["jets/pt"].shape[0])
            current = "tracks/offsets"
            toff = f["tracks/offsets"][joff[0]:joff[-1] + 1]
            _check_offsets(path, current, toff, f["tracks/pt"].shape[0])
            bufs = {"jets/offsets": joff - joff[0], "tracks/offsets": toff - toff[0]}
            for k in EVENT_DTYPES:
                current = f"events/{k}"
                bufs[current] = f[current][a:b]
            for k in JET_DTYPES:
                current = f"jets/{k}"
                bufs[current] = f[current][joff[0]:joff[-1]]
            for k in TRACK_DTYPES:
                current = f"tracks/{k}"
                bufs[current] = f[current][toff[0]:toff[-1]]
        except TestbedFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
            what = f"dataset {current!r}" if current else "its metadata"
            raise TestbedFileError(path, f"cannot read {what} (corrupt?): "
                                   f"{type(err).__name__}: {err}") from None
    return ak.from_buffers(form, b - a, bufs, buffer_key="{form_key}")


def read_many(paths):
    """Read several files; a bad file is reported, not fatal.

    Returns (events of the good files concatenated, {"processed": [paths], "failed":
    {path: message}}); len(processed) + len(failed) == len(paths)."""
    arrays, report = [], {"processed": [], "failed": {}}
    for p in paths:
        try:
            arrays.append(read_h5(p))
            report["processed"].append(str(p))
        except TestbedFileError as err:
            report["failed"][str(p)] = str(err)
    events = ak.concatenate(arrays) if arrays else None
    return events, report


def file_attrs(path):
    """Root attributes of a test-bed HDF5 file (settings decoded from JSON)."""
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs if k != "form"}
    except OSError as err:
        raise TestbedFileError(path, f"not a readable HDF5 file: {err}") from None
    if "settings" in attrs:
        attrs["settings"] = json.loads(attrs["settings"])
    return attrs
