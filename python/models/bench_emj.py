#!/usr/bin/env python3
"""Inference time per batch of the emj_* models: quiver local:// vs the TorchScript file called
from Python torch (same process, same thread count), and the largest difference of the scores.

  .venv/bin/python python/models/bench_emj.py [--models models] [--threads 1] [--repeats 20]

Inputs: the selected jets of an HDF5 file (--data), or synthetic jets in the contract layout
(train_emj.write_synthetic); jets repeat to fill the batch. Prints a Markdown table (median and p90 milliseconds per batch).
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import train_emj  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]


def inputs_for(tmp, batch, data=None):
    path = data or train_emj.write_synthetic(pathlib.Path(tmp) / "sig.h5", "signal", 2500, 5, 25.0)
    s = train_emj.load_file(path, 0, 1, (0.7, 0.1))
    idx = s["jets"]["idx"]
    x, m = train_emj.track_tensor(s["J"], s["T"], s["toff"], idx)
    f = train_emj.jet_feature_matrix(s["J"], idx)
    ej, em = s["events"]["jets"], s["events"]["mask"]

    def take(a, n):
        reps = -(-n // len(a))
        return np.ascontiguousarray(np.concatenate([a] * reps)[:n])
    return {
        "emj_gnn": {"tracks": take(x, batch["emj_gnn"]), "mask": take(m, batch["emj_gnn"])},
        "emj_dnn": {"jet": take(f, batch["emj_dnn"])},
        "emj_event": {"jets": take(ej, batch["emj_event"]), "mask": take(em, batch["emj_event"])},
    }


def timeit(fn, repeats):
    fn()  # warm-up (first call optimises the TorchScript graph)
    fn()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return 1e3 * np.median(t), 1e3 * np.percentile(t, 90)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=pathlib.Path, default=REPO / "models")
    ap.add_argument("--data", type=pathlib.Path,
                    help="an HDF5 file of the contract layout (default: synthetic jets)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--serve", type=pathlib.Path, metavar="QUIVER",
                    help="also time `QUIVER serve` over gRPC (the same models, its own process)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch-gnn", type=int, default=256)
    ap.add_argument("--batch-dnn", type=int, default=4096)
    ap.add_argument("--batch-event", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import quiver
    batch = {"emj_gnn": args.batch_gnn, "emj_dnn": args.batch_dnn, "emj_event": args.batch_event}
    with tempfile.TemporaryDirectory() as tmp:
        ins = inputs_for(tmp, batch, args.data)
    client = quiver.Client("local://" + str(args.models.resolve()))
    server = remote = None
    if args.serve:
        server = subprocess.Popen(
            [str(args.serve), "serve", "--model-repository", str(args.models.resolve()),
             "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        line = server.stdout.readline().decode()
        if not line.startswith("QUIVER_READY"):
            raise SystemExit(f"quiver serve did not start: {line!r}")
        port = dict(w.split("=", 1) for w in line.split()[1:])["grpc"]
        remote = quiver.Client(f"grpc://127.0.0.1:{port}", timeout=60)
    print(f"threads {args.threads} (torch.get_num_threads() = {torch.get_num_threads()}); "
          f"inputs: {args.data or 'synthetic'}; longest jet in the GNN batch: "
          f"{int(ins['emj_gnn']['mask'].sum(axis=1).max())} tracks")
    grpc_head = " quiver serve gRPC ms (median / p90) |" if remote else ""
    print("| model | batch | quiver local:// ms (median / p90) |" + grpc_head +
          " Python torch ms (median / p90) | max abs diff |")
    print("|---|---|---|---|---|" + ("---|" if remote else ""))
    for name in ("emj_gnn", "emj_dnn", "emj_event"):
        model = torch.jit.load(str(args.models / name / "1" / "model.pt")).eval()
        tin = [torch.from_numpy(v) for v in ins[name].values()]

        def py():
            with torch.no_grad():
                return model(*tin)
        q = timeit(lambda: client.infer(name, ins[name]), args.repeats)
        p = timeit(py, args.repeats)
        diff = float(np.abs(client.infer(name, ins[name])["score"] - py().numpy()).max())
        grpc_col = ""
        if remote:
            r = timeit(lambda: remote.infer(name, ins[name]), args.repeats)
            grpc_col = f" {r[0]:.2f} / {r[1]:.2f} |"
            diff = max(diff, float(np.abs(remote.infer(name, ins[name])["score"]
                                          - py().numpy()).max()))
        print(f"| {name} | {batch[name]} | {q[0]:.2f} / {q[1]:.2f} |{grpc_col} "
              f"{p[0]:.2f} / {p[1]:.2f} | {diff:.1e} |")
    client.close()
    if remote:
        remote.close()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
