"""`python -m quiver_testbed stats FILE.h5 ...`: displacement summary of samples (the numbers
in docs/physics.md), computed from the HDF5 files; `stats --truth SAMPLE ...`: the same at
generator level (runs Pythia)."""

import json
import multiprocessing
import os
import tempfile

import awkward as ak
import numpy as np

from . import pythia_gen, samples
from .h5io import file_attrs, read_h5


def sample_stats(path):
    """Displaced-track fractions and jet-level numbers of one HDF5 file."""
    ev = read_h5(path)
    jets = ev.jets
    trk = ak.flatten(ak.flatten(jets.tracks, axis=2), axis=1)
    d0 = np.abs(ak.to_numpy(trk.d0))
    sig = d0 / ak.to_numpy(trk.d0Err)
    flat_jets = ak.flatten(jets)
    has_trk = ak.to_numpy(flat_jets.nTrack) > 0
    tagged = ak.to_numpy((flat_jets.medianLogIp2d > -1.0) & (flat_jets.alpha3d < 0.25))
    # The contract's selection with the cut-based tagger (a cross-check for the analyses).
    sel = jets[(jets.pt > 50) & (abs(jets.eta) < 2.0)]
    four = ak.num(sel) >= 4
    ht_ok = four & (ak.sum(sel.pt, axis=1) > 500)
    lead = sel[:, :4]
    n_tag = ak.sum((lead.medianLogIp2d > -1.0) & (lead.alpha3d < 0.25), axis=1)
    cutflow = [len(ev), int(ak.sum(four)), int(ak.sum(ht_ok)), int(ak.sum(ht_ok & (n_tag >= 2)))]
    attrs = file_attrs(path)
    return {
        "sample": str(attrs.get("sample")), "events": len(ev),
        "jets_per_event": float(ak.mean(ak.num(jets))),
        "tracks_per_jet": float(np.mean(ak.to_numpy(flat_jets.nTrack))),
        "track_frac_d0_gt_1mm": float(np.mean(d0 > 1.0)),
        "track_frac_d0_gt_0p1mm": float(np.mean(d0 > 0.1)),
        "track_frac_d0sig_gt_4": float(np.mean(sig > 4.0)),
        "track_frac_fromDark": float(np.mean(ak.to_numpy(trk.fromDark) != 0)),
        "jet_frac_isDark": float(np.mean(ak.to_numpy(flat_jets.isDark) != 0)),
        "jet_median_medianLogIp2d": float(np.median(ak.to_numpy(flat_jets.medianLogIp2d)
                                                    [has_trk])),
        "jet_frac_cut_tagged": float(np.mean(tagged)),
        "cutflow_cut_tagger": "/".join(map(str, cutflow)),
    }


def main(paths, as_json=False):
    rows = [sample_stats(p) for p in paths]
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                for v in r.values()) + " |")
    return 0


def _truth_worker(job):
    settings, workdir = job
    os.chdir(workdir)  # pythia8mc must not be imported in the repository root
    pythia = pythia_gen.make_pythia(
        settings["pythia"], samples.chunk_seed(settings["sample"], settings["seed"], 0))
    prt, _ = pythia_gen.next_events(pythia, settings["n_events"])
    return pythia_gen.truth_summary(prt, pythia_gen.ParticleLookup(pythia))


def truth_main(names, n_events, seed):
    """Generator-level displacement table (runs Pythia in a worker process)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            multiprocessing.get_context("fork").Pool(1) as pool:
        for name in names:
            st = samples.sample_settings(name, n_events, seed)
            rows.append({"sample": name} | pool.apply(_truth_worker, ((st, tmp),)))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3f}" if isinstance(r.get(k), float) else
                                str(r.get(k, "-")) for k in keys) + " |")
    return 0
