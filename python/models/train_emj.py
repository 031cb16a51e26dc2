#!/usr/bin/env python3
"""Trains the emerging-jets taggers emj_gnn, emj_dnn, emj_event and writes them as Triton models.

Run with the project venv (Debian's torch 1.13, CPU):

  .venv/bin/python python/models/train_emj.py --data /work/testbed-data/READY
  .venv/bin/python python/models/train_emj.py --synthetic data/emj-synthetic   # no real data
  .venv/bin/python python/models/train_emj.py --quick --models-dir /tmp/m        # smoke test

Data: HDF5 files in the layout of docs/testbed-contract.md (read with h5py). --data takes
files, directories (every *.h5 / *.hdf5 in them) or a READY file listing them (one path a
line, relative paths against the READY file's folder). The root attribute `process` says
signal or qcd.

Training samples (docs/models.md has the numbers of the shipped models):
- jets: the jets the analysis scores, i.e. the leading 4 selected jets (pt > 50, |eta| < 2.0)
  of events with >= 4 selected jets and HT > 500. Signal jets with isDark == 1 are label 1,
  QCD jets label 0, signal jets with isDark == 0 are not used. If fewer than
  --min-jets-per-class jets of a class pass, all selected jets of all events are used instead
  (the report says which).
- events: events with >= 4 selected jets and HT > 500 (else, as above, events with >= 1
  selected jet), signal label 1, QCD label 0; the first 8 selected jets.
- split by event, per sample, seeded: 70 % train, 10 % validation (best epoch), 20 % test.
- classes are balanced by loss weights (each class has the same total weight).

Writes <models-dir>/emj_{gnn,dnn,event}/config.pbtxt and 1/model.pt, and a JSON report
(AUCs on the test split, also for medianLogIp2d and alpha3d; sample sizes, parameters, time).
"""

import argparse
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time
import zlib

import h5py
import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import emj_nets  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
N_TRK = emj_nets.N_TRACKS
N_EVJ = emj_nets.N_EVENT_JETS

SEL_PT, SEL_ETA, SEL_NJ, SEL_HT = 50.0, 2.0, 4, 500.0

MODEL_SPECS = {
    "emj_gnn": dict(
        max_batch_size=256, preferred=[64, 128, 256],
        inputs=[("tracks", [N_TRK, 8]), ("mask", [N_TRK])],
        comment="ParticleNet-style EdgeConv GNN over the first 64 tracks of a jet"),
    "emj_dnn": dict(
        max_batch_size=4096, preferred=[256, 1024],
        inputs=[("jet", [6])],
        comment="MLP on the 6 jet features"),
    "emj_event": dict(
        max_batch_size=1024, preferred=[128, 512],
        inputs=[("jets", [N_EVJ, 6]), ("mask", [N_EVJ])],
        comment="DeepSets (mean, max, attention pooling) over the first 8 selected jets"),
}


# ----------------------------------------------------------------------------- synthetic data

