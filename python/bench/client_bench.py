#!/usr/bin/env python3
"""Client benchmarks (issue 4, item 9): a program, not a test. Run via scripts/bench-client.

1. C++ client, remote vs local://: `quiver perf --client` (requests through
   client::Client, as an analysis sends them) against `quiver serve` over gRPC and HTTP,
   versus the same client over local:// (the Engine in-process), simple_mlp at batch 64,
   in interleaved rounds. The server and the local:// run are pinned to the same
   --server-cpus; the remote client runs on --client-cpus.
2. Python module vs C++ client: the same workload (same URL, concurrency, connections)
   from `quiver.Client.infer_async` (one Python thread keeping N calls in flight), from N
   Python threads calling the blocking `infer`, and from `quiver perf --client`,
   interleaved, over gRPC, HTTP and local://.
3. A `quiver perf` concurrency sweep (the bare transports, perf_analyzer's way) for
   identity_fp32 (4 B and 64 KiB) and simple_mlp (batch 64) over HTTP, gRPC and system
   shared memory.

Ratios are medians of per-round ratios measured side by side in one run; nothing here
asserts a time. Writes the JSON of every run and the Markdown tables to --out.
"""

import argparse
import collections
import datetime
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import serve_bench  # noqa: E402
from serve_bench import Server, cpu_list, log, make_repository  # noqa: E402

serve_bench.LOG_TAG = "bench-client"

ROOT = pathlib.Path(__file__).resolve().parents[2]
MLP_INPUT = ("INPUT__0", (64, 32))
TARGETS = {"remote_vs_local": 0.95, "python_vs_cpp": 0.95}


# --------------------------------------------------------------------------- load runners


def perf(o, url: str, protocol: str, model: str, concurrency: int, cpus: str, *,
         batch: int = 1, shape: str | None = None, client: bool = False,
         shm: bool = False, connections: int | None = None, levels: str | None = None) -> dict:
    """One `quiver perf --json` run; returns its JSON (one entry per level) or an error."""
    cmd = ["taskset", "-c", cpus, str(o.quiver), "perf", "-m", model, "-u", url,
           "-i", protocol, "-b", str(batch),
           "--concurrency-range", levels or f"{concurrency}:{concurrency}",
           "-p", str(o.window_ms), "-s", str(o.stability), "-r", str(o.max_trials), "--json"]
    if shape:
        cmd += ["--shape", shape]
    if client:
        cmd += ["--client"]
    if shm:
        cmd += ["--shared-memory", "system"]
    if connections:
        cmd += ["--connections", str(connections)]
    log(" ".join(cmd[3:]))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=o.client_timeout)
    # Exit code 3 = a level was not stable within -r windows: still measured, kept.
    if r.returncode not in (0, 3) or not r.stdout.strip():
        return {"error": f"quiver perf rc={r.returncode}: {r.stderr.strip()[-400:]}"}
    doc = json.loads(r.stdout)
    doc["command"] = "quiver perf " + " ".join(cmd[5:])
    doc["unstable"] = r.returncode == 3
    return doc


def level(doc: dict, i: int = 0) -> dict:
    return doc["results"][i]


def python_load(o, url: str, concurrency: int, connections: int, cpus: str,
                mode: str) -> dict:
    """The Python module under the same load, in a process of its own (see pyload)."""
    cmd = ["taskset", "-c", cpus, sys.executable, __file__, "pyload", "--url", url,
           "--concurrency", str(concurrency), "--connections", str(connections),
           "--window-ms", str(o.window_ms), "--windows", "3", "--mode", mode]
    log(" ".join(cmd[3:]))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=o.client_timeout, env=env)
    if r.returncode != 0:
        return {"error": f"pyload rc={r.returncode}: {r.stderr.strip()[-400:]}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def pyload_main(argv: list[str]) -> int:
    """One Python thread keeps --concurrency infer_async calls of simple_mlp (batch 64) in
    flight: wait for the oldest, send the next. After a warm-up window, measures
    --windows windows and prints their mean throughput and the latency percentiles as JSON."""
    p = argparse.ArgumentParser(prog="client_bench.py pyload")
    p.add_argument("--url", required=True)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--window-ms", type=int, default=2000)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--mode", choices=["async", "threads"], default="async")
    a = p.parse_args(argv)
    import numpy as np
    import quiver

    name, shape = MLP_INPUT
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    client = quiver.Client(a.url, retries=0, connections=a.connections,
                           max_in_flight=max(256, a.concurrency))
    client.infer("simple_mlp", {name: x})  # metadata fetched, connections open
    if a.mode == "threads":
        return pyload_threads(a, client, {name: x}, shape[0])
    window = collections.deque()
    latencies, counts = [], []
    deadline_warmup = time.perf_counter() + a.window_ms / 1000
    ends = [deadline_warmup + (k + 1) * a.window_ms / 1000 for k in range(a.windows)]
    for _ in range(a.concurrency):
        window.append((time.perf_counter(), client.infer_async("simple_mlp", {name: x})))
    k, n = -1, 0  # window index (-1 = warm-up), completions in it
    while True:
        sent, future = window.popleft()
        future.result()
        now = time.perf_counter()
        while k < a.windows and now >= (deadline_warmup if k < 0 else ends[k]):
            if k >= 0:
                counts.append(n)
            k, n = k + 1, 0
        if k >= a.windows:
            break
        if k >= 0:
            n += 1
            latencies.append(now - sent)
        window.append((time.perf_counter(), client.infer_async("simple_mlp", {name: x})))
    for _, future in window:
        future.result()
    latencies.sort()
    rate = [c * shape[0] / (a.window_ms / 1000) for c in counts]
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6
    print(json.dumps({"infer_per_sec": statistics.mean(rate), "windows": rate,
                      "p50_us": pct(0.50), "p99_us": pct(0.99)}))
    return 0


