"""NanoAOD-like ROOT file of the contract (uproot mktree, TTree `Events`, PFNano names):
jets as `Jet_*`, the jets' tracks as `PFCands_*` (same order as the HDF5 tracks) and the
jet -> candidate links as `JetPFCands_*`, so coffea's NanoAODSchema builds
`events.Jet.constituents.pf`.
"""

import os

import awkward as ak
import numpy as np
import uproot

from .h5io import TestbedFileError
from .detector import PION_MASS
from .reco import JET_DTYPES, TRACK_DTYPES

BASKET_EVENTS = 20000


def nano_branches(events):
    """Branch name (uproot style: records become nX + X_field) -> array."""
    jets = events.jets
    jet_cols = {k: jets[k] for k in JET_DTYPES}
    jet_cols["nConstituents"] = jets.nTrack
    # Tracks of all jets of an event, in jet order: the event's PF candidates.
    pf = ak.flatten(jets.tracks, axis=2)
    pf_cols = {k: pf[k] for k in TRACK_DTYPES}
    # Coffea's PFCand needs a mass: tracks are given the charged-pion mass.
    pf_cols["mass"] = ak.values_astype(ak.full_like(pf.pt, PION_MASS), np.float32)
    # One JetPFCands row per candidate: its jet index and its candidate index.
    ntrk = jets.nTrack
    jet_idx = ak.flatten(ak.broadcast_arrays(ak.local_index(ntrk, axis=1),
                                             jets.tracks.pt)[0], axis=2)
    cand_idx = ak.local_index(pf.pt, axis=1)
    return {
        "run": ak.to_numpy(events.run).astype(np.uint32),
        "luminosityBlock": ak.to_numpy(events.luminosityBlock).astype(np.uint32),
        "event": ak.to_numpy(events.event).astype(np.uint64),
        "MET_pt": ak.to_numpy(events.MET_pt).astype(np.float32),
        "MET_phi": ak.to_numpy(events.MET_phi).astype(np.float32),
        "genWeight": ak.to_numpy(events.weight).astype(np.float32),
        "Jet": ak.zip(jet_cols),
        "PFCands": ak.zip(pf_cols),
        "JetPFCands": ak.zip({"jetIdx": ak.values_astype(jet_idx, np.int32),
                              "pFCandsIdx": ak.values_astype(cand_idx, np.int32)}),
    }


def write_root(path, events):
    """Write the events to a ROOT file at path (atomically: .tmp renamed at the end)."""
    tmp = f"{path}.tmp"
    branches = nano_branches(events)
    with uproot.recreate(tmp) as f:
        tree = f.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype
                                   for k, v in branches.items()})
        for a in range(0, max(len(events), 1), BASKET_EVENTS):
            tree.extend({k: v[a:a + BASKET_EVENTS] for k, v in branches.items()})
    os.replace(tmp, path)


def read_root(path):
    """The Events tree as a flat-branch awkward array (clear error for a bad file)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TestbedFileError(path, "no such file")
    try:
        with uproot.open(path) as f:
            return f["Events"].arrays()
    except Exception as err:  # uproot raises many types for a corrupt file
        raise TestbedFileError(path, f"not a readable ROOT file with an Events tree "
                               f"(truncated or corrupt?): {type(err).__name__}: {err}") from None