def write_synthetic(path, process, n_events, seed, ctau_mm=-1.0):
    """Writes a random HDF5 file in the contract layout. Signal jets are dark (isDark = 1) with
    probability 0.6 and then have most tracks displaced (exponential decay radius); QCD jets have
    a few displaced tracks. Not physics: only shapes and a learnable difference."""
    rng = np.random.default_rng(seed)
    sig = process == "signal"
    n_jets = np.clip(3 + rng.poisson(2.5 if sig else 2.0, n_events), 1, 12)
    jet_off = np.concatenate([[0], np.cumsum(n_jets)]).astype(np.int64)
    nj = int(jet_off[-1])
    scale = 220.0 if sig else 160.0
    pt = (25.0 + rng.exponential(scale, nj)).astype(np.float32)
    for i in range(n_events):  # sort pt descending inside each event
        s = slice(jet_off[i], jet_off[i + 1])
        pt[s] = np.sort(pt[s])[::-1]
    eta = rng.uniform(-2.4, 2.4, nj).astype(np.float32)
    phi = rng.uniform(-math.pi, math.pi, nj).astype(np.float32)
    mass = (pt * rng.uniform(0.05, 0.2, nj)).astype(np.float32)
    is_dark = (rng.random(nj) < 0.6).astype(np.int8) if sig else np.zeros(nj, np.int8)
    ntrk = np.clip(1 + rng.poisson(np.sqrt(pt) * 1.2), 0, 90).astype(np.int32)
    ntrk[rng.random(nj) < 0.02] = 0
    trk_off = np.concatenate([[0], np.cumsum(ntrk)]).astype(np.int64)
    nt = int(trk_off[-1])
    owner = np.repeat(np.arange(nj), ntrk)
    frac = rng.exponential(1.0, nt)
    tpt = (frac * np.repeat(pt / np.maximum(ntrk, 1), ntrk) * 0.6 + 0.5).astype(np.float32)
    for j in range(nj):  # pt descending inside each jet
        s = slice(trk_off[j], trk_off[j + 1])
        tpt[s] = np.sort(tpt[s])[::-1]
    teta = (eta[owner] + rng.normal(0, 0.08, nt)).astype(np.float32)
    tphi = phi[owner] + rng.normal(0, 0.08, nt)
    tphi = ((tphi + math.pi) % (2 * math.pi) - math.pi).astype(np.float32)
    d0err = (0.01 + 0.03 / np.sqrt(tpt)).astype(np.float32)
    dzerr = (1.5 * d0err).astype(np.float32)
    dark_trk = is_dark[owner] == 1
    p_disp = np.where(dark_trk, rng.uniform(0.2, 0.9, nj)[owner], 0.05)
    displaced = rng.random(nt) < p_disp
    radius = rng.exponential(np.where(dark_trk, 0.4 * max(ctau_mm, 1.0), 1.0))
    d0 = rng.normal(0, d0err) + displaced * radius * rng.uniform(-1, 1, nt)
    dz = rng.normal(0, dzerr) + displaced * radius * rng.uniform(-1, 1, nt)
    charge = rng.choice(np.array([-1, 1], np.int8), nt)
    from_dark = (displaced & dark_trk).astype(np.int8)
    mlip = np.full(nj, -5.0, np.float32)
    alpha = np.full(nj, -1.0, np.float32)
    sig3 = np.hypot(d0 / d0err, dz / dzerr)
    for j in np.nonzero(ntrk)[0]:
        s = slice(trk_off[j], trk_off[j + 1])
        mlip[j] = np.median(np.log10(np.abs(d0[s]) + 1e-12))
        alpha[j] = tpt[s][sig3[s] < 4].sum() / tpt[s].sum()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "quiver-emj/1"
        f.attrs["sample"] = "qcd" if not sig else f"emj_ctau{ctau_mm:g}"
        f.attrs["process"] = process
        f.attrs["ctau_mm"] = float(ctau_mm)
        f.attrs["seed"] = int(seed)
        f.attrs["n_events"] = int(n_events)
        f.attrs["settings"] = json.dumps({"synthetic": True})
        f.attrs["form"] = ""
        ev = dict(run=np.full(n_events, 1 if not sig else 2, np.uint32),
                  luminosityBlock=np.ones(n_events, np.uint32),
                  event=np.arange(1, n_events + 1, dtype=np.uint64),
                  MET_pt=rng.exponential(30, n_events).astype(np.float32),
                  MET_phi=rng.uniform(-math.pi, math.pi, n_events).astype(np.float32),
                  weight=np.ones(n_events, np.float32))
        jets = dict(offsets=jet_off, pt=pt, eta=eta, phi=phi, mass=mass, nTrack=ntrk,
                    medianLogIp2d=mlip, alpha3d=alpha, isDark=is_dark)
        trks = dict(offsets=trk_off, pt=tpt, eta=teta, phi=tphi,
                    d0=d0.astype(np.float32), d0Err=d0err, dz=dz.astype(np.float32),
                    dzErr=dzerr, charge=charge, fromDark=from_dark)
        for group, cols in (("events", ev), ("jets", jets), ("tracks", trks)):
            for name, arr in cols.items():
                f.create_dataset(f"{group}/{name}", data=arr, compression="gzip",
                                 chunks=(min(len(arr), 65536),) if len(arr) else None)
    return path


# ----------------------------------------------------------------------------- reading

def resolve_inputs(specs):
    files = []
    for spec in specs:
        p = pathlib.Path(spec)
        if p.is_dir():
            files += sorted(x for x in p.iterdir() if x.suffix in (".h5", ".hdf5"))
        elif p.suffix in (".h5", ".hdf5"):
            files.append(p)
        else:  # a list of files (READY)
            for line in p.read_text().splitlines():
                tok = line.strip().split()
                for t in tok:
                    if t.endswith((".h5", ".hdf5")):
                        q = pathlib.Path(t)
                        files.append(q if q.is_absolute() else p.parent / q)
    out = []
    for f in files:
        if f not in out:
            out.append(f)
    if not out:
        raise SystemExit(f"no HDF5 files found in {specs}")
    return out


