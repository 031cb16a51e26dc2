"""Model inputs of the emerging-jets test bed from (dask-)awkward jets, per the contract.

Works the same on awkward (eager) and dask-awkward (lazy) arrays: only awkward functions
that dask-awkward dispatches are used, and every padded dimension is made regular
(`pad_none(..., clip=True)`), so the wrappers' numpy conversion gets fixed shapes.

Jets are a [events, var] record array with pt, eta, phi, mass, nTrack, medianLogIp2d,
alpha3d and `tracks` ([events, var, var] records pt, eta, phi, charge, d0, d0Err, dz),
e.g. NanoEvents' `events.Jet` with `tracks = events.Jet.constituents.pf`.

Mixins (`*_inputs`) implement prepare_awkward/postprocess_awkward for any coffea.ml_tools
wrapper: combined with `quiver_wrapper` (Quiver) or coffea's own `triton_wrapper`. With a
wrapper whose `accepts_columns` is true (quiver_wrapper) a feature tensor goes as its list of
columns and is stacked in numpy; otherwise it is stacked in awkward.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

MAX_TRACKS = 64
N_JETS = 4          # the 4 leading selected jets
MAX_EVENT_JETS = 8  # emj_event sees the first 8 selected jets


def _stack(columns, as_columns: bool):
    """The feature tensor [..., k] of k columns of one (regular) structure.

    as_columns: return the list itself; a wrapper that accepts column lists (quiver_wrapper)
    stacks them in numpy, ~50x cheaper than awkward's concatenate along a new axis.
    Otherwise one float32 awkward array, as any coffea.ml_tools wrapper takes it.
    """
    if as_columns:
        return list(columns)
    return ak.concatenate(
        [ak.without_parameters(ak.values_astype(c, np.float32))[..., np.newaxis]
         for c in columns], axis=columns[0].ndim)  # dask-awkward: no negative axis


def _pad(x, n, axis, inner=()):
    """Pads or clips dimension `axis` to n: a regular dimension, no option type; the new
    entries are zeros of shape `inner` (the regular dimensions below `axis`)."""
    fill = np.zeros(inner, np.float32) if inner else np.float32(0)
    return ak.fill_none(ak.pad_none(x, n, axis=axis, clip=True), fill, axis=axis)


def jet_columns(jets, n=None):
    """log(pt), eta, mass, nTrack, medianLogIp2d, alpha3d; padded/clipped to n jets per
    event when n is given (jets [events, var]), else as they are (flat jets [n])."""
    cols = [np.log(jets.pt), jets.eta, jets.mass, jets.nTrack, jets.medianLogIp2d,
            jets.alpha3d]
    return [_pad(c, n, axis=1) for c in cols] if n else cols


def jet_features(jets, n: int, as_columns: bool = False):
    """[events, n, 6]: log(pt), eta, mass, nTrack, medianLogIp2d, alpha3d, zero padded."""
    return _stack(jet_columns(jets, n), as_columns)


def jet_mask(jets, n: int):
    """[events, n] float32: 1 for real jets."""
    return _pad(ak.values_astype(ak.ones_like(jets.pt), np.float32), n, axis=1)


def track_features(jets, n_jets: int = N_JETS, max_tracks: int = MAX_TRACKS,
                   as_columns: bool = False):
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
    dphi = trk.phi - jets.phi
    dphi = (dphi + np.float32(np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)
    d0, dz = trk.d0, trk.dz
    cols = [np.log(trk.pt), trk.eta - jets.eta, dphi, trk.charge, d0, d0 / trk.d0Err, dz,
            np.sqrt(d0 * d0 + dz * dz), ak.ones_like(trk.pt)]

    if as_columns:
        # pad once, as a record, and leave the padding as None: the columns become numpy
        # masked arrays, which quiver_wrapper sends with zeros there (~2x cheaper than
        # padding and filling each column)
        rec = ak.zip({str(i): c for i, c in enumerate(cols)}, depth_limit=axis + 1)
        rec = ak.pad_none(rec, max_tracks, axis=axis, clip=True)
        if axis == 2:
            rec = ak.pad_none(rec, n_jets, axis=1, clip=True)
        cols = [rec[str(i)] for i in range(len(cols))]
        return cols[:-1], cols[-1]

    def pad(c):
        c = _pad(c, max_tracks, axis=axis)
        return _pad(c, n_jets, axis=1, inner=(max_tracks,)) if axis == 2 else c

    cols = [pad(c) for c in cols]
    mask = ak.values_astype(cols.pop(), np.float32)
    return _stack(cols, False), mask


def _columns(wrapper) -> bool:
    return bool(getattr(wrapper, "accepts_columns", False))


class _score_output:
    """postprocess_awkward: the `score` output without its last (size-1) dimension."""

    def postprocess_awkward(self, ret, *args, **kwargs):
        return ret["score"][..., 0]


class dnn_inputs(_score_output):
    """emj_dnn on the 4 leading jets: wrapper(jets) -> [events, 4] scores."""

    def prepare_awkward(self, jets):
        return [], {"output_list": ["score"],
                    "input_dict": {"jet": jet_features(jets, N_JETS, _columns(self))}}


class gnn_inputs(_score_output):
    """emj_gnn on the 4 leading jets' tracks: wrapper(jets) -> [events, 4] scores."""

    def prepare_awkward(self, jets):
        feats, mask = track_features(jets, N_JETS, as_columns=_columns(self))
        return [], {"output_list": ["score"], "input_dict": {"tracks": feats, "mask": mask}}


class event_inputs(_score_output):
    """emj_event on the first 8 selected jets: wrapper(jets) -> [events] scores."""

    def prepare_awkward(self, jets):
        return [], {"output_list": ["score"],
                    "input_dict": {"jets": jet_features(jets, MAX_EVENT_JETS, _columns(self)),
                                   "mask": jet_mask(jets, MAX_EVENT_JETS)}}


class flat_dnn_inputs(_score_output):
    """emj_dnn on a flat jet array [n] (the form coffea's triton_wrapper needs: it accepts
    only the model's own rank): wrapper(flat_jets) -> [n] scores."""

    def prepare_awkward(self, jets):
        return [], {"output_list": ["score"],
                    "input_dict": {"jet": _stack(jet_columns(jets), _columns(self))}}


class flat_gnn_inputs(_score_output):
    """emj_gnn on a flat jet array [n] with tracks: wrapper(flat_jets) -> [n] scores."""

    def prepare_awkward(self, jets):
        feats, mask = track_features(jets, as_columns=_columns(self))
        return [], {"output_list": ["score"], "input_dict": {"tracks": feats, "mask": mask}}
