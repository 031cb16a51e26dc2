"""Small, deterministic stand-ins for the test bed's inputs (docs/testbed-contract.md).

- `write_root(path, n_events, seed, run)`: a ROOT file in the contract's NanoAOD-like layout
  (TTree `Events`, PFNano names) with random but physics-shaped content: enough events pass
  the selection for the analysis to have something to do; some jets have more than 64
  tracks (truncation) and some none.
- `write_models(repository)`: TorchScript stand-ins for `emj_gnn`, `emj_dnn`, `emj_event`
  with the contract's input/output names and shapes, plus their `config.pbtxt`. The scores
  are sigmoids of simple functions of the raw features, spread over (0, 1).

Used by the tests and the benchmark when the generated data (/work/testbed-data or data/)
and the trained models are not there. Runs in the project venv (torch, uproot, awkward).
"""

from __future__ import annotations

import pathlib

import awkward as ak
import numpy as np

MAX_TRACKS = 64
MAX_JETS = 8


def make_events(n_events: int, seed: int = 1, run: int = 1, first_event: int = 0) -> dict:
    """The branches of `n_events` synthetic events as {name: numpy or awkward array}."""
    rng = np.random.default_rng(seed)
    n_jet = rng.integers(0, 11, n_events)
    n_jets = int(n_jet.sum())
    # pt sorted descending within each event
    pt = (20.0 + rng.exponential(110.0, n_jets)).astype(np.float32)
    jet_off = np.concatenate([[0], np.cumsum(n_jet)])
    for i in range(n_events):
        a, b = jet_off[i], jet_off[i + 1]
        pt[a:b] = np.sort(pt[a:b])[::-1]
    eta = rng.uniform(-2.5, 2.5, n_jets).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, n_jets).astype(np.float32)
    mass = (pt * rng.uniform(0.05, 0.2, n_jets)).astype(np.float32)
    dark = rng.random(n_jets) < 0.3
    n_track = rng.integers(0, 30, n_jets)
    n_track[rng.random(n_jets) < 0.05] = 0
    big = rng.random(n_jets) < 0.05
    n_track[big] = rng.integers(65, 90, int(big.sum()))
    n_track = n_track.astype(np.int32)
    n_tracks = int(n_track.sum())
    trk_jet = np.repeat(np.arange(n_jets), n_track)
    t_pt = (0.5 + rng.exponential(4.0, n_tracks)).astype(np.float32)
    trk_off = np.concatenate([[0], np.cumsum(n_track)])
    for j in range(n_jets):
        a, b = trk_off[j], trk_off[j + 1]
        t_pt[a:b] = np.sort(t_pt[a:b])[::-1]
    t_eta = (eta[trk_jet] + rng.normal(0, 0.15, n_tracks)).astype(np.float32)
    t_phi = phi[trk_jet] + rng.normal(0, 0.15, n_tracks)
    t_phi = ((t_phi + np.pi) % (2 * np.pi) - np.pi).astype(np.float32)
    t_dark = dark[trk_jet] & (rng.random(n_tracks) < 0.8)
    scale = np.where(t_dark, 5.0, 0.02)
    d0 = (rng.normal(0, 1, n_tracks) * scale).astype(np.float32)
    dz = (rng.normal(0, 1, n_tracks) * scale * 2).astype(np.float32)
    d0_err = rng.uniform(0.005, 0.05, n_tracks).astype(np.float32)
    dz_err = rng.uniform(0.01, 0.1, n_tracks).astype(np.float32)
    charge = np.where(rng.random(n_tracks) < 0.5, -1, 1).astype(np.int8)

    # jet summaries from their tracks (as the generator defines them)
    med = np.full(n_jets, -5.0, np.float32)
    alpha = np.full(n_jets, -1.0, np.float32)
    sig3d = np.hypot(d0 / d0_err, dz / dz_err)
    for j in range(n_jets):
        a, b = trk_off[j], trk_off[j + 1]
        if b > a:
            med[j] = np.median(np.log10(np.abs(d0[a:b]) + 1e-9))
            alpha[j] = t_pt[a:b][sig3d[a:b] < 4].sum() / t_pt[a:b].sum()

    def jag(x, counts):
        return ak.unflatten(x, counts)

    # tracks per event; index of each track's jet inside its event, of each track inside it
    evt_of_jet = np.repeat(np.arange(n_events), n_jet)
    n_pf = np.bincount(evt_of_jet, weights=n_track, minlength=n_events).astype(np.int64)
    jet_in_evt = np.arange(n_jets) - jet_off[evt_of_jet]
    pf_off = np.concatenate([[0], np.cumsum(n_pf)])
    evt_of_trk = evt_of_jet[trk_jet]
    trk_in_evt = np.arange(n_tracks) - pf_off[evt_of_trk]

    return {
        "run": np.full(n_events, run, np.uint32),
        "luminosityBlock": (1 + np.arange(n_events) // 100).astype(np.uint32),
        "event": (first_event + np.arange(n_events)).astype(np.uint64),
        "MET_pt": rng.exponential(40.0, n_events).astype(np.float32),
        "MET_phi": rng.uniform(-np.pi, np.pi, n_events).astype(np.float32),
        "genWeight": np.ones(n_events, np.float32),
        "Jet": ak.zip({
            "pt": jag(pt, n_jet), "eta": jag(eta, n_jet), "phi": jag(phi, n_jet),
            "mass": jag(mass, n_jet), "nTrack": jag(n_track, n_jet),
            "medianLogIp2d": jag(med, n_jet), "alpha3d": jag(alpha, n_jet),
            "isDark": jag(dark.astype(np.int8), n_jet),
            "nConstituents": jag(n_track, n_jet),
        }),
        "PFCands": ak.zip({
            "pt": jag(t_pt, n_pf), "eta": jag(t_eta, n_pf), "phi": jag(t_phi, n_pf),
            "charge": jag(charge, n_pf), "d0": jag(d0, n_pf), "d0Err": jag(d0_err, n_pf),
            "dz": jag(dz, n_pf), "dzErr": jag(dz_err, n_pf),
            "fromDark": jag(t_dark.astype(np.int8), n_pf),
        }),
        "JetPFCands": ak.zip({
            "jetIdx": jag(jet_in_evt[trk_jet].astype(np.int32), n_pf),
            "pFCandsIdx": jag(trk_in_evt.astype(np.int32), n_pf),
        }),
    }


def write_root(path, n_events: int = 500, seed: int = 1, run: int = 1,
               first_event: int = 0) -> pathlib.Path:
    """Writes a synthetic NanoAOD-like ROOT file (TTree Events) and returns its path."""
    import uproot

    path = pathlib.Path(path)
    branches = make_events(n_events, seed, run, first_event)
    with uproot.recreate(path) as f:
        f.mktree("Events", {k: (v.type if isinstance(v, ak.Array) else v.dtype)
                            for k, v in branches.items()})
        f["Events"].extend(branches)
    return path


# ---------------------------------------------------------------------------------------
# Stand-in models

CONFIGS = {
    "emj_gnn": """name: "emj_gnn"
platform: "pytorch_libtorch"
max_batch_size: {mbs}
input [
  {{ name: "tracks" data_type: TYPE_FP32 dims: [ 64, 8 ] }},
  {{ name: "mask" data_type: TYPE_FP32 dims: [ 64 ] }}
]
output [ {{ name: "score" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
dynamic_batching {{ preferred_batch_size: [ {pref} ] max_queue_delay_microseconds: 100 }}
""",
    "emj_dnn": """name: "emj_dnn"
platform: "pytorch_libtorch"
max_batch_size: {mbs}
input [ {{ name: "jet" data_type: TYPE_FP32 dims: [ 6 ] }} ]
output [ {{ name: "score" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
dynamic_batching {{ preferred_batch_size: [ {pref} ] max_queue_delay_microseconds: 100 }}
""",
    "emj_event": """name: "emj_event"
platform: "pytorch_libtorch"
max_batch_size: {mbs}
input [
  {{ name: "jets" data_type: TYPE_FP32 dims: [ 8, 6 ] }},
  {{ name: "mask" data_type: TYPE_FP32 dims: [ 8 ] }}
]
output [ {{ name: "score" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
dynamic_batching {{ preferred_batch_size: [ {pref} ] max_queue_delay_microseconds: 100 }}
""",
}


def _modules():
    import torch

    class Gnn(torch.nn.Module):
        def forward(self, tracks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            # mean over real tracks of a displacement-like feature
            x = torch.tanh(torch.abs(tracks[:, :, 4]) * 2.0) * mask
            n = torch.clamp(mask.sum(dim=1), min=1.0)
            m = x.sum(dim=1) / n
            return torch.sigmoid(6.0 * (m - 0.4)).unsqueeze(1)

    class Dnn(torch.nn.Module):
        def forward(self, jet: torch.Tensor) -> torch.Tensor:
            z = 1.5 * (jet[:, 4] + 1.0) - 4.0 * (jet[:, 5] - 0.25) + 0.1 * (jet[:, 0] - 4.5)
            return torch.sigmoid(z).unsqueeze(1)

    class Event(torch.nn.Module):
        def forward(self, jets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            z = 1.5 * (jets[:, :, 4] + 1.0) - 4.0 * (jets[:, :, 5] - 0.25)
            n = torch.clamp(mask.sum(dim=1), min=1.0)
            m = (z * mask).sum(dim=1) / n
            return torch.sigmoid(m).unsqueeze(1)

    return {"emj_gnn": Gnn(), "emj_dnn": Dnn(), "emj_event": Event()}


def write_models(repository, max_batch_size: int = 1024, preferred_batch_size: int = 256):
    """Writes the three stand-in models (TorchScript + config.pbtxt) into `repository`."""
    import torch

    repository = pathlib.Path(repository)
    for name, module in _modules().items():
        (repository / name / "1").mkdir(parents=True, exist_ok=True)
        torch.jit.script(module).save(str(repository / name / "1" / "model.pt"))
        (repository / name / "config.pbtxt").write_text(
            CONFIGS[name].format(mbs=max_batch_size, pref=preferred_batch_size))
    return repository


def local_scores(repository, name: str, inputs: dict) -> np.ndarray:
    """Runs a model of `repository` with torch directly (the reference for tests)."""
    import torch

    module = torch.jit.load(str(pathlib.Path(repository) / name / "1" / "model.pt"))
    with torch.no_grad():
        out = module(*[torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()])
    return out.numpy()
