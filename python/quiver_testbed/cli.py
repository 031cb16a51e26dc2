"""`python -m quiver_testbed generate`: generate (or reuse) test-bed samples and print where
the files are."""

import argparse
import json
import sys

from . import samples
from .generate import default_out, default_workers, generate_sample
from .pythia_gen import GenerationError


def _parser():
    p = argparse.ArgumentParser(prog="python -m quiver_testbed",
                                description="Quiver's emerging-jets physics test bed.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser(
        "generate", help="generate samples (Pythia 8 -> detector -> jets -> HDF5 + ROOT)",
        description="Generate samples into <out>/<sample>-<settings hash>/ (cached: a rerun "
        "with the same settings and seed is instant). Samples: " + ", ".join(samples.SAMPLES)
        + ". Presets: " + ", ".join(f"{k} ({', '.join(f'{s} x{n}' for s, n in v)})"
                                    for k, v in samples.PRESETS.items()) + ".")
    g.add_argument("--preset", choices=sorted(samples.PRESETS),
                   help="a named set of samples with their event counts")
    g.add_argument("--sample", action="append", default=[],
                   help="sample name (repeatable): qcd, emj_ctau1/5/25/100/500, or any "
                   "emj_ctau<X> (c*tau = X mm; 0p5 for 0.5)")
    g.add_argument("--events", type=int, help="events per sample (overrides the preset)")
    g.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    g.add_argument("--ctau", type=float, action="append", default=[],
                   help="add the signal sample with this dark-pion c*tau in mm "
                   "(repeatable; same as --sample emj_ctau<X>)")
    g.add_argument("--pileup", type=float, help="mean pileup interactions (default 0: off)")
    g.add_argument("--pthat-min", type=float, help="QCD pT-hat floor in GeV (default 200)")
    g.add_argument("--workers", type=int, default=default_workers(),
                   help=f"worker processes (default min(2, cpus) = {default_workers()})")
    g.add_argument("--out", default=None, help=f"output folder (default {default_out()})")
    g.add_argument("--no-root", action="store_true", help="write the HDF5 file only")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    st = sub.add_parser("stats", help="displaced-track fractions of HDF5 samples "
                        "(docs/physics.md)")
    st.add_argument("files", nargs="*", help="HDF5 files written by generate")
    st.add_argument("--json", action="store_true")
    st.add_argument("--truth", action="append", default=[], metavar="SAMPLE",
                    help="generator-level numbers of SAMPLE instead (repeatable; runs Pythia)")
    st.add_argument("--events", type=int, default=200, help="events for --truth")
    st.add_argument("--seed", type=int, default=1, help="seed for --truth")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "stats":
        from .h5io import TestbedFileError  # noqa: PLC0415
        from .stats import main as stats_main, truth_main  # noqa: PLC0415
        if args.truth:
            try:
                return truth_main(args.truth, args.events, args.seed)
            except (samples.SettingsError, GenerationError) as err:
                print(f"stats: {err}", file=sys.stderr)
                return 1
        if not args.files:
            print("stats: give HDF5 files or --truth SAMPLE", file=sys.stderr)
            return 2
        try:
            return stats_main(args.files, args.json)
        except TestbedFileError as err:
            print(f"stats: {err}", file=sys.stderr)
            return 1
    jobs = []
    if args.preset:
        jobs += [(s, n if args.events is None else args.events)
                 for s, n in samples.PRESETS[args.preset]]
    names = args.sample + [samples.signal_name(c) for c in args.ctau]
    jobs += [(s, 1000 if args.events is None else args.events) for s in names]
    if not jobs:
        print("generate: give --preset or --sample (see --help)", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("generate: --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        settings = [samples.sample_settings(
            s, n, args.seed, pileup_mu=args.pileup,
            pthat_min=args.pthat_min if s == "qcd" else None)
            for s, n in jobs]
    except samples.SettingsError as err:
        print(f"generate: {err}", file=sys.stderr)
        return 2
    out = args.out or default_out()
    results = []
    for st in settings:
        try:
            r = generate_sample(st, out, args.workers, progress=not args.no_progress,
                                write_root_file=not args.no_root)
        except (GenerationError, OSError) as err:  # the folder stays incomplete: redone next time
            print(f"generate: {st['sample']}: {err}", file=sys.stderr)
            return 1
        results.append(r)
        if r["cached"]:
            print(f"{st['sample']}: cached in {r['dir']}", file=sys.stderr)
        else:
            t = r["timings"]
            print(f"{st['sample']}: {st['n_events']} events in {t['wall_s']:.1f} s "
                  f"({t['events_per_s']:.0f} events/s with {args.workers} workers; per event "
                  f"{t['gen_ms_per_event']:.1f} ms Pythia, {t['reco_ms_per_event']:.1f} ms "
                  f"detector+reco; {t['pythia_failed']} Pythia failures retried)",
                  file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print(r["h5"])
            if r["root"]:
                print(r["root"])
    return 0