def pyload_threads(a, client, inputs, rows) -> int:
    """--mode threads: --concurrency Python threads, each calling the blocking infer() in a
    loop (the GIL is released while a call waits)."""
    import threading

    start = time.perf_counter() + a.window_ms / 1000  # after one warm-up window
    ends = [start + (k + 1) * a.window_ms / 1000 for k in range(a.windows)]
    counts = [[0] * a.windows for _ in range(a.concurrency)]
    latencies = [[] for _ in range(a.concurrency)]

    def worker(i):
        while True:
            sent = time.perf_counter()
            client.infer("simple_mlp", inputs)
            now = time.perf_counter()
            if now >= ends[-1]:
                return
            if now >= start:
                counts[i][next(k for k, e in enumerate(ends) if now < e)] += 1
                latencies[i].append(now - sent)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(v for per in latencies for v in per)
    rate = [sum(c[k] for c in counts) * rows / (a.window_ms / 1000) for k in range(a.windows)]
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6
    print(json.dumps({"infer_per_sec": statistics.mean(rate), "windows": rate,
                      "p50_us": pct(0.50), "p99_us": pct(0.99)}))
    return 0


# --------------------------------------------------------------------------- benchmarks


fmt = serve_bench.fmt_num


def remote_vs_local(o, server: Server) -> list[dict]:
    rows = []
    local = f"local://{o.repo}"
    for r, conc in [(r, c) for r in range(o.rounds) for c in o.concurrency]:
        row = {"round": r, "concurrency": conc}
        doc = perf(o, local, "grpc", "simple_mlp", conc, o.server_cpus, batch=64, client=True)
        row["local"] = doc.get("error") or level(doc)["infer_per_sec"]
        for proto, port in (("grpc", server.grpc), ("http", server.http)):
            conns = (conc + 5) // 6 if proto == "grpc" else conc
            cpu0, t0 = server.cpu_seconds(), time.monotonic()
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            doc = perf(o, f"127.0.0.1:{port}", proto, "simple_mlp", conc,
                       o.client_cpus, batch=64, client=True, connections=conns)
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time.monotonic() - t0
            # Cores busy over the whole client run (start-up and unstable windows included):
            # how close the client kept the server to fully busy, and what it cost itself.
            row[proto + "_server_cpu"] = (server.cpu_seconds() - cpu0) / wall
            row[proto + "_client_cpu"] = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime -
                                          ru0.ru_stime) / wall
            if "error" in doc:
                row[proto] = doc["error"]
                continue
            lv = level(doc)
            row[proto] = lv["infer_per_sec"]
            row[proto + "_p50"] = lv["latency_us"]["p50"]
            row[proto + "_compute"] = lv.get("server", {}).get("compute_infer_us")
        rows.append(row)
    return rows


