#!/usr/bin/env python3
"""Server CPU per request against Triton (issue 9, item 7): a program, not a test. Run via
scripts/bench-cpu.

The issue's table was measured side by side with NVIDIA Triton 2.46 on this kind of machine
(2 cores), with the same perf_analyzer load: server CPU time (utime+stime of the server
process) divided by completed requests. Triton is not installable here, so this program
measures the Quiver column the same way and sets it against the issue's Triton figures
(TRITON_US below, quoted from the issue), with the target <= 0.5 x Triton:

  identity 16 x FP32, concurrency 8, gRPC and HTTP (binary tensors)
  MLP 64-512-512-1 (python/models/make_mlp_64_512_512_1.py, TorchScript, one instance, one
  intra-op thread), batch 64, concurrency 2, gRPC and HTTP

`quiver serve` runs pinned to --server-cpus (default CPU 0); perf_analyzer to --client-cpus
at concurrency 1, else on every CPU (it livelocks pinned to one CPU at concurrency > 1, see
serve_bench.py). Requests are counted from the server's statistics (success count), so
perf_analyzer's warm-up and stabilisation windows are included on both sides of the ratio.
"""

import argparse
import datetime
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import serve_bench
from serve_bench import Server, cpu_list, cpu_spec, fmt_num, log, run_perf_analyzer

serve_bench.LOG_TAG = "bench-cpu"
ROOT = serve_bench.ROOT

# (label, model, protocol, concurrency, elements, batch, Triton 2.46 us/request from issue 9)
WORKLOADS = [
    ("identity 16 x FP32, c8, gRPC", "identity_fp32", "grpc", 8, 16, None, 73.1),
    ("identity 16 x FP32, c8, HTTP", "identity_fp32", "http", 8, 16, None, 69.8),
    ("MLP 64-512-512-1, b64, c2, gRPC", "mlp_64_512_512_1", "grpc", 2, None, 64, 1193.0),
    ("MLP 64-512-512-1, b64, c2, HTTP", "mlp_64_512_512_1", "http", 2, None, 64, 924.0),
]
TARGET = 0.5  # Quiver <= 0.5 x Triton


def make_repository(dest: pathlib.Path):
    ident = dest / "identity_fp32"
    (ident / "1").mkdir(parents=True)
    shutil.copy(ROOT / "models" / "identity_fp32" / "config.pbtxt", ident / "config.pbtxt")
    subprocess.run(["/usr/bin/python3", str(ROOT / "python" / "models" /
                                            "make_mlp_64_512_512_1.py"), str(dest)], check=True)


def main() -> int:
    ncpu = sorted(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quiver", type=pathlib.Path, default=ROOT / "build" / "quiver")
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "bench" / "cpu")
    p.add_argument("--perf-analyzer", default=str(ROOT / ".venv" / "bin" / "perf_analyzer"))
    p.add_argument("--server-cpus", default=cpu_spec(ncpu[:1]))
    p.add_argument("--client-cpus", default=cpu_spec(ncpu[1:2] or ncpu[:1]))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--window-ms", type=int, default=2000)
    p.add_argument("--stability", type=float, default=10)
    p.add_argument("--max-trials", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="one round, 500 ms windows")
    o = p.parse_args()
    if o.quick:
        o.rounds, o.window_ms, o.stability, o.max_trials = 1, 500, 1000, 3
    o.client_timeout = 300
    o.perf_analyzer_http_cpus = cpu_spec(range(os.cpu_count() or 1))
    o.out.mkdir(parents=True, exist_ok=True)
    raw = o.out / "raw"
    raw.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "commit": commit,
            "rounds": o.rounds, "window_ms": o.window_ms,
            "loadavg": open("/proc/loadavg").read().split()[:3]}
    rows = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="quiver-bench-cpu-") as tmp:
        repo = pathlib.Path(tmp) / "repo"
        make_repository(repo)
        quiver = shutil.copy2(o.quiver, pathlib.Path(tmp) / "quiver")
        server = Server(pathlib.Path(quiver), repo, cpu_list(o.server_cpus),
                        o.out / "quiver-serve.log")
        try:
            for rnd in range(o.rounds):
                for label, model, protocol, conc, elements, batch, triton in WORKLOADS:
                    cpu0, n0 = server.cpu_seconds(), server.success_count(model)
                    cs0 = server.context_switches()
                    res = run_perf_analyzer(o, server, model, protocol, conc,
                                            raw / f"{model}_{protocol}_r{rnd}.csv",
                                            elements=elements, batch=batch)
                    cpu1, n1 = server.cpu_seconds(), server.success_count(model)
                    cs1 = server.context_switches()
                    row = {"round": rnd, "workload": label, "triton_us": triton, **res}
                    if n1 > n0:
                        row["requests"] = n1 - n0
                        row["server_cpu_us_per_req"] = (cpu1 - cpu0) / (n1 - n0) * 1e6
                        row["switches_per_req"] = (cs1 - cs0) / (n1 - n0)
                    log(f"  -> {label}: {fmt_num(row.get('infer_per_s'))} infer/s, "
                        f"{fmt_num(row.get('server_cpu_us_per_req'), 1)} us CPU/request, "
                        f"{fmt_num(row.get('switches_per_req'), 2)} context switches/request")
                    rows.append(row)
        finally:
            server.stop()
    lines = [f"Server CPU per request, `scripts/bench-cpu` ({meta['date']}, commit "
             f"{meta['commit']}, {o.rounds} round(s) x {o.window_ms} ms windows, load average "
             f"{' '.join(meta['loadavg'])})", "",
             "| workload | Quiver us/request (median) | Triton 2.46 (issue 9) | Quiver / Triton "
             "| target <= 0.5 | Quiver infer/s (median) | server context switches/request "
             "(median) |", "|---|---|---|---|---|---|---|"]
    summary = []
    for label, *_, triton in WORKLOADS:
        cpu = [r["server_cpu_us_per_req"] for r in rows
               if r["workload"] == label and r.get("server_cpu_us_per_req")]
        thr = [r["infer_per_s"] for r in rows if r["workload"] == label and r.get("infer_per_s")]
        csw = [r["switches_per_req"] for r in rows
               if r["workload"] == label and r.get("switches_per_req") is not None]
        med = statistics.median(cpu) if cpu else None
        ratio = med / triton if med else None
        summary.append({"workload": label, "quiver_us": med, "triton_us": triton,
                        "ratio": ratio})
        lines.append(f"| {label} | {fmt_num(med, 1)} | {triton} | {fmt_num(ratio, 2)} | "
                     f"{'met' if ratio is not None and ratio <= TARGET else 'MISSED'} | "
                     f"{fmt_num(statistics.median(thr)) if thr else '-'} | "
                     f"{fmt_num(statistics.median(csw), 2) if csw else '-'} |")
    text = "\n".join(lines) + "\n"
    (o.out / "cpu.md").write_text(text)
    (o.out / "cpu.json").write_text(json.dumps({"meta": meta, "rows": rows,
                                                "summary": summary}, indent=1))
    print(text)
    log(f"done in {time.monotonic() - t0:.0f} s; cpu.md, cpu.json and raw CSVs in {o.out}")
    return 1 if any(s["quiver_us"] is None for s in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