def wrap_phi(x):
    return ((x + np.pi) % (2 * np.pi)) - np.pi


def ragged_index(starts, counts):
    """Rows, positions and source indices of the concatenated ranges [start, start+count)."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(counts)), counts)
    pos = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    src = np.repeat(np.asarray(starts, np.int64), counts) + pos
    return rows, pos, src


def jet_feature_matrix(J, idx):
    return np.stack([np.log(np.maximum(J["pt"][idx], 1e-3)), J["eta"][idx], J["mass"][idx],
                     J["nTrack"][idx].astype(np.float32), J["medianLogIp2d"][idx],
                     J["alpha3d"][idx]], axis=1).astype(np.float32)


def track_tensor(J, T, toff, idx):
    """[len(idx), 64, 8] raw track features (contract order) and the [len(idx), 64] mask."""
    starts = toff[idx]
    counts = np.minimum(toff[idx + 1] - starts, N_TRK)
    rows, pos, src = ragged_index(starts, counts)
    X = np.zeros((len(idx), N_TRK, 8), np.float32)
    M = np.zeros((len(idx), N_TRK), np.float32)
    d0, dz, err = T["d0"][src], T["dz"][src], T["d0Err"][src]
    X[rows, pos, 0] = np.log(np.maximum(T["pt"][src], 1e-3))
    X[rows, pos, 1] = T["eta"][src] - J["eta"][idx][rows]
    X[rows, pos, 2] = wrap_phi(T["phi"][src] - J["phi"][idx][rows])
    X[rows, pos, 3] = T["charge"][src]
    X[rows, pos, 4] = d0
    X[rows, pos, 5] = np.divide(d0, err, out=np.zeros_like(d0), where=err > 0)
    X[rows, pos, 6] = dz
    X[rows, pos, 7] = np.sqrt(d0.astype(np.float64) ** 2 + dz.astype(np.float64) ** 2)
    M[rows, pos] = 1.0
    return X, M


def load_file(path, fi, seed, fractions):
    """Reads one sample; returns its candidate jets and events with labels and splits."""
    with h5py.File(path, "r") as f:
        process = f.attrs["process"]
        process = process.decode() if isinstance(process, bytes) else str(process)
        sample = f.attrs.get("sample", pathlib.Path(path).stem)
        sample = sample.decode() if isinstance(sample, bytes) else str(sample)
        J = {k: f["jets/" + k][()] for k in ("offsets", "pt", "eta", "phi", "mass", "nTrack",
                                             "medianLogIp2d", "alpha3d", "isDark")}
        T = {k: f["tracks/" + k][()] for k in ("offsets", "pt", "eta", "phi", "d0", "d0Err",
                                               "dz", "charge")}
    signal = process == "signal"
    joff = J["offsets"].astype(np.int64)
    n_ev = len(joff) - 1
    nj_ev = np.diff(joff)
    ev_of_jet = np.repeat(np.arange(n_ev), nj_ev)
    sel = (J["pt"] > SEL_PT) & (np.abs(J["eta"]) < SEL_ETA)
    nsel = np.bincount(ev_of_jet[sel], minlength=n_ev)
    ht = np.bincount(ev_of_jet[sel], weights=J["pt"][sel], minlength=n_ev)
    passing = (nsel >= SEL_NJ) & (ht > SEL_HT)
    sel_idx = np.nonzero(sel)[0]  # in pt order inside each event
    sel_ev = ev_of_jet[sel_idx]
    first = np.concatenate([[0], np.cumsum(nsel)[:-1]])
    rank = np.arange(len(sel_idx)) - first[sel_ev]

    # Split by event, seeded per sample.
    rng = np.random.default_rng([seed, zlib.crc32(sample.encode()), fi])
    u = rng.random(n_ev)
    split = np.where(u < fractions[0], 0, np.where(u < fractions[0] + fractions[1], 1, 2))

    # Jets: analysis jets (rank < 4 in passing events) and, as a fallback, all selected jets.
    jet_ok = (J["isDark"][sel_idx] == 1) if signal else np.ones(len(sel_idx), bool)
    analysis = passing[sel_ev] & (rank < 4)
    jets = dict(idx=sel_idx[jet_ok], analysis=analysis[jet_ok], ev=sel_ev[jet_ok],
                label=np.full(int(jet_ok.sum()), 1 if signal else 0, np.int8))
    jets["split"] = split[jets["ev"]]

    # Events: first 8 selected jets of events with >= 1 selected jet.
    evs = np.nonzero(nsel >= 1)[0]
    keep = rank < N_EVJ
    Ej = np.zeros((n_ev, N_EVJ, 6), np.float32)
    Em = np.zeros((n_ev, N_EVJ), np.float32)
    Ej[sel_ev[keep], rank[keep]] = jet_feature_matrix(J, sel_idx[keep])
    Em[sel_ev[keep], rank[keep]] = 1.0
    events = dict(jets=Ej[evs], mask=Em[evs], analysis=passing[evs], split=split[evs],
                  label=np.full(len(evs), 1 if signal else 0, np.int8))
    # The 4 leading selected jets of each kept event (for event-level baselines), -1 none.
    lead = np.full((n_ev, 4), -1, np.int64)
    k4 = rank < 4
    lead[sel_ev[k4], rank[k4]] = sel_idx[k4]
    events["lead"] = lead[evs]
    info = dict(file=str(path), sample=sample, process=process, n_events=int(n_ev),
                n_passing=int(passing.sum()), n_jets_used=int(jet_ok.sum()),
                n_analysis_jets_used=int(jets["analysis"].sum()))
    return dict(J=J, T=T, toff=T["offsets"].astype(np.int64), jets=jets, events=events,
                info=info, fi=fi)


# ----------------------------------------------------------------------------- metrics

def roc_auc(y, s):
    """Area under the ROC curve (Mann-Whitney with tied ranks averaged)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, np.float64)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    ranks = np.empty(len(s))
    _, first, counts = np.unique(ss, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


# ----------------------------------------------------------------------------- training

def class_weights(y):
    y = np.asarray(y)
    n = len(y)
    n1 = max(int(y.sum()), 1)
    n0 = max(n - int(y.sum()), 1)
    return np.where(y == 1, n / (2.0 * n1), n / (2.0 * n0)).astype(np.float32)


def trim(xs):
    """(values [B,N,F], mask [B,N]) -> both cut to the longest real list in the batch. Exact
    for these models (padded entries do not change a score) and much cheaper for the GNN,
    whose jets mostly have far fewer than 64 tracks; other inputs are returned unchanged."""
    if len(xs) == 2 and xs[0].dim() == 3 and xs[1].dim() == 2:
        n = max(1, int(xs[1].sum(dim=1).max())) if len(xs[1]) else 1
        if xs[1][:, n:].sum() == 0:  # padding only at the end
            return [xs[0][:, :n], xs[1][:, :n]]
    return xs


def predict(model, tensors, batch=1024):
    """Scores in input order; inputs with a mask are run sorted by length (see trim)."""
    model.eval()
    n = len(tensors[0])
    if n == 0:
        return np.zeros(0, np.float32)
    order = None
    if len(tensors) == 2 and tensors[0].dim() == 3:
        order = torch.sort(tensors[1].sum(dim=1), stable=True)[1]
        tensors = [t[order] for t in tensors]
    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            out.append(model.logit(*trim([t[i:i + batch] for t in tensors])).squeeze(1))
    p = torch.sigmoid(torch.cat(out))
    if order is not None:
        p = torch.empty_like(p).index_copy_(0, order, p)
    return p.numpy()


def fit(model, train, val, epochs, batch, lr, seed, log, name):
    """train/val: (list of tensors, labels). Weighted BCE, Adam, cosine decay; keeps the
    state of the epoch with the lowest validation loss."""
    g = torch.Generator().manual_seed(seed)
    xs, y = train
    w = torch.from_numpy(class_weights(y.numpy()))
    vxs, vy = val
    vw = torch.from_numpy(class_weights(vy.numpy()))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    steps = max(1, epochs * math.ceil(len(y) / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    best, best_state = float("inf"), None
    lengths = xs[1].sum(dim=1) if len(xs) == 2 and xs[0].dim() == 3 else None
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=g)
        if lengths is not None:  # bucket: sort chunks of 32 batches by length (see trim)
            chunk = 32 * batch
            perm = torch.cat([c[torch.sort(lengths[c], stable=True)[1]]
                              for c in perm.split(chunk)])
        starts = list(range(0, len(y), batch))
        order = torch.randperm(len(starts), generator=g).tolist()
        t0, tot = time.time(), 0.0
        for bi in order:
            b = perm[starts[bi]:starts[bi] + batch]
            logit = model.logit(*trim([x[b] for x in xs])).squeeze(1)
            loss = (loss_fn(logit, y[b]) * w[b]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss) * len(b)
        p = torch.from_numpy(predict(model, vxs)).clamp(1e-7, 1 - 1e-7)
        vloss = float(-(vw * (vy * p.log() + (1 - vy) * (1 - p).log())).mean()) if len(vy) else 0.0
        vauc = roc_auc(vy.numpy(), p.numpy())
        log(f"  {name} epoch {ep + 1}/{epochs}: train loss {tot / len(y):.4f}, val loss "
            f"{vloss:.4f}, val AUC {vauc:.4f} ({time.time() - t0:.1f} s)")
        if vloss < best or best_state is None:
            best = vloss
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return model


def standardisation(transformed, weights_mask=None):
    """mean/std over rows of a [N, F] tensor (rows with mask > 0 only)."""
    if weights_mask is not None:
        transformed = transformed[weights_mask > 0.5]
    if len(transformed) == 0:
        return torch.zeros(transformed.shape[-1]), torch.ones(transformed.shape[-1])
    return transformed.mean(dim=0), transformed.std(dim=0)


# ----------------------------------------------------------------------------- export

def config_text(name, spec, extra_comment):
    lines = [f"# {spec['comment']}.", f"# {extra_comment}",
             "# Made by python/models/train_emj.py (see docs/models.md).",
             f'name: "{name}"', 'platform: "pytorch_libtorch"',
             f"max_batch_size: {spec['max_batch_size']}", "input ["]
    ins = []
    for iname, dims in spec["inputs"]:
        ins.append("  {\n    name: \"%s\"\n    data_type: TYPE_FP32\n    dims: [ %s ]\n  }"
                   % (iname, ", ".join(str(d) for d in dims)))
    lines.append(",\n".join(ins))
    lines += ["]", "output [", "  {", '    name: "score"', "    data_type: TYPE_FP32",
              "    dims: [ 1 ]", "  }", "]", "instance_group [", "  {", "    count: 1",
              "    kind: KIND_CPU", "  }", "]", "dynamic_batching {",
              "  preferred_batch_size: [ %s ]" % ", ".join(str(p) for p in spec["preferred"]),
              "  max_queue_delay_microseconds: 500", "}", ""]
    return "\n".join(lines)


def export(model, name, models_dir, example, extra_comment):
    model.eval()
    scripted = torch.jit.script(model)
    d = pathlib.Path(models_dir) / name
    (d / "1").mkdir(parents=True, exist_ok=True)
    scripted.save(str(d / "1" / "model.pt"))
    (d / "config.pbtxt").write_text(config_text(name, MODEL_SPECS[name], extra_comment))
    loaded = torch.jit.load(str(d / "1" / "model.pt"))
    with torch.no_grad():
        a = model(*example)
        b = loaded(*example)
    diff = float((a - b).abs().max()) if len(a) else 0.0
    if not diff < 1e-5:
        raise SystemExit(f"{name}: TorchScript differs from eager by {diff}")
    return d, diff


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="*", default=[],
                    help="HDF5 files, folders of them, or a READY file listing them")
    ap.add_argument("--synthetic", type=pathlib.Path,
                    help="write a synthetic signal + QCD sample into this folder and train on it")
    ap.add_argument("--quick", action="store_true",
                    help="tiny synthetic data, 1 epoch, few jets: a smoke test (seconds); "
                         "writes into a temporary folder unless --models-dir is given")
    ap.add_argument("--models-dir", type=pathlib.Path)
    ap.add_argument("--report", type=pathlib.Path, help="JSON report (default: <models-dir>/../"
                    "docs/emj_training.json for the shipped models, else <models-dir>/report.json)")
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs-gnn", type=int, default=8)
    ap.add_argument("--epochs-dnn", type=int, default=30)
    ap.add_argument("--epochs-event", type=int, default=30)
    ap.add_argument("--max-train-jets", type=int, default=12000,
                    help="cap on training jets per class for the GNN (CPU time)")
    ap.add_argument("--min-jets-per-class", type=int, default=3000)
    ap.add_argument("--min-events-per-class", type=int, default=1000)
    args = ap.parse_args(argv)

    t_start = time.time()
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed % (2 ** 32))

    def log(msg):
        print(f"[{time.time() - t_start:7.1f} s] {msg}", flush=True)

    tmp = None
    if args.quick:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="emj-quick-"))
        if args.models_dir is None:
            args.models_dir = tmp / "models"
        if not args.data and args.synthetic is None:
            args.synthetic = tmp / "data"
        args.epochs_gnn, args.epochs_dnn, args.epochs_event = 1, 2, 2
        args.max_train_jets = min(args.max_train_jets, 300)
        args.min_jets_per_class = min(args.min_jets_per_class, 50)
        args.min_events_per_class = min(args.min_events_per_class, 20)
    if args.models_dir is None:
        args.models_dir = REPO / "models"
    if args.report is None:
        args.report = (REPO / "docs" / "emj_training.json"
                       if args.models_dir.resolve() == (REPO / "models").resolve()
                       else args.models_dir / "emj_training.json")

    if args.synthetic is not None:
        n = 150 if args.quick else 6000
        args.data = args.data + [
            str(write_synthetic(args.synthetic / "qcd.h5", "qcd", n, args.seed + 1)),
            str(write_synthetic(args.synthetic / "emj_ctau25.h5", "signal", n, args.seed + 2,
                                ctau_mm=25.0))]
    files = resolve_inputs(args.data)
    log(f"reading {len(files)} files")
    samples = [load_file(p, i, args.seed, (0.7, 0.1)) for i, p in enumerate(files)]
    for s in samples:
        log("  " + json.dumps(s["info"]))

    # ---------------- jets
    def count(cls, analysis_only):
        return sum(int(((s["jets"]["label"] == cls) & (s["jets"]["analysis"] | (not analysis_only))).sum())
                   for s in samples)
    jet_mode = "analysis"
    if min(count(0, True), count(1, True)) < args.min_jets_per_class:
        jet_mode = "all-selected"
    log(f"jets: analysis jets {count(0, True)} QCD / {count(1, True)} dark; "
        f"all selected {count(0, False)} / {count(1, False)}: using '{jet_mode}'")

    rng = np.random.default_rng(args.seed)
    parts = {0: [], 1: [], 2: []}  # split -> list of (sample, jet rows)
    for s in samples:
        jets = s["jets"]
        use = jets["analysis"] if jet_mode == "analysis" else np.ones(len(jets["idx"]), bool)
        for sp in (0, 1, 2):
            parts[sp].append(np.nonzero(use & (jets["split"] == sp))[0])

    def gather_jets(sp, cap=None):
        X, M, F, Y, A, S = [], [], [], [], [], []
        rows_by_sample = parts[sp]
        if cap is not None:  # cap per class, spread over samples in proportion
            for cls in (0, 1):
                tot = sum(int((samples[i]["jets"]["label"][r] == cls).sum())
                          for i, r in enumerate(rows_by_sample))
                if tot > cap:
                    frac = cap / tot
                    new = []
                    for i, r in enumerate(rows_by_sample):
                        lab = samples[i]["jets"]["label"][r]
                        rc = r[lab == cls]
                        keep = rng.permutation(len(rc))[:int(round(len(rc) * frac))]
                        new.append(np.concatenate([r[lab != cls], rc[np.sort(keep)]]))
                    rows_by_sample = new
        for s, r in zip(samples, rows_by_sample):
            idx = s["jets"]["idx"][r]
            x, m = track_tensor(s["J"], s["T"], s["toff"], idx)
            X.append(x), M.append(m), F.append(jet_feature_matrix(s["J"], idx))
            Y.append(s["jets"]["label"][r]), A.append(s["jets"]["analysis"][r])
            S.append(np.full(len(r), s["fi"]))
        return (torch.from_numpy(np.concatenate(X)), torch.from_numpy(np.concatenate(M)),
                torch.from_numpy(np.concatenate(F)),
                torch.from_numpy(np.concatenate(Y).astype(np.float32)), np.concatenate(A),
                np.concatenate(S))

    tr = gather_jets(0, args.max_train_jets)
    va = gather_jets(1, args.max_train_jets // 4)
    te = gather_jets(2)
    log(f"jets train {len(tr[3])} ({int(tr[3].sum())} dark), val {len(va[3])}, "
        f"test {len(te[3])} ({int(te[3].sum())} dark)")

    # DNN trains on all training jets (cheap); the GNN on the capped set above.
    tr_all = gather_jets(0)
    results, timings = {}, {}

    torch.manual_seed(args.seed + 10)
    dnn = emj_nets.JetDNN()
    with torch.no_grad():
        dnn.norm.set(*standardisation(emj_nets.transform_jets(tr_all[2])))
    t0 = time.time()
    fit(dnn, ([tr_all[2]], tr_all[3]), ([va[2]], va[3]), args.epochs_dnn, 512, 3e-3,
        args.seed + 11, log, "emj_dnn")
    timings["emj_dnn"] = time.time() - t0
    p_dnn = predict(dnn, [te[2]])

    torch.manual_seed(args.seed + 20)
    gnn = emj_nets.TrackGNN()
    with torch.no_grad():
        gnn.norm.set(*standardisation(emj_nets.transform_tracks(tr[0]).reshape(-1, 8),
                                      tr[1].reshape(-1)))
    t0 = time.time()
    fit(gnn, ([tr[0], tr[1]], tr[3]), ([va[0], va[1]], va[3]), args.epochs_gnn, 128, 3e-3,
        args.seed + 21, log, "emj_gnn")
    timings["emj_gnn"] = time.time() - t0
    p_gnn = predict(gnn, [te[0], te[1]], batch=512)

    yt = te[3].numpy()
    fte = te[2].numpy()
    jet_scores = {
        "emj_gnn": p_gnn,
        "emj_dnn": p_dnn,
        "medianLogIp2d": fte[:, 4],
        "alpha3d (lower = signal)": -fte[:, 5],
        "cut tagger (medianLogIp2d > -1 and alpha3d < 0.25)":
            ((fte[:, 4] > -1.0) & (fte[:, 5] < 0.25)).astype(np.float32),
    }
    results["jets"] = {k: roc_auc(yt, v) for k, v in jet_scores.items()}
    # The subset the analysis scores: leading 4 selected jets of events passing HT > 500.
    sub = te[4]
    results["jets_analysis_subset"] = {k: roc_auc(yt[sub], v[sub]) for k, v in jet_scores.items()}
    results["n_test_jets_analysis_subset"] = [int((yt[sub] == 0).sum()), int((yt[sub] == 1).sum())]
    # Per signal sample: its dark jets against all QCD test jets.
    results["jets_per_signal_sample"] = {}
    for s in samples:
        if s["info"]["process"] != "signal":
            continue
        keep = (yt == 0) | (te[5] == s["fi"])
        if int((yt[keep] == 1).sum()) == 0:
            continue
        results["jets_per_signal_sample"][s["info"]["sample"]] = dict(
            n_dark=int((yt[keep] == 1).sum()),
            **{k: roc_auc(yt[keep], v[keep]) for k, v in jet_scores.items()})

    # ---------------- events
    def ev_count(cls, analysis_only):
        return sum(int(((s["events"]["label"] == cls) & (s["events"]["analysis"] | (not analysis_only))).sum())
                   for s in samples)
    ev_mode = "analysis"
    if min(ev_count(0, True), ev_count(1, True)) < args.min_events_per_class:
        ev_mode = "any-selected-jet"
    log(f"events: passing {ev_count(0, True)} QCD / {ev_count(1, True)} signal; >= 1 selected "
        f"jet {ev_count(0, False)} / {ev_count(1, False)}: using '{ev_mode}'")

    def gather_events(sp):
        E, M, Y, L, A = [], [], [], [], []
        for s in samples:
            ev = s["events"]
            use = (ev["analysis"] if ev_mode == "analysis" else np.ones(len(ev["label"]), bool))
            r = np.nonzero(use & (ev["split"] == sp))[0]
            E.append(ev["jets"][r]), M.append(ev["mask"][r]), Y.append(ev["label"][r])
            L.append((s, ev["lead"][r])), A.append(ev["analysis"][r])
        return (torch.from_numpy(np.concatenate(E)), torch.from_numpy(np.concatenate(M)),
                torch.from_numpy(np.concatenate(Y).astype(np.float32)), L, np.concatenate(A))

    etr, eva, ete = gather_events(0), gather_events(1), gather_events(2)
    log(f"events train {len(etr[2])} ({int(etr[2].sum())} signal), val {len(eva[2])}, "
        f"test {len(ete[2])} ({int(ete[2].sum())} signal)")
    torch.manual_seed(args.seed + 30)
    evm = emj_nets.EventDeepSets()
    with torch.no_grad():
        evm.norm.set(*standardisation(emj_nets.transform_jets(etr[0]).reshape(-1, 6),
                                      etr[1].reshape(-1)))
    t0 = time.time()
    fit(evm, ([etr[0], etr[1]], etr[2]), ([eva[0], eva[1]], eva[2]), args.epochs_event, 256,
        3e-3, args.seed + 31, log, "emj_event")
    timings["emj_event"] = time.time() - t0
    p_ev = predict(evm, [ete[0], ete[1]])
    ye = ete[2].numpy()

    # Event-level baselines: max jet score over the 4 leading selected jets; HT.
    def lead_scores(model_kind):
        out = []
        for s, lead in ete[3]:
            flat = lead.reshape(-1)
            ok = flat >= 0
            sc = np.full(len(flat), 0.0, np.float32)
            if ok.any():
                idx = flat[ok]
                if model_kind == "gnn":
                    x, m = track_tensor(s["J"], s["T"], s["toff"], idx)
                    sc[ok] = predict(gnn, [torch.from_numpy(x), torch.from_numpy(m)], batch=512)
                elif model_kind == "dnn":
                    sc[ok] = predict(dnn, [torch.from_numpy(jet_feature_matrix(s["J"], idx))])
                else:  # cut tagger
                    f = jet_feature_matrix(s["J"], idx)
                    sc[ok] = ((f[:, 4] > -1.0) & (f[:, 5] < 0.25)).astype(np.float32)
            out.append(sc.reshape(-1, 4))
        return np.concatenate(out) if out else np.zeros((0, 4), np.float32)

    ht = (torch.exp(ete[0][:, :, 0]) * ete[1]).sum(dim=1).numpy()
    g4, d4, c4 = lead_scores("gnn"), lead_scores("dnn"), lead_scores("cut")
    ev_scores = {
        "emj_event": p_ev,
        "max emj_gnn of 4 leading jets": g4.max(axis=1),
        "n tagged (emj_gnn > 0.5) of 4 leading": (g4 > 0.5).sum(axis=1),
        "max emj_dnn of 4 leading jets": d4.max(axis=1),
        "n tagged (cut) of 4 leading": c4.sum(axis=1),
        "HT of selected jets (first 8)": ht,
    }
    results["events"] = {k: roc_auc(ye, v) for k, v in ev_scores.items()}
    sub = ete[4]
    results["events_analysis_subset"] = {k: roc_auc(ye[sub], v[sub]) for k, v in ev_scores.items()}
    results["n_test_events_analysis_subset"] = [int((ye[sub] == 0).sum()), int((ye[sub] == 1).sum())]
    for group in ("jets", "jets_analysis_subset", "events", "events_analysis_subset"):
        for k, v in results[group].items():
            log(f"test AUC {group:22s} {k}: {v:.4f}")
    for k, v in results["jets_per_signal_sample"].items():
        log(f"test AUC dark jets of {k} vs QCD: " + ", ".join(
            f"{a} {b:.4f}" if isinstance(b, float) else f"{a} {b}" for a, b in v.items()))
    log(f"analysis subsets of the test split (QCD, signal): jets "
        f"{results['n_test_jets_analysis_subset']}, events {results['n_test_events_analysis_subset']}")

    # ---------------- export
    models_dir = args.models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    data_note = ("trained on " + ", ".join(s["info"]["sample"] for s in samples)
                 + f" (seed {args.seed}); test AUC in docs/models.md")
    exports = {}
    for name, model, example in (
            ("emj_gnn", gnn, (te[0][:64], te[1][:64])),
            ("emj_dnn", dnn, (te[2][:64],)),
            ("emj_event", evm, (ete[0][:64], ete[1][:64]))):
        d, diff = export(model, name, models_dir, example, data_note)
        exports[name] = dict(path=str(d), params=emj_nets.n_params(model),
                             file_bytes=(d / "1" / "model.pt").stat().st_size,
                             script_vs_eager_max_diff=diff,
                             train_seconds=round(timings[name], 1))
        log(f"wrote {d} ({exports[name]['params']} parameters, "
            f"{exports[name]['file_bytes']} bytes)")

    report = dict(
        command="train_emj.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        seed=args.seed, threads=args.threads, jet_selection=jet_mode, event_selection=ev_mode,
        samples=[s["info"] for s in samples],
        n_jets=dict(train_gnn=len(tr[3]), train_gnn_dark=int(tr[3].sum()),
                    train_dnn=len(tr_all[3]), train_dnn_dark=int(tr_all[3].sum()),
                    val=len(va[3]), test=len(yt), test_dark=int(yt.sum())),
        n_events=dict(train=len(etr[2]), train_signal=int(etr[2].sum()), val=len(eva[2]),
                      test=len(ye), test_signal=int(ye.sum())),
        epochs=dict(gnn=args.epochs_gnn, dnn=args.epochs_dnn, event=args.epochs_event),
        auc=results, models=exports, total_seconds=round(time.time() - t_start, 1))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    log(f"report {args.report}; total {report['total_seconds']} s")
    return report


if __name__ == "__main__":
    main()
