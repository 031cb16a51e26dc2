#!/usr/bin/env python3
"""Transport floor (issue 9, item 6): a program, not a test. Run via scripts/bench-echo.

NVIDIA's perf_analyzer drives (a) `quiver serve` with identity_fp32 and (b)
quiver_echo_server (the same HTTP and gRPC libraries and server setup, no engine: it returns
its inputs) with the same client settings: identity_fp32, one FP32 input of 16 values,
HTTP (binary tensors) and gRPC, at concurrency 8 and 1. Both servers run pinned to
--server-cpus (default CPU 0), perf_analyzer to --client-cpus (default CPU 1; at concurrency
> 1 on a single CPU it livelocks, so there it gets every CPU, as in serve_bench.py). Rounds
alternate which server goes first.

Per run: throughput and p50/p99 latency (perf_analyzer), and server CPU time per request:
the server process's utime+stime (/proc/PID/stat) before and after the run divided by the
requests it counted (statistics extension; both servers keep the count). Reports
"Quiver identity / bare echo" per transport and concurrency; the issue's target is >= 0.8.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import serve_bench
from serve_bench import Server, cpu_list, cpu_spec, fmt_num, log, run_perf_analyzer

serve_bench.LOG_TAG = "bench-echo"
ROOT = serve_bench.ROOT
MODEL = "identity_fp32"
ELEMENTS = 16          # FP32 values per request (64 B); identity_fp32 takes shape [N]
TARGET_RATIO = 0.8     # identity >= 0.8 x the bare echo of its transport
SERVERS = ["Quiver identity", "bare echo"]


def measure(o, server: Server, protocol: str, concurrency: int, raw: pathlib.Path) -> dict:
    raw.unlink(missing_ok=True)
    cpu0, n0 = server.cpu_seconds(), server.success_count(MODEL)
    res = run_perf_analyzer(o, server, MODEL, protocol, concurrency, raw, elements=ELEMENTS)
    cpu1, n1 = server.cpu_seconds(), server.success_count(MODEL)
    if n1 > n0:
        res["requests"] = n1 - n0
        res["server_cpu_us_per_req"] = (cpu1 - cpu0) / (n1 - n0) * 1e6
    return res


def median_of(rows, key):
    values = [r[key] for r in rows if r.get(key)]
    return statistics.median(values) if values else None


def summarise(o, rows: list[dict]) -> list[dict]:
    out = []
    for protocol in o.transports:
        for concurrency in o.concurrency:
            cell = [r for r in rows
                    if r["protocol"] == protocol and r["concurrency"] == concurrency]
            ident = [r for r in cell if r["server"] == SERVERS[0]]
            echo = [r for r in cell if r["server"] == SERVERS[1]]
            # Ratio per round (the two runs of a round are adjacent in time), then the median.
            ratios, cpu_ratios = [], []
            for a, b in zip(ident, echo):
                if a.get("infer_per_s") and b.get("infer_per_s"):
                    ratios.append(a["infer_per_s"] / b["infer_per_s"])
                if a.get("server_cpu_us_per_req") and b.get("server_cpu_us_per_req"):
                    cpu_ratios.append(b["server_cpu_us_per_req"] / a["server_cpu_us_per_req"])
            out.append({
                "protocol": protocol, "concurrency": concurrency,
                "ident_infer_per_s": median_of(ident, "infer_per_s"),
                "echo_infer_per_s": median_of(echo, "infer_per_s"),
                "ident_cpu_us": median_of(ident, "server_cpu_us_per_req"),
                "echo_cpu_us": median_of(echo, "server_cpu_us_per_req"),
                "ratio": statistics.median(ratios) if ratios else None,
                "cpu_ratio": statistics.median(cpu_ratios) if cpu_ratios else None,
                "rounds": len(ratios)})
    return out


def label(protocol: str) -> str:
    return "gRPC" if protocol == "grpc" else "HTTP (binary)"


def markdown(o, meta: dict, rows: list[dict], summary: list[dict]) -> str:
    out = [f"Run {meta['date']} at commit {meta['commit']}; {meta['cpu']}, {meta['nproc']} CPUs; "
           f"servers pinned to CPU(s) {o.server_cpus}, perf_analyzer to {o.client_cpus} at "
           f"concurrency 1 and to {o.perf_analyzer_http_cpus} above; perf_analyzer "
           f"{meta['perf_analyzer']}; {ELEMENTS} x FP32 per request; window {o.window_ms} ms, "
           f"{o.rounds} round(s)"
           f"{', stability check off' if o.stability >= 1000 else f', stability {o.stability}%'}"
           ".\n",
           "| transport | conc. | Quiver identity infer/s | bare echo infer/s "
           "| **identity / echo** | identity server CPU µs/req | echo server CPU µs/req "
           "| echo / identity CPU per req | target >= 0.8 |",
           "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        verdict = "n/a" if s["ratio"] is None else ("met" if s["ratio"] >= TARGET_RATIO
                                                    else "MISSED")
        out.append(f"| {label(s['protocol'])} | {s['concurrency']} | "
                   f"{fmt_num(s['ident_infer_per_s'])} | {fmt_num(s['echo_infer_per_s'])} | "
                   f"**{fmt_num(s['ratio'], 2)}** | {fmt_num(s['ident_cpu_us'], 1)} | "
                   f"{fmt_num(s['echo_cpu_us'], 1)} | {fmt_num(s['cpu_ratio'], 2)} | {verdict} |")
    out += ["", "Medians over the rounds; ratios are per round (adjacent runs), then the median. "
            "Server CPU µs/req = the server process's user+system time over the whole "
            "perf_analyzer run (warm-up and its statistics queries included) / the requests "
            "the server counted. perf_analyzer rows are stable within the stability "
            "percentage over 3 windows unless marked (±30%: relaxed once; unstable: taken as "
            "measured).", "",
            "| transport | conc. | round | server | infer/s | p50 µs | p99 µs "
            "| server CPU µs/req |",
            "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "infer_per_s" not in r:
            out.append(f"| {label(r['protocol'])} | {r['concurrency']} | {r['round']} | "
                       f"{r['server']} | failed: {r.get('error', '')[:100]} ||||")
            continue
        server = r["server"]
        if r.get("stability_pct", o.stability) > o.stability:
            server += " (unstable)" if r["stability_pct"] >= 1000 else f" (±{r['stability_pct']}%)"
        out.append(f"| {label(r['protocol'])} | {r['concurrency']} | {r['round']} | "
                   f"{server} | {fmt_num(r['infer_per_s'])} | {fmt_num(r['p50_us'])} | "
                   f"{fmt_num(r['p99_us'])} | {fmt_num(r.get('server_cpu_us_per_req'), 1)} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ncpu = sorted(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 500 ms windows, one round, no stability check")
    p.add_argument("--quiver", type=pathlib.Path, default=ROOT / "build" / "quiver")
    p.add_argument("--echo", type=pathlib.Path, default=ROOT / "build" / "quiver_echo_server")
    p.add_argument("--models", type=pathlib.Path, default=ROOT / "models")
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "bench" / "echo")
    p.add_argument("--perf-analyzer", default=str(ROOT / ".venv" / "bin" / "perf_analyzer"))
    p.add_argument("--server-cpus", default=cpu_spec(ncpu[:1]))
    p.add_argument("--client-cpus", default=cpu_spec(ncpu[1:2] or ncpu[:1]))
    p.add_argument("--concurrency", default="8,1", help="comma list of levels")
    p.add_argument("--transports", default="grpc,http", help="comma list of: grpc,http")
    p.add_argument("--rounds", type=int, default=None, help="default 3 (quick: 1)")
    p.add_argument("--window-ms", type=int, default=None, help="default 1000 (quick: 500)")
    p.add_argument("--stability", type=float, default=None,
                   help="perf_analyzer --stability-percentage (default 10; quick: off)")
    p.add_argument("--max-trials", type=int, default=None, help="default 10 (quick: 3)")
    o = p.parse_args()
    o.rounds = o.rounds or (1 if o.quick else 3)
    o.window_ms = o.window_ms or (500 if o.quick else 1000)
    o.stability = o.stability or (1000 if o.quick else 10)
    o.max_trials = o.max_trials or (3 if o.quick else 10)
    o.client_timeout = 120 if o.quick else 300
    o.perf_analyzer_http_cpus = cpu_spec(range(os.cpu_count() or 1))
    o.concurrency = [int(c) for c in o.concurrency.split(",")]
    o.transports = [t.strip() for t in o.transports.split(",")]
    for path in (o.quiver, o.echo):
        if not path.is_file():
            raise SystemExit(f"{path} not found: build it first (cmake --build build --target "
                             f"{path.name})")
    o.out.mkdir(parents=True, exist_ok=True)
    raw = o.out / "raw"
    raw.mkdir(exist_ok=True)

    pa = subprocess.run([o.perf_analyzer, "--version"], capture_output=True, text=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True).stdout
    cpu_model = platform.processor() or ""
    try:
        cpu_model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "commit": commit + ("+dirty" if dirty.strip() else ""), "cpu": cpu_model,
            "nproc": len(ncpu),
            "perf_analyzer": (pa.stdout + pa.stderr).strip().replace("Perf Analyzer Version ", "")}

    t0 = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="quiver-bench-echo-") as tmp:
        # Copies: a rebuild of build/ meanwhile cannot change what is measured.
        quiver = shutil.copy2(o.quiver, pathlib.Path(tmp) / "quiver")
        echo = shutil.copy2(o.echo, pathlib.Path(tmp) / "quiver_echo_server")
        cpus = cpu_list(o.server_cpus)
        servers = {}
        try:
            servers[SERVERS[0]] = Server(None, None, cpus, o.out / "quiver-serve.log", argv=[
                str(quiver), "serve", "--model-repository", str(o.models),
                "--model-control-mode", "explicit", "--load-model", MODEL,
                "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"])
            servers[SERVERS[1]] = Server(None, None, cpus, o.out / "echo-server.log", argv=[
                str(echo), "--http-port", "0", "--grpc-port", "0"])
            for rnd in range(o.rounds):
                order = SERVERS if rnd % 2 == 0 else SERVERS[::-1]
                for protocol in o.transports:
                    for concurrency in o.concurrency:
                        for name in order:
                            tag = "identity" if name == SERVERS[0] else "echo"
                            res = measure(o, servers[name], protocol, concurrency,
                                          raw / f"{tag}_{protocol}_c{concurrency}_r{rnd}.csv")
                            row = {"round": rnd, "protocol": protocol,
                                   "concurrency": concurrency, "server": name, **res}
                            if "infer_per_s" in row:
                                log(f"  -> {name}: {row['infer_per_s']:,.0f} infer/s, server "
                                    f"{fmt_num(row.get('server_cpu_us_per_req'), 1)} µs CPU/req")
                            else:
                                log(f"  -> {name}: FAILED: {row['error']}")
                            rows.append(row)
        finally:
            for server in servers.values():
                server.stop()

    summary = summarise(o, rows)
    text = markdown(o, meta, rows, summary)
    (o.out / "echo.md").write_text(text)
    (o.out / "echo.json").write_text(json.dumps({"meta": meta, "rows": rows,
                                                 "summary": summary}, indent=1))
    print(text)
    log(f"done in {time.monotonic() - t0:.0f} s; echo.md, echo.json, raw perf_analyzer CSVs "
        f"and the server logs in {o.out}")
    return 1 if any("infer_per_s" not in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
