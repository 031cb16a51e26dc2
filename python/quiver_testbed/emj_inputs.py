"""Model inputs of the emerging-jets test bed from (dask-)awkward jets, per the contract.

Works the same on awkward (eager) and dask-awkward (lazy) arrays: only awkward functions
that dask-awkward dispatches are used, and every padded dimension is made regular
(`pad_none(..., clip=True)`), so the wrappers' numpy conversion gets fixed shapes.

Jets are a [events, var] record array with pt, eta, phi, mass, nTrack, medianLogIp2d,
alpha3d and `tracks` ([events, var, var] records pt, eta, phi, charge, d0, d0Err, dz),
e.g. NanoEvents' `events.Jet` with `tracks = events.Jet.constituents.pf`.

Mixins (`*_inputs`) implement prepare_awkward/postprocess_awkward for any coffea.ml_tools
wrapper: combined with `quiver_wrapper` (Quiver) or coffea's own `triton_wrapper`.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

MAX_TRACKS = 64
N_JETS = 4          # the 4 leading selected jets
MAX_EVENT_JETS = 8  # emj_event sees the first 8 selected jets


def _stack(fields):
    """[..., k] float32 from k arrays of the same (regular) structure."""
    return ak.concatenate(
        [ak.without_parameters(ak.values_astype(ak.fill_none(f, 0), np.float32))[..., np.newaxis]
         for f in fields], axis=fields[0].ndim)  # dask-awkward: no negative axis


def _pad(x, n, axis, inner=()):
    """Pads/clips dimension `axis` to n; the new entries are zeros of shape `inner` (the
    regular dimensions below `axis`), so no option or union types are left."""
    fill = np.zeros(inner, np.float32) if inner else np.float32(0)
    return ak.fill_none(ak.pad_none(x, n, axis=axis, clip=True), fill, axis=axis)


def jet_features(jets, n: int):
    """[events, n, 6]: log(pt), eta, mass, nTrack, medianLogIp2d, alpha3d, zero padded."""
    feats = _stack([np.log(jets.pt), jets.eta, jets.mass, jets.nTrack,
                    jets.medianLogIp2d, jets.alpha3d])
    return _pad(feats, n, axis=1, inner=(6,))


def jet_mask(jets, n: int):
    """[events, n] float32: 1 for real jets."""
    return _pad(ak.without_parameters(ak.values_astype(ak.ones_like(jets.pt), np.float32)),
                n, axis=1)


def track_features(jets, n_jets: int = N_JETS, max_tracks: int = MAX_TRACKS):
    """Features and mask of the jets' tracks.

    jets [events, var] -> ([events, n_jets, 64, 8], [events, n_jets, 64]) (jets padded or
    clipped to n_jets); flat jets [n] -> ([n, 64, 8], [n, 64]).
    Features: log(pt), eta - jet eta, phi - jet phi wrapped to [-pi, pi), charge, d0,
    d0/d0Err, dz, sqrt(d0^2 + dz^2); the first 64 tracks in pt order; zero padding.
    """
    trk = jets.tracks
    axis = trk.ndim - 1  # the tracks' dimension
    trk = trk[ak.argsort(trk.pt, axis=axis, ascending=False, stable=True)]
    trk = trk[(slice(None),) * axis + (slice(None, max_tracks),)]
    deta = trk.eta - jets.eta
    dphi = trk.phi - jets.phi
    dphi = (dphi + np.float32(np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)
    feats = _stack([np.log(trk.pt), deta, dphi, trk.charge, trk.d0, trk.d0 / trk.d0Err,
                    trk.dz, np.sqrt(trk.d0 * trk.d0 + trk.dz * trk.dz)])
    feats = _pad(feats, max_tracks, axis=axis, inner=(8,))
    mask = ak.without_parameters(ak.values_astype(ak.ones_like(trk.pt), np.float32))
    mask = _pad(mask, max_tracks, axis=axis)
    if axis == 2:
        feats = _pad(feats, n_jets, axis=1, inner=(max_tracks, 8))
        mask = _pad(mask, n_jets, axis=1, inner=(max_tracks,))
    return feats, mask


class _score_output:
    """postprocess_awkward: the `score` output without its last (size-1) dimension."""

    def postprocess_awkward(self, ret, *args, **kwargs):
        return ret["score"][..., 0]


class dnn_inputs(_score_output):
    """emj_dnn on the 4 leading jets: wrapper(jets) -> [events, 4] scores."""

    def prepare_awkward(self, jets):
        return [], {"output_list": ["score"],
                    "input_dict": {"jet": jet_features(jets, N_JETS)}}


class gnn_inputs(_score_output):
    """emj_gnn on the 4 leading jets' tracks: wrapper(jets) -> [events, 4] scores."""

    def prepare_awkward(self, jets):
        feats, mask = track_features(jets, N_JETS)
        return [], {"output_list": ["score"], "input_dict": {"tracks": feats, "mask": mask}}


class event_inputs(_score_output):
    """emj_event on the first 8 selected jets: wrapper(jets) -> [events] scores."""

    def prepare_awkward(self, jets):
        return [], {"output_list": ["score"],
                    "input_dict": {"jets": jet_features(jets, MAX_EVENT_JETS),
                                   "mask": jet_mask(jets, MAX_EVENT_JETS)}}


class flat_dnn_inputs(_score_output):
    """emj_dnn on a flat jet array [n] (the form coffea's triton_wrapper needs: it accepts
    only the model's own rank): wrapper(flat_jets) -> [n] scores."""

    def prepare_awkward(self, jets):
        feats = _stack([np.log(jets.pt), jets.eta, jets.mass, jets.nTrack,
                        jets.medianLogIp2d, jets.alpha3d])
        return [], {"output_list": ["score"], "input_dict": {"jet": feats}}


class flat_gnn_inputs(_score_output):
    """emj_gnn on a flat jet array [n] with tracks: wrapper(flat_jets) -> [n] scores."""

    def prepare_awkward(self, jets):
        feats, mask = track_features(jets)
        return [], {"output_list": ["score"], "input_dict": {"tracks": feats, "mask": mask}}
