"""Quiver's coffea.ml_tools wrapper vs coffea's own triton_wrapper, side by side (issue 10).

Same `quiver serve`, same data, same model, same awkward-level work (the flat-jet input
mixins of quiver_testbed.emj_inputs): only the wrapper base class differs. Rows are the 4
leading selected jets of the events passing the HT cut (the analysis' inference step),
flattened (triton_wrapper accepts only the model's own rank), optionally replicated.

    .venv/bin/python python/bench/coffea_wrapper_bench.py [--input F.root ...]
        [--models REPO] [--url grpc://host:port --http-url http://host:port]
        [--model emj_dnn --model emj_gnn] [--replicate 8] [--repeat 5] [--json out.json]

Without --url it starts `quiver serve` (QUIVER_BINARY or build/quiver) on 127.0.0.1 port 0
over --models (default: /work/testbed-data/models when MODELS_READY is there, else the
TorchScript stand-ins of quiver_testbed.synthetic) and stops it at the end. Without --input
it writes synthetic events (quiver_testbed.synthetic). Repeats are interleaved across the
wrappers (a busy machine slows all of them alike); the median is reported. The outputs of
all wrappers are checked against each other.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import signal
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
if not any((ROOT / "build" / "python" / "quiver").glob("_quiver*.so")) \
        and os.environ.get("QUIVER_BINARY"):
    os.environ.setdefault("QUIVER_BUILD_DIR", str(pathlib.Path(os.environ["QUIVER_BINARY"]).parent))

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
from coffea.ml_tools.triton_wrapper import triton_wrapper  # noqa: E402
from coffea.nanoevents import NanoEventsFactory  # noqa: E402

from quiver_testbed import coffea_processor as cp  # noqa: E402
from quiver_testbed import emj_inputs, synthetic  # noqa: E402
from quiver_testbed.serve import quiver_serve  # noqa: E402
from quiver_testbed.ml_wrapper import model_max_batch_size, quiver_wrapper  # noqa: E402

TESTBED = pathlib.Path("/work/testbed-data")
MIXINS = {"emj_dnn": emj_inputs.flat_dnn_inputs, "emj_gnn": emj_inputs.flat_gnn_inputs}


def flat_lead_jets(paths, replicate: int, with_tracks: bool):
    """The 4 leading selected jets of the events passing HT > 500, flattened, x replicate,
    as plain record arrays (no NanoEvents behaviours or lazy columns: both wrappers get the
    same materialised columns). Returns (jets, events)."""
    parts, n_events = [], 0
    for path in paths:
        ev = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=cp.EmjSchema,
                                         mode="eager").events()
        jets = ak.with_field(ev.Jet, ev.Jet.constituents.pf, "tracks")
        jets = jets[(jets.pt > 50) & (abs(jets.eta) < 2.0)]
        jets = jets[(ak.num(jets) >= 4) & (ak.sum(jets.pt, axis=1) > 500)][:, :4]
        n_events += len(jets)
        jets = ak.flatten(jets)
        fields = {f: ak.without_parameters(jets[f]) for f in
                  ("pt", "eta", "phi", "mass", "nTrack", "medianLogIp2d", "alpha3d")}
        if with_tracks:
            trk = jets.tracks
            fields["tracks"] = ak.zip({f: ak.without_parameters(ak.fill_none(trk[f], 0))
                                       for f in ("pt", "eta", "phi", "charge", "d0",
                                                 "d0Err", "dz")})
        parts.append(ak.zip(fields, depth_limit=1))
    return ak.concatenate(parts * replicate), n_events * replicate


TRITON = "coffea triton_wrapper, gRPC"


def bench_model(model, flat, n_events, args, grpc_hostport, http_hostport) -> dict:
    """Times every wrapper on `flat` (interleaved repeats) and prints the table."""
    mixin = MIXINS[model]
    Triton = type("Triton_" + model, (mixin, triton_wrapper), {})
    Quiver = type("Quiver_" + model, (mixin, quiver_wrapper), {})
    # quiver_wrapper given the same awkward-stacked tensors as triton_wrapper
    QuiverStacked = type("QuiverStacked_" + model, (mixin, quiver_wrapper),
                         {"accepts_columns": False})
    rows = len(flat)
    triton = Triton(f"triton+grpc://{grpc_hostport}/{model}/{args.version}",
                    client_args={"ssl": False}, batch_size=args.triton_batch_size)
    try:
        triton.batch_size
    except (KeyError, IndexError):
        # coffea reads dynamic_batching.preferred_batch_size[0] whenever dynamic_batching is
        # there; a config without preferred sizes (gRPC's JSON omits empty lists) breaks it.
        fallback = model_max_batch_size(f"grpc://{grpc_hostport}", model)
        print(f"{model}: coffea's triton_wrapper cannot read a batch size from this config "
              f"(dynamic_batching without preferred_batch_size): using max_batch_size "
              f"{fallback}")
        triton._batch_size = fallback
    grpc = f"grpc://{grpc_hostport}"
    kw = dict(max_in_flight=args.max_in_flight)
    wrappers = {TRITON: triton, "quiver_wrapper, gRPC": Quiver(model, grpc, **kw)}
    if http_hostport:
        wrappers["quiver_wrapper, HTTP"] = Quiver(model, f"http://{http_hostport}", **kw)
    if args.variants:
        wrappers["quiver_wrapper, gRPC, awkward-stacked inputs"] = QuiverStacked(model, grpc,
                                                                                 **kw)
        wrappers[f"quiver_wrapper, gRPC, awkward-stacked, {triton.batch_size} rows/request"] = \
            QuiverStacked(model, grpc, max_batch_size=triton.batch_size, **kw)

    def prepared(w):  # what numpy_call gets: prepare_awkward, then awkward -> numpy
        a, k = w.prepare_awkward(flat)
        (np_args, np_kwargs), _ = w._ak_to_np_(*a, **k)
        return np_args, np_kwargs

    outputs, inputs = {}, {}
    for name, w in wrappers.items():  # warm-up: connections, metadata, config
        outputs[name] = ak.to_numpy(w(flat))
        inputs[name] = prepared(w)
    ref = outputs[TRITON]
    max_diff = max(float(np.max(np.abs(o - ref))) for o in outputs.values())
    times = {name: {"call": [], "prepare": [], "numpy_call": []} for name in wrappers}
    for _ in range(args.repeat):
        for name, w in wrappers.items():
            t = times[name]
            t0 = time.perf_counter()
            w(flat)
            t1 = time.perf_counter()
            prepared(w)
            t2 = time.perf_counter()
            np_args, np_kwargs = inputs[name]
            w.numpy_call(*np_args, **np_kwargs)
            t3 = time.perf_counter()
            t["call"].append(t1 - t0)
            t["prepare"].append(t2 - t1)
            t["numpy_call"].append(t3 - t2)
    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    base = med[TRITON]
    print(f"\n{model}: {rows} jets per call; triton_wrapper {triton.batch_size} rows/request "
          f"(sequential), quiver_wrapper {wrappers['quiver_wrapper, gRPC'].batch_size} "
          f"(concurrent, max_in_flight {args.max_in_flight}); outputs agree within "
          f"{max_diff:.2g}")
    print("| wrapper | s/call | events/s | jets/s | x triton_wrapper | prepare s | "
          "numpy_call s | numpy_call x triton_wrapper |")
    print("|---|---|---|---|---|---|---|---|")
    table = {}
    for name, m in med.items():
        table[name] = {"median_s": m["call"], "events_per_s": n_events / m["call"],
                       "jets_per_s": rows / m["call"], "speedup": base["call"] / m["call"],
                       "prepare_median_s": m["prepare"], "numpy_call_median_s": m["numpy_call"],
                       "numpy_call_speedup": base["numpy_call"] / m["numpy_call"],
                       "times_s": times[name]}
        print(f"| {name} | {m['call']:.4f} | {n_events / m['call']:,.0f} | "
              f"{rows / m['call']:,.0f} | {base['call'] / m['call']:.2f} | "
              f"{m['prepare']:.4f} | {m['numpy_call']:.4f} | "
              f"{base['numpy_call'] / m['numpy_call']:.2f} |")
    return {"triton_batch_size": triton.batch_size,
            "quiver_batch_size": wrappers["quiver_wrapper, gRPC"].batch_size,
            "max_abs_diff": max_diff, "wrappers": table}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", nargs="+", default=None, help="ROOT files (contract layout)")
    p.add_argument("--synthetic-events", type=int, default=4000)
    p.add_argument("--models", default=None, help="model repository for the server")
    p.add_argument("--url", default=None, help="grpc://host:port of a running server")
    p.add_argument("--http-url", default=None, help="http://host:port of the same server")
    p.add_argument("--model", action="append", default=None, choices=sorted(MIXINS))
    p.add_argument("--version", default="1", help="model version for triton_wrapper's URL")
    p.add_argument("--replicate", type=int, default=8, help="rows = lead jets x this")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--max-in-flight", type=int, default=16)
    p.add_argument("--triton-batch-size", type=int, default=-1,
                   help="triton_wrapper's batch_size (-1: from the model config, as coffea "
                        "reads it)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--no-variants", dest="variants", action="store_false",
                   help="only triton_wrapper and quiver_wrapper (gRPC, HTTP), not the "
                        "quiver_wrapper rows with triton_wrapper's inputs/request size")
    args = p.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    # SIGTERM unwinds (stops the server this started) instead of killing the interpreter
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    models_wanted = list(dict.fromkeys(args.model or ["emj_dnn"]))

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="coffea-wrapper-bench-"))
    if args.models:
        models = pathlib.Path(args.models)
    elif (TESTBED / "models" / "MODELS_READY").exists() or (TESTBED / "MODELS_READY").exists():
        models = TESTBED / "models"
    else:
        models = synthetic.write_models(tmp / "models")
    inputs = args.input or [synthetic.write_root(tmp / "bench.root", args.synthetic_events,
                                                 seed=5)]

    with contextlib.ExitStack() as stack:
        if args.url:
            grpc_hostport = args.url.split("://", 1)[1]
            http_hostport = args.http_url.split("://", 1)[1] if args.http_url else None
        else:
            server = stack.enter_context(quiver_serve(models, log=tmp / "quiver-serve.log"))
            grpc_hostport = f"127.0.0.1:{server.grpc_port}"
            http_hostport = f"127.0.0.1:{server.http_port}"
        flat, n_events = flat_lead_jets(inputs, args.replicate, "emj_gnn" in models_wanted)
        rows = len(flat)
        results = {"rows": rows, "events": n_events, "inputs": [str(i) for i in inputs],
                   "models_repository": str(models), "server": grpc_hostport,
                   "repeat": args.repeat, "models": {}}
        print(f"{n_events} events, {rows} jets (x{args.replicate}), server {grpc_hostport}, "
              f"models {models}")
        for model in models_wanted:
            results["models"][model] = bench_model(model, flat, n_events, args,
                                                   grpc_hostport, http_hostport)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