def python_vs_cpp(o, server: Server) -> list[dict]:
    rows = []
    for r in range(o.rounds):
        for conc in o.py_concurrency:
            targets = [
                ("gRPC", f"grpc://127.0.0.1:{server.grpc}", "grpc", (conc + 5) // 6, o.client_cpus),
                ("HTTP", f"http://127.0.0.1:{server.http}", "http", conc, o.client_cpus),
                ("local://", f"local://{o.repo}", "grpc", 1, o.server_cpus)]
            for label, url, proto, conns, cpus in targets:
                local = url.startswith("local://")
                doc = perf(o, url if local else url.split("://", 1)[1], proto, "simple_mlp", conc,
                           cpus, batch=64, client=True, connections=None if local else conns)
                row = {"round": r, "transport": label, "concurrency": conc,
                       "cpp": doc.get("error") or level(doc)["infer_per_sec"],
                       "cpp_p50": None if "error" in doc else level(doc)["latency_us"]["p50"]}
                for mode in ("async", "threads"):
                    py = python_load(o, url, conc, conns, cpus, mode)
                    row[mode] = py.get("error") or py["infer_per_sec"]
                    row[mode + "_p50"] = py.get("p50_us")
                rows.append(row)
    return rows


def sweep(o, server: Server) -> list[dict]:
    rows = []
    cases = [("identity_fp32", "4 B", 1, "INPUT0:1"),
             ("identity_fp32", "64 KiB", 1, f"INPUT0:{(64 << 10) // 4}"),
             ("simple_mlp", "batch 64", 64, None)]
    transports = [("HTTP", "http", server.http, False), ("gRPC", "grpc", server.grpc, False),
                  ("shm (gRPC)", "grpc", server.grpc, True)]
    for model, label, batch, shape in cases:
        for tlabel, proto, port, shm in transports:
            doc = perf(o, f"127.0.0.1:{port}", proto, model, 0, o.client_cpus, batch=batch,
                       shape=shape, shm=shm, levels=o.sweep)
            if "error" in doc:
                rows.append({"model": model, "size": label, "transport": tlabel,
                             "error": doc["error"]})
                continue
            for lv in doc["results"]:
                rows.append({"model": model, "size": label, "transport": tlabel,
                             "concurrency": lv["concurrency"],
                             "infer_per_sec": lv["infer_per_sec"],
                             "p50": lv["latency_us"]["p50"], "p99": lv["latency_us"]["p99"],
                             "compute": lv.get("server", {}).get("compute_infer_us"),
                             "stable": lv.get("stable", True),
                             "shm_used": doc.get("shared_memory_used", False)})
    return rows


def median_ratio(rows, a, b):
    ratios = [r[a] / r[b] for r in rows if isinstance(r.get(a), float) and
              isinstance(r.get(b), float) and r[b] > 0]
    return (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None


def markdown(o, meta, rvl, pvc, sw) -> str:
    out = [f"Run {meta['date']} at commit {meta['commit']}; {meta['cpu']}, {meta['ncpu']} CPUs; "
           f"server and local:// pinned to CPUs {o.server_cpus}, remote clients to CPUs "
           f"{o.client_cpus}; {o.window_ms} ms windows, stability {o.stability} %.", ""]
    if rvl:
        out += ["### C++ client: remote vs local:// (simple_mlp, batch 64)", "",
                "| round | N | local:// infer/s | gRPC infer/s | gRPC / local | HTTP infer/s | "
                "HTTP / local | server compute us/req (gRPC) | server / client cores busy "
                "(gRPC; HTTP) |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in rvl:
            ok = isinstance(r.get("local"), float)
            ratio = lambda k: (fmt(r[k] / r["local"], 3)
                               if ok and isinstance(r.get(k), float) else "–")
            out.append(f"| {r['round']} | {r['concurrency']} | "
                       f"{fmt(r['local']) if ok else r['local']} | "
                       f"{fmt(r['grpc']) if isinstance(r.get('grpc'), float) else r.get('grpc')} "
                       f"| {ratio('grpc')} | "
                       f"{fmt(r['http']) if isinstance(r.get('http'), float) else r.get('http')} "
                       f"| {ratio('http')} | {fmt(r.get('grpc_compute'))} | "
                       f"{fmt(r.get('grpc_server_cpu'), 2)} / {fmt(r.get('grpc_client_cpu'), 2)}; "
                       f"{fmt(r.get('http_server_cpu'), 2)} / {fmt(r.get('http_client_cpu'), 2)} |")
        out.append("")
        for conc in o.concurrency:
            for k in ("grpc", "http"):
                m = median_ratio([r for r in rvl if r["concurrency"] == conc], k, "local")
                if m:
                    verdict = "met" if m[0] >= TARGETS["remote_vs_local"] else "MISSED"
                    out.append(f"- N={conc}, {k.upper()} remote / local:// median {m[0]:.3f} "
                               f"(range {m[1]:.3f}–{m[2]:.3f}); target >= "
                               f"{TARGETS['remote_vs_local']}: {verdict}")
        out.append("")
    if pvc:
        out += ["### Python module vs C++ client (simple_mlp, batch 64, same URL and load)", "",
                "Python async = one thread keeping N `infer_async` calls in flight; Python "
                "threads = N threads calling the blocking `infer`; C++ = `quiver perf --client` "
                "at concurrency N.", "",
                "| round | transport | N | C++ infer/s | Python async infer/s | async / C++ | "
                "Python threads infer/s | threads / C++ | p50 us C++ / async / threads |",
                "|---|---|---|---|---|---|---|---|---|"]
        num = lambda v: fmt(v) if isinstance(v, float) else str(v)
        for r in pvc:
            ratio = lambda k: (fmt(r[k] / r["cpp"], 3) if isinstance(r[k], float) and
                               isinstance(r["cpp"], float) else "–")
            out.append(f"| {r['round']} | {r['transport']} | {r['concurrency']} | {num(r['cpp'])} | "
                       f"{num(r['async'])} | {ratio('async')} | {num(r['threads'])} | "
                       f"{ratio('threads')} | {fmt(r['cpp_p50'])} / {fmt(r['async_p50'])} / "
                       f"{fmt(r['threads_p50'])} |")
        out.append("")
        for t in ("gRPC", "HTTP", "local://"):
            for conc in sorted({r["concurrency"] for r in pvc}):
                sel = [r for r in pvc if r["transport"] == t and r["concurrency"] == conc]
                for mode in ("async", "threads"):
                    m = median_ratio(sel, mode, "cpp")
                    if m:
                        verdict = "met" if m[0] >= TARGETS["python_vs_cpp"] else "MISSED"
                        out.append(f"- {t}, N={conc}, Python {mode} / C++: median {m[0]:.3f} "
                                   f"(range {m[1]:.3f}–{m[2]:.3f}); target >= "
                                   f"{TARGETS['python_vs_cpp']}: {verdict}")
        out.append("")
    if sw:
        out += ["### `quiver perf` concurrency sweep", "",
                "| model | tensor / batch | transport | concurrency | infer/s | p50 us | p99 us | "
                "server compute us |", "|---|---|---|---|---|---|---|---|"]
        for r in sw:
            if "error" in r:
                out.append(f"| {r['model']} | {r['size']} | {r['transport']} | – | {r['error']} "
                           "| | | |")
                continue
            note = "" if r["stable"] else " (unstable)"
            if r["transport"].startswith("shm") and not r["shm_used"]:
                note += " (shm NOT used)"
            out.append(f"| {r['model']} | {r['size']} | {r['transport']} | {r['concurrency']} | "
                       f"{fmt(r['infer_per_sec'])}{note} | {fmt(r['p50'])} | {fmt(r['p99'])} | "
                       f"{fmt(r['compute'])} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "pyload":
        return pyload_main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quiver", type=pathlib.Path, default=ROOT / "build" / "quiver")
    p.add_argument("--models", type=pathlib.Path, default=ROOT / "models")
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "bench" / "client")
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--window-ms", type=int, default=2000)
    p.add_argument("--stability", type=float, default=10)
    p.add_argument("--max-trials", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", default="2,4",
                   help="calls in flight for part 1, comma-separated (2: one queued behind "
                        "one running)")
    p.add_argument("--py-concurrency", default="2,4",
                   help="calls in flight for part 2, comma-separated")
    p.add_argument("--sweep", default="1:8:1", help="concurrency range of part 3")
    p.add_argument("--parts", default="1,2,3", help="which parts to run")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 500 ms windows, 1 round, sweep 1:2, no stability check")
    p.add_argument("--client-timeout", type=float, default=600)
    o = p.parse_args()
    if o.quick:
        o.window_ms, o.rounds, o.sweep, o.stability, o.max_trials = 500, 1, "1:2:1", 1000, 3
    parts = {int(x) for x in o.parts.split(",")}
    o.py_concurrency = [int(x) for x in o.py_concurrency.split(",")]
    o.concurrency = [int(x) for x in o.concurrency.split(",")]
    o.out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "commit": commit,
            "cpu": cpu, "ncpu": os.cpu_count(), "quick": o.quick, "host": platform.node()}
    with tempfile.TemporaryDirectory(prefix="quiver-client-bench-") as tmp:
        o.repo = pathlib.Path(tmp) / "models"
        make_repository(o.repo, o.models, len(cpu_list(o.server_cpus)))
        server = Server(o.quiver, o.repo, cpu_list(o.server_cpus), o.out / "server.log")
        try:
            rvl = remote_vs_local(o, server) if 1 in parts else []
            pvc = python_vs_cpp(o, server) if 2 in parts else []
            sw = sweep(o, server) if 3 in parts else []
        finally:
            server.stop()
    (o.out / "client_bench.json").write_text(json.dumps(
        {"meta": meta, "remote_vs_local": rvl, "python_vs_cpp": pvc, "sweep": sw}, indent=1))
    md = markdown(o, meta, rvl, pvc, sw)
    (o.out / "client_bench.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
