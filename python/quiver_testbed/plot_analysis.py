"""Plots the histograms of a `quiver analyze` output JSON (docs/testbed-contract.md).

One PNG per histogram: every sample overlaid, each normalised to unit area, QCD
(background) filled and the signal samples as lines, so shapes compare at a glance.

    python python/quiver_testbed/plot_analysis.py out.json --out plots/
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "ht": "HT of selected jets [GeV]",
    "jet_pt": "leading selected jets $p_T$ [GeV]",
    "gnn_score": "GNN score (4 leading jets)",
    "dnn_score": "DNN score (4 leading jets)",
    "event_score": "event score",
    "n_tagged": "tagged jets among the 4 leading",
}


def is_background(name: str) -> bool:
    return name.startswith("qcd")


def plot(doc: dict, out_dir: pathlib.Path) -> list[pathlib.Path]:
    samples = doc["samples"]
    names = sorted(samples, key=lambda n: (not is_background(n), n))
    hist_names = sorted({h for s in samples.values() for h in s["histograms"]})
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for hist in hist_names:
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        drawn = 0
        for name in names:
            h = samples[name]["histograms"].get(hist)
            if h is None:
                continue
            edges, counts = h["edges"], h["counts"]
            total = sum(counts)
            if total <= 0:
                continue  # e.g. score histograms of a --no-ml run
            widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
            density = [c / total / w for c, w in zip(counts, widths)]
            label = f"{name} ({total:g})"
            if is_background(name):
                ax.stairs(density, edges, fill=True, alpha=0.35, color="grey", label=label)
            else:
                ax.stairs(density, edges, linewidth=1.6, label=label)
            drawn += 1
        if drawn == 0:
            plt.close(fig)
            continue
        ax.set_xlabel(LABELS.get(hist, hist))
        ax.set_ylabel("normalised entries / bin width")
        ax.legend(fontsize="small")
        timing = doc.get("timing", {})
        ax.set_title(f"{hist}  ({timing.get('mode', '?')}, tagger {timing.get('tagger', '?')})",
                     fontsize="medium")
        fig.tight_layout()
        path = out_dir / f"{hist}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=pathlib.Path, help="output of quiver analyze --output")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("plots"),
                        help="folder for the PNGs (default: plots)")
    args = parser.parse_args(argv)
    try:
        doc = json.loads(args.json.read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"plot_analysis: cannot read {args.json}: {err}", file=sys.stderr)
        return 1
    if "samples" not in doc:
        print(f"plot_analysis: {args.json} has no 'samples'", file=sys.stderr)
        return 1
    for path in plot(doc, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
