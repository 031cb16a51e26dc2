"""Reconstruction: anti-kT jets on PF candidates (FastJet, all events of a chunk in one call),
the tracks of each jet (its charged constituents), the per-jet features of the contract and
the missing pT. Everything after the clustering is flat numpy over all jets/tracks.
"""

import numpy as np
import awkward as ak
import fastjet
import vector

vector.register_awkward()

JET_DTYPES = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "mass": np.float32,
              "nTrack": np.int32, "medianLogIp2d": np.float32, "alpha3d": np.float32,
              "isDark": np.int8}
TRACK_DTYPES = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "d0": np.float32,
                "d0Err": np.float32, "dz": np.float32, "dzErr": np.float32,
                "charge": np.int8, "fromDark": np.int8}
NO_TRACK_MEDIAN = -5.0
NO_TRACK_ALPHA = -1.0


def _segment_starts(counts):
    return np.cumsum(counts) - counts


def _jet_median(values, jet_of, n_jets, counts):
    """Median of values per jet (values grouped by jet_of); NO_TRACK_MEDIAN without tracks."""
    order = np.lexsort((values, jet_of))
    v = values[order]
    start = _segment_starts(counts)
    out = np.full(n_jets, NO_TRACK_MEDIAN)
    has = counts > 0
    lo = start[has] + (counts[has] - 1) // 2
    hi = start[has] + counts[has] // 2
    out[has] = 0.5 * (v[lo] + v[hi])
    return out


def reconstruct(pf, reco):
    """events * {MET_pt, MET_phi, jets: var * {jet fields, tracks: var * {track fields}}}."""
    n_ev = len(pf)
    counts = ak.num(pf, axis=1).to_numpy()
    ev_start = _segment_starts(counts)
    flat = {f: ak.to_numpy(ak.flatten(pf[f], axis=1)) for f in pf.fields}
    event_of = np.repeat(np.arange(n_ev), counts)

    # Missing pT of all PF candidates.
    met_x = -np.bincount(event_of, weights=flat["px"], minlength=n_ev)
    met_y = -np.bincount(event_of, weights=flat["py"], minlength=n_ev)

    vecs = ak.zip({"px": pf.px, "py": pf.py, "pz": pf.pz, "E": pf.e}, with_name="Momentum4D")
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, reco["jet_r"])
    if len(flat["px"]):
        cs = fastjet.ClusterSequence(vecs, jetdef)
        jets = cs.inclusive_jets(min_pt=reco["jet_pt_min"])
        cidx = cs.constituent_index(min_pt=reco["jet_pt_min"])
        jets_per_ev = ak.num(jets, axis=1).to_numpy()
        jpx, jpy, jpz, je = (ak.to_numpy(ak.flatten(jets[f], axis=1)).astype(np.float64)
                             for f in ("px", "py", "pz", "E"))
        const_per_jet = ak.to_numpy(ak.flatten(ak.num(cidx, axis=2), axis=1))
        const_local = ak.to_numpy(ak.flatten(cidx, axis=None)).astype(np.int64)
    else:  # FastJet cannot take an array without any particle
        jets_per_ev = np.zeros(n_ev, np.int64)
        jpx = jpy = jpz = je = np.zeros(0)
        const_per_jet = np.zeros(0, np.int64)
        const_local = np.zeros(0, np.int64)

    jet_ev = np.repeat(np.arange(n_ev), jets_per_ev)
    jpt = np.hypot(jpx, jpy)
    jeta = np.arcsinh(jpz / np.where(jpt > 0, jpt, 1.0))
    jphi = np.arctan2(jpy, jpx)
    jmass = np.sqrt(np.maximum(je**2 - jpx**2 - jpy**2 - jpz**2, 0.0))

    # Keep jets in acceptance; order by event, then pt descending.
    sel = np.abs(jeta) < reco["jet_eta_max"]
    order = np.lexsort((-jpt, jet_ev))
    order = order[sel[order]]
    n_jets = len(order)

    # Constituents of the kept jets -> tracks (charged candidates), by jet then pt descending.
    const_jet = np.repeat(np.arange(len(jpt)), const_per_jet)
    const_global = const_local + ev_start[jet_ev[const_jet]] if len(const_local) else const_local
    new_index = np.full(len(jpt), -1)
    new_index[order] = np.arange(n_jets)
    cj = new_index[const_jet]
    is_trk = (cj >= 0) & (flat["charge"][const_global] != 0)
    tj, tg = cj[is_trk], const_global[is_trk]
    torder = np.lexsort((-flat["pt"][tg], tj))
    tj, tg = tj[torder], tg[torder]
    ntrk = np.bincount(tj, minlength=n_jets)

    tpt = flat["pt"][tg]
    with np.errstate(divide="ignore"):
        log_ip = np.log10(np.abs(flat["d0"][tg]))
    log_ip = np.maximum(log_ip, -10.0)  # d0 exactly 0 (ideal detector) -> finite
    median = _jet_median(log_ip, tj, n_jets, ntrk)
    sig3d = np.hypot(flat["d0"][tg] / flat["d0Err"][tg], flat["dz"][tg] / flat["dzErr"][tg]) \
        if len(tg) else np.zeros(0)
    prompt = sig3d < reco["prompt_ip3d_sig"]
    sum_pt = np.bincount(tj, weights=tpt, minlength=n_jets)
    prompt_pt = np.bincount(tj, weights=tpt * prompt, minlength=n_jets)
    dark_pt = np.bincount(tj, weights=tpt * (flat["fromDark"][tg] != 0), minlength=n_jets)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.where(ntrk > 0, prompt_pt / np.where(sum_pt > 0, sum_pt, 1.0), NO_TRACK_ALPHA)

    jet_cols = {"pt": jpt[order], "eta": jeta[order], "phi": jphi[order], "mass": jmass[order],
                "nTrack": ntrk, "medianLogIp2d": median, "alpha3d": alpha,
                "isDark": (dark_pt > 0.5 * sum_pt) & (ntrk > 0)}
    jet_cols = {k: np.asarray(v).astype(JET_DTYPES[k]) for k, v in jet_cols.items()}
    trk_cols = {k: flat[k][tg].astype(TRACK_DTYPES[k]) for k in TRACK_DTYPES}
    tracks = ak.unflatten(ak.zip(trk_cols, depth_limit=1), ntrk)
    jet_cols["tracks"] = tracks
    jets_out = ak.unflatten(ak.zip(jet_cols, depth_limit=1),
                            np.bincount(jet_ev[order], minlength=n_ev))
    return ak.zip({"MET_pt": np.hypot(met_x, met_y).astype(np.float32),
                   "MET_phi": np.arctan2(met_y, met_x).astype(np.float32),
                   "jets": jets_out}, depth_limit=1)
