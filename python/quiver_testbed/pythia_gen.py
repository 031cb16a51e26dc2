"""Pythia 8 event generation into numpy/awkward particle lists (runs in worker processes).

`pythia8mc` is imported lazily here and only by worker processes that chdir'ed away from the
repository root first: importing it executes every file in a directory named `python` under
the current working directory (the repository has one).
"""

import os
import sys

import numpy as np
import awkward as ak

# Dark mesons whose decay products are "from dark" (truth used for training labels).
DARK_PARENTS = np.array([4900111, 4900211], dtype=np.int64)


class GenerationError(RuntimeError):
    """Pythia failed to initialise or to produce events."""


def make_pythia(lines, seed):
    """An initialised, quiet Pythia with the given settings and seed."""
    if "pythia8mc" not in sys.modules and os.path.isdir("python"):
        raise GenerationError(f"refusing to import pythia8mc in {os.getcwd()}: it would "
                              f"execute the files of ./python; chdir elsewhere first")
    import pythia8mc  # noqa: PLC0415 (see the module docstring)

    pythia = pythia8mc.Pythia("", False)
    for line in ["Print:quiet = on", "Random:setSeed = on", f"Random:seed = {seed}"] + lines:
        if not pythia.readString(line):
            raise GenerationError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise GenerationError("Pythia.init() failed (see Pythia's messages above)")
    return pythia


def next_events(pythia, n):
    """Exactly n events from Pythia (a failed event is retried, and counted)."""
    batches, have, failed = [], 0, 0
    while have < n:
        batch = pythia.nextBatch(n - have, "skip")
        got = len(batch)
        failed += (n - have) - got
        if failed > 10 * n + 100:
            raise GenerationError(f"Pythia failed {failed} events (got {have} of {n})")
        if got:
            batches.append(batch.prt)
            have += got
    return (batches[0] if len(batches) == 1 else ak.concatenate(batches)), failed


class ParticleLookup:
    """Charge and visibility per PDG id, cached (Pythia's particle data is per-id calls)."""

    def __init__(self, pythia):
        self.pdata = pythia.particleData
        self.cache = {}

    def __call__(self, ids):
        uniq, inverse = np.unique(ids, return_inverse=True)
        charge = np.empty(len(uniq), np.int8)
        visible = np.empty(len(uniq), bool)
        for k, pid in enumerate(uniq.tolist()):
            if pid not in self.cache:
                self.cache[pid] = (round(self.pdata.charge(pid)), self.pdata.isVisible(pid))
            charge[k], visible[k] = self.cache[pid]
        return charge[inverse], visible[inverse]


def from_dark_flags(ids, mother1, mother2, starts):
    """Truth flag per particle: descends from a dark-meson decay (flat arrays, all events).

    starts: index of each particle's event start in the flat arrays (mothers are per event).
    Propagates along mother1 and mother2 until nothing changes (the history is a few tens of
    generations deep at most).
    """
    m1 = np.where(mother1 > 0, mother1 + starts, -1)
    m2 = np.where(mother2 > 0, mother2 + starts, -1)
    is_parent = np.isin(np.abs(ids), DARK_PARENTS)
    flag = np.zeros(len(ids), bool)
    for _ in range(200):
        new = flag.copy()
        for m in (m1, m2):
            ok = m >= 0
            new[ok] |= flag[m[ok]] | is_parent[m[ok]]
        if np.array_equal(new, flag):
            return flag
        flag = new
    raise GenerationError("dark-ancestry propagation did not converge")


def visible_particles(prt, lookup):
    """Final-state visible particles of a batch: events * var * {px, py, pz, e, x, y, z (mm,
    production vertex w.r.t. the interaction point), charge, pid, fromDark}."""
    counts = ak.num(prt, axis=1).to_numpy()
    flat = ak.flatten(prt, axis=1)
    ids = ak.to_numpy(flat.id).astype(np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    dark = from_dark_flags(ids, ak.to_numpy(flat.mother1), ak.to_numpy(flat.mother2), starts)
    charge, visible = lookup(ids)
    keep = (ak.to_numpy(flat.status) > 0) & visible
    p = flat.p
    v = flat.vProd  # missing when the particle has no vertex: produced at the origin
    cols = {
        "px": ak.to_numpy(p.px), "py": ak.to_numpy(p.py), "pz": ak.to_numpy(p.pz),
        "e": ak.to_numpy(p.e),
        "x": ak.to_numpy(ak.fill_none(v.px, 0.0)), "y": ak.to_numpy(ak.fill_none(v.py, 0.0)),
        "z": ak.to_numpy(ak.fill_none(v.pz, 0.0)),
        "charge": charge, "pid": ids.astype(np.int32), "fromDark": dark.astype(np.int8),
    }
    cols = {k: np.ascontiguousarray(a[keep]) for k, a in cols.items()}
    event_of = np.repeat(np.arange(len(counts)), counts)[keep]
    kept_counts = np.bincount(event_of, minlength=len(counts))
    return ak.unflatten(ak.zip(cols, depth_limit=1), kept_counts)


def truth_summary(prt, lookup):
    """Generator-level displacement numbers of a batch (docs/physics.md): dark-pion decays
    per event, their median transverse decay radius, and the fractions of charged final
    particles (|eta| < 2.5, pT > 1 GeV) produced > 1 mm from the beam line."""
    counts = ak.num(prt, axis=1).to_numpy()
    flat = ak.flatten(prt, axis=1)
    ids = ak.to_numpy(flat.id).astype(np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    dark = from_dark_flags(ids, ak.to_numpy(flat.mother1), ak.to_numpy(flat.mother2), starts)
    charge, _ = lookup(ids)
    vx = ak.to_numpy(ak.fill_none(flat.vProd.px, 0.0))
    vy = ak.to_numpy(ak.fill_none(flat.vProd.py, 0.0))
    r = np.hypot(vx, vy)
    px, py, pz = (ak.to_numpy(getattr(flat.p, c)) for c in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.where(pt > 0, pt, 1e-9))
    status = ak.to_numpy(flat.status)
    charged = (status > 0) & (charge != 0) & (pt > 1.0) & (np.abs(eta) < 2.5)
    # A decayed dark pion's decay vertex = its first daughter's production vertex.
    d1 = ak.to_numpy(flat.daughter1).astype(np.int64)
    decayed = (np.abs(ids) == 4900111) & (status < 0) & (d1 > 0)
    decay_r = r[(d1 + starts)[decayed]]
    out = {"events": len(counts),
           "dark_pion_decays_per_event": float(decayed.sum() / max(len(counts), 1)),
           "median_decay_r_mm": float(np.median(decay_r)) if len(decay_r) else float("nan"),
           "charged_frac_r_gt_1mm": float(np.mean(r[charged] > 1.0))}
    if dark[charged].any():
        out["dark_charged_frac_r_gt_1mm"] = float(np.mean(r[charged & dark] > 1.0))
        out["charged_frac_fromDark"] = float(np.mean(dark[charged]))
    return out
