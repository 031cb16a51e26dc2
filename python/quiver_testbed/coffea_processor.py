"""The emerging-jets analysis of docs/testbed-contract.md as a coffea processor.

Reads the NanoAOD-like ROOT files with NanoEvents (`EmjSchema`, a PFNanoAODSchema variant,
see below), selects, runs the three models through the Quiver wrapper
(`quiver_testbed.ml_wrapper.quiver_wrapper`) and fills `hist` histograms. The same processor
runs eagerly (coffea.processor.Runner + IterativeExecutor) and on Dask
(coffea.dataset_tools.apply_to_fileset + dask.compute, any distributed scheduler).

    python -m quiver_testbed.coffea_processor --input qcd.root emj_ctau25.root \\
        --url grpc://127.0.0.1:8001 [--url http://host-b:8000] [--fallback local:///models] \\
        [--serve MODELS (starts a quiver serve for the run)] \\
        --mode eager|dask [--scheduler tcp://host:8786] [--tagger gnn|dnn|cut] [--no-ml] \\
        --output out.json

The JSON has the structure of the C++ analysis' output:
{"samples": {name: {"cutflow": [all, >=4 jets, HT, >=2 tagged], "histograms": {name:
{"edges": [...], "counts": [...]}}, "selected": [[run, lumi, event], ...]}}, "timing": {...}}.
A sample is named after its file (stem without `_<N>ev_seed<S>`) unless given as NAME=PATH.

Schema: coffea's `PFNanoAODSchema` gives `Jet.constituents.pf` from the PFNano
cross-references (`Jet_nConstituents`, `JetPFCands_jetIdx/pFCandsIdx`), which is how the
jets find their tracks here. Two changes (`EmjSchema`): `PFCands` are plain NanoCollections
(coffea's PFCand mixin is a Lorentz vector and refuses collections without a mass; the
contract's tracks have none), and the warnings for the many standard NanoAOD
cross-references that this layout does not have are off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import re
import sys
import time

import awkward as ak
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema

from . import emj_inputs
from .ml_wrapper import quiver_wrapper

CUTFLOW = ["all", "n_jets", "ht", "n_tagged"]
HISTOGRAMS = {  # name: (bins, lo, hi, label)
    "ht": (40, 0.0, 4000.0, "HT [GeV]"),
    "jet_pt": (40, 0.0, 2000.0, "jet pT [GeV]"),
    "gnn_score": (20, 0.0, 1.0, "GNN score"),
    "dnn_score": (20, 0.0, 1.0, "DNN score"),
    "event_score": (20, 0.0, 1.0, "event score"),
    "n_tagged": (5, 0.0, 5.0, "tagged jets"),
}
TAGGERS = ("gnn", "dnn", "cut")


class EmjSchema(PFNanoAODSchema):
    """PFNanoAODSchema with mass-less PF candidates and quiet about absent cross-refs."""

    warn_missing_crossrefs = False
    mixins = {**PFNanoAODSchema.mixins, "PFCands": "NanoCollection"}


class QuiverGnn(emj_inputs.gnn_inputs, quiver_wrapper):
    """emj_gnn through Quiver: wrapper(jets) -> [events, 4] scores."""


class QuiverDnn(emj_inputs.dnn_inputs, quiver_wrapper):
    """emj_dnn through Quiver: wrapper(jets) -> [events, 4] scores."""


class QuiverEvent(emj_inputs.event_inputs, quiver_wrapper):
    """emj_event through Quiver: wrapper(jets) -> [events] scores."""


def _is_dask(array) -> bool:
    return type(array).__module__.startswith("dask_awkward")


class EmjProcessor(processor.ProcessorABC):
    """The contract's selection, inference and histograms for one chunk of events.

    urls / fallback / client options: where the models run (see quiver_wrapper).
    tagger: 'gnn' | 'dnn' | 'cut'; ml=False skips inference (the tagger is then 'cut').
    """

    def __init__(self, urls=None, *, fallback=None, tagger="gnn", ml=True,
                 gnn_threshold=0.5, dnn_threshold=0.5, timeout=120.0, max_in_flight=16,
                 client_options=None):
        if tagger not in TAGGERS:
            raise ValueError(f"tagger must be one of {TAGGERS}, not {tagger!r}")
        self.ml = bool(ml)
        self.tagger = tagger if self.ml else "cut"
        if self.ml and not urls and not fallback:
            raise ValueError("inference needs a URL or a fallback (or ml=False)")
        self.gnn_threshold = gnn_threshold
        self.dnn_threshold = dnn_threshold
        kw = dict(fallback=fallback, timeout=timeout, max_in_flight=max_in_flight,
                  client_options=client_options)
        urls = urls or []
        self.gnn = QuiverGnn("emj_gnn", urls, **kw) if self.ml else None
        self.dnn = QuiverDnn("emj_dnn", urls, **kw) if self.ml else None
        self.event = QuiverEvent("emj_event", urls, **kw) if self.ml else None

    def _hist(self, name, dask):
        import hist
        import hist.dask

        bins, lo, hi, label = HISTOGRAMS[name]
        cls = hist.dask.Hist if dask else hist.Hist
        return cls(hist.axis.Regular(bins, lo, hi, name=name, label=label),
                   storage=hist.storage.Double())

    def process(self, events):
        dask = _is_dask(events)
        dataset = events.metadata.get("dataset", "sample") if hasattr(events, "metadata") \
            else "sample"
        h = {name: self._hist(name, dask) for name in HISTOGRAMS}

        jets = events.Jet
        jets = ak.with_field(jets, jets.constituents.pf, "tracks")
        jets = jets[(jets.pt > 50.0) & (abs(jets.eta) < 2.0)]
        n_jets = ak.num(jets, axis=1)
        ht = ak.sum(jets.pt, axis=1)

        cut_jets = n_jets >= 4
        h["ht"].fill(ht[cut_jets])
        cut_ht = cut_jets & (ht > 500.0)
        ev = events[cut_ht]
        sel = jets[cut_ht]
        lead = sel[:, :emj_inputs.N_JETS]  # >= 4 selected jets: exactly 4 each

        if self.ml:
            gnn = self.gnn(lead)    # [events, 4]
            dnn = self.dnn(lead)    # [events, 4]
            evs = self.event(sel)   # [events]
            h["gnn_score"].fill(ak.flatten(gnn))
            h["dnn_score"].fill(ak.flatten(dnn))
            h["event_score"].fill(evs)
        if self.tagger == "gnn":
            tagged = gnn > self.gnn_threshold
        elif self.tagger == "dnn":
            tagged = dnn > self.dnn_threshold
        else:
            tagged = (lead.medianLogIp2d > -1.0) & (lead.alpha3d < 0.25)
        n_tagged = ak.sum(tagged, axis=1)
        h["jet_pt"].fill(ak.flatten(lead.pt))
        h["n_tagged"].fill(n_tagged)
        cut_tag = n_tagged >= 2
        passed = ev[cut_tag]

        cutflow = {
            "all": ak.num(events, axis=0),
            "n_jets": ak.sum(cut_jets),
            "ht": ak.sum(cut_ht),
            "n_tagged": ak.sum(cut_tag),
        }
        ids = ak.zip({"run": passed.run, "luminosityBlock": passed.luminosityBlock,
                      "event": passed.event})
        if not dask:  # Runner adds chunk outputs: lists concatenate, ints add
            cutflow = {k: int(v) for k, v in cutflow.items()}
            ids = [[int(r), int(lb), int(e)] for r, lb, e in
                   zip(ids.run.to_numpy(), ids.luminosityBlock.to_numpy(),
                       ids.event.to_numpy())]
        return {dataset: {"cutflow": cutflow, "histograms": h, "selected": ids}}

    def postprocess(self, accumulator):
        return accumulator


# ---------------------------------------------------------------------------------------
# Running it


def sample_name(path) -> str:
    """The sample of a file: its stem without the generator's `_<N>ev_seed<S>` suffix
    (emj_ctau25_2000ev_seed1.root -> emj_ctau25)."""
    stem = pathlib.Path(path).stem
    m = re.match(r"^(.+?)_\d+ev_seed\d+$", stem)
    return m.group(1) if m else stem


def fileset_of(inputs) -> dict:
    """{sample: [path, ...]} from 'PATH' or 'NAME=PATH' strings (see sample_name)."""
    fileset = {}
    for item in inputs:
        name, sep, path = str(item).partition("=")
        if not sep:
            path, name = name, sample_name(name)
        fileset.setdefault(name, []).append(str(pathlib.Path(path).resolve()))
    return fileset


def run_eager(proc: EmjProcessor, fileset: dict, chunksize: int = 100_000) -> dict:
    """processor.Runner + IterativeExecutor; returns {sample: raw output}."""
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=EmjSchema,
                              chunksize=chunksize, savemetrics=False)
    return runner(fileset, processor_instance=proc, treename="Events")


def run_dask(proc: EmjProcessor, fileset: dict, scheduler=None, step_size=None) -> dict:
    """apply_to_fileset + dask.compute (on `scheduler`: an address, a distributed.Client,
    or None for the current default scheduler); returns {sample: raw output}.
    step_size: events per partition (coffea's preprocess); None: one partition per file."""
    import dask
    from coffea.dataset_tools import apply_to_fileset

    dataset = {name: {"files": {p: "Events" for p in paths}} for name, paths in fileset.items()}
    if step_size:
        import warnings

        from coffea.dataset_tools import preprocess

        with warnings.catch_warnings():  # the dict form is deprecated (pydantic specs now)
            warnings.simplefilter("ignore")
            dataset, _ = preprocess(dataset, step_size=step_size, files_per_batch=1,
                                    skip_bad_files=False)
    graphs = apply_to_fileset(proc, dataset, schemaclass=EmjSchema)
    if isinstance(scheduler, str):
        import distributed

        with distributed.Client(scheduler) as client:
            (out,) = dask.compute(graphs, scheduler=client)
    elif scheduler is not None:
        (out,) = dask.compute(graphs, scheduler=scheduler)
    else:
        (out,) = dask.compute(graphs)
    # apply_to_fileset keys by dataset, the processor too: {name: {name: {...}}}
    return {name: result[name] for name, result in out.items()}


def to_json_result(raw: dict) -> dict:
    """The contract's per-sample structure from the processor's (computed) output."""
    samples = {}
    for name, out in raw.items():
        hists = {}
        for hname, hh in out["histograms"].items():
            axis = hh.axes[0]
            counts = hh.values(flow=False)
            hists[hname] = {"edges": [float(e) for e in axis.edges],
                            "counts": [int(c) if float(c).is_integer() else float(c)
                                       for c in counts]}
        sel = out["selected"]
        if isinstance(sel, ak.Array):
            sel = [[int(r), int(lb), int(e)] for r, lb, e in
                   zip(sel.run.to_numpy(), sel.luminosityBlock.to_numpy(),
                       sel.event.to_numpy())]
        samples[name] = {"cutflow": [int(out["cutflow"][k]) for k in CUTFLOW],
                         "histograms": hists,
                         "selected": sorted(sel)}
    return samples


def run(inputs, urls=None, *, mode="eager", scheduler=None, fallback=None, tagger="gnn",
        ml=True, gnn_threshold=0.5, dnn_threshold=0.5, chunksize=100_000, timeout=120.0,
        max_in_flight=16, step_size=None) -> dict:
    """Runs the analysis and returns the contract's JSON structure (with timing)."""
    proc = EmjProcessor(urls, fallback=fallback, tagger=tagger, ml=ml,
                        gnn_threshold=gnn_threshold, dnn_threshold=dnn_threshold,
                        timeout=timeout, max_in_flight=max_in_flight)
    fileset = fileset_of(inputs)
    t0 = time.perf_counter()
    if mode == "eager":
        raw = run_eager(proc, fileset, chunksize)
    elif mode == "dask":
        raw = run_dask(proc, fileset, scheduler, step_size)
    else:
        raise ValueError(f"mode must be eager or dask, not {mode!r}")
    wall = time.perf_counter() - t0
    samples = to_json_result(raw)
    n_events = sum(s["cutflow"][0] for s in samples.values())
    return {"samples": samples,
            "timing": {"mode": mode, "wall_s": wall, "events": n_events,
                       "events_per_s": n_events / wall if wall > 0 else None,
                       "tagger": proc.tagger, "ml": proc.ml,
                       "urls": list(urls or []), "fallback": fallback}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m quiver_testbed.coffea_processor",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--input", nargs="+", required=True, action="extend",
                   help="ROOT files (PATH or NAME=PATH); repeatable")
    p.add_argument("--url", action="append", default=[],
                   help="inference server URL (grpc://, http://, local://); repeat for "
                        "failover, in order")
    p.add_argument("--fallback", default=None, help="URL when all servers are down, "
                   "e.g. local:///path/to/models")
    p.add_argument("--serve", metavar="MODELS", default=None,
                   help="start a quiver serve ($QUIVER_BINARY or build/quiver) over this "
                        "model repository on 127.0.0.1 for the run and use its gRPC URL "
                        "(before any --url)")
    p.add_argument("--mode", choices=("eager", "dask"), default="eager")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address (dask mode); default: a local cluster "
                        "of --workers processes")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tagger", choices=TAGGERS, default="gnn")
    p.add_argument("--no-ml", action="store_true", help="no inference (tagger: cut)")
    p.add_argument("--gnn-threshold", type=float, default=0.5)
    p.add_argument("--dnn-threshold", type=float, default=0.5)
    p.add_argument("--chunksize", type=int, default=100_000, help="events per chunk (eager)")
    p.add_argument("--step-size", type=int, default=None,
                   help="events per partition (dask; default: one per file)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--output", required=True, help="JSON output file")
    args = p.parse_args(argv)
    if not args.no_ml and not args.url and not args.fallback and not args.serve:
        p.error("give --url, --serve or --fallback, or --no-ml")
    with contextlib.ExitStack() as stack:
        if args.serve:
            from .serve import quiver_serve

            server = stack.enter_context(quiver_serve(args.serve))
            args.url = [server.grpc_url] + args.url
        result = _run_cli(args)
    pathlib.Path(args.output).write_text(json.dumps(result, indent=1))
    for name, s in result["samples"].items():
        print(f"{name}: cutflow {s['cutflow']}, {len(s['selected'])} selected")
    t = result["timing"]
    print(f"{t['events']} events in {t['wall_s']:.2f} s ({t['mode']})", file=sys.stderr)
    return 0


def _run_cli(args) -> dict:
    kw = dict(urls=args.url, fallback=args.fallback, tagger=args.tagger, ml=not args.no_ml,
              gnn_threshold=args.gnn_threshold, dnn_threshold=args.dnn_threshold,
              chunksize=args.chunksize, timeout=args.timeout, step_size=args.step_size)
    if args.mode == "dask" and args.scheduler is None:
        import distributed

        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                      processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            return run(args.input, mode="dask", scheduler=client, **kw)
    return run(args.input, mode=args.mode, scheduler=args.scheduler, **kw)


if __name__ == "__main__":
    sys.exit(main())
