#!/usr/bin/env python3
"""`quiver serve` benchmarks (issue 3, item 8): a program, not a test. Run via scripts/bench-serve.

1. identity_fp32 with 4 B, 64 KiB, 1 MiB and 16 MiB FP32 tensors over HTTP-JSON,
   HTTP-binary, gRPC and system shared memory: throughput and p50/p99 latency, driven by
   NVIDIA's perf_analyzer and (HTTP-JSON, HTTP-binary) by our own python/bench/http_load.py.
2. simple_mlp at batch 64: remote (perf_analyzer -b 64 over gRPC against `quiver serve`)
   versus in-process (`quiver bench engine`, Engine::Infer from N threads), on the same
   server cores, in interleaved rounds; the ratio is the median of the per-round ratios.

The server runs pinned (taskset) to --server-cpus, every client to --client-cpus. For each
identity row the server's own CPU time (/proc/PID/stat) and its request count (the
statistics extension) are read before and after, which gives "requests per server
CPU-second": what one fully busy server core would do, independent of how fast the client is.

Writes CSVs, the perf_analyzer raw CSVs, the server log and the Markdown tables to --out.
"""

import argparse
import csv
import resource
import datetime
import json
import os
import pathlib
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")

SIZES = {"4 B": 4, "64 KiB": 64 << 10, "1 MiB": 1 << 20, "16 MiB": 16 << 20}
# Requests in flight for the throughput rows (a concurrency-1 latency row is added in full
# mode). Large tensors need few: more only adds queueing latency.
HIGH_CONCURRENCY = {"4 B": 8, "64 KiB": 4, "1 MiB": 4, "16 MiB": 2}
# (transport label, tool, protocol): the identity matrix, in run order.
TRANSPORTS = [
    ("HTTP-JSON", "perf_analyzer", "http-json"),
    ("HTTP-JSON", "http_load.py", "http-json"),
    ("HTTP-binary", "perf_analyzer", "http"),
    ("HTTP-binary", "http_load.py", "http-binary"),
    ("gRPC", "perf_analyzer", "grpc"),
    ("shm (system, gRPC)", "perf_analyzer", "grpc-shm"),
]

TARGETS = {
    "mlp_ratio": 0.95,            # remote / in-process at batch 64
    "grpc_small_per_core": 20000,  # identity 4 B over gRPC, infer/s per server core
    "binary_16m_gbs": 2.0,         # 16 MiB over loopback HTTP-binary, GB/s
    "shm_16m_gbs": 5.0,            # 16 MiB via shared memory, GB/s
}


LOG_TAG = "bench-serve"  # client_bench.py, which reuses this module, sets its own


def log(msg: str):
    print(f"[{LOG_TAG} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_list(spec: str) -> list[int]:
    cpus = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        cpus += list(range(int(a), int(b or a) + 1))
    return cpus


def cpu_spec(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


# --------------------------------------------------------------------------- server


def make_repository(dest: pathlib.Path, models: pathlib.Path, server_cores: int):
    """identity_fp32 as shipped (dims [-1]: any size), simple_mlp with one instance per
    server core and one intra-op thread (as `quiver bench engine --threads N`)."""
    ident = dest / "identity_fp32"
    (ident / "1").mkdir(parents=True)
    shutil.copy(models / "identity_fp32" / "config.pbtxt", ident / "config.pbtxt")
    mlp = dest / "simple_mlp"
    (mlp / "1").mkdir(parents=True)
    (mlp / "1" / "model.pt").symlink_to((models / "simple_mlp" / "1" / "model.pt").resolve())
    config = (models / "simple_mlp" / "config.pbtxt").read_text()
    config, n = re.subn(r"count:\s*\d+", f"count: {server_cores}", config)
    if n != 1:
        raise SystemExit("simple_mlp/config.pbtxt: expected one instance_group count")
    config += ('parameters { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "1" } }\n')
    (mlp / "config.pbtxt").write_text(config)


class Server:
    """`quiver serve` over `repo`, or with `argv` any program that prints the same
    QUIVER_READY line (e.g. quiver_echo_server), pinned to `cpus`."""

    def __init__(self, quiver: pathlib.Path, repo: pathlib.Path | None, cpus: list[int],
                 log_path: pathlib.Path, argv: list[str] | None = None):
        self.log_file = open(log_path, "wb")
        argv = argv or [str(quiver), "serve", "--model-repository", str(repo),
                        "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
        cmd = ["taskset", "-c", cpu_spec(cpus), *argv]
        self.command = " ".join(cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log_file,
                                     stdin=subprocess.DEVNULL)
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + 120
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"{pathlib.Path(argv[0]).name} did not print QUIVER_READY; "
                                 f"see {log_path}")
            if select.select([fd], [], [], min(left, 1.0))[0]:
                buf += os.read(fd, 4096)
        line = buf.split(b"\n")[0].decode()
        fields = dict(kv.split("=") for kv in line.split()[1:])
        self.http = int(fields["http"])
        self.grpc = int(fields["grpc"])
        log(f"server ready: {line}")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK_TCK  # utime + stime

    def context_switches(self) -> int:
        """Voluntary + involuntary context switches of every thread of the server so far
        (threads that ended are not counted: the server's threads live as long as it)."""
        total = 0
        for task in pathlib.Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
            except OSError:
                pass  # the thread ended meanwhile
        return total

    def success_count(self, model: str) -> int:
        url = f"http://127.0.0.1:{self.http}/v2/models/{model}/stats"
        with urllib.request.urlopen(url, timeout=30) as r:
            stats = json.load(r)
        return sum(int(m["inference_stats"]["success"]["count"])
                   for m in stats["model_stats"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


# --------------------------------------------------------------------------- clients


def run_perf_analyzer(o, server: Server, model: str, protocol: str, concurrency: int,
                      raw_csv: pathlib.Path, elements: int | None = None,
                      batch: int | None = None) -> dict:
    # Not stable within --max-trials windows (a busy machine): relax, and in the end take
    # whatever was measured; the row says which stability it needed.
    for stability in [o.stability] + ([] if o.quick else [30, 1000]):
        if stability != o.stability:
            log(f"  unstable; once more with --stability-percentage {stability}")
        res = perf_analyzer_once(o, server, model, protocol, concurrency, raw_csv, elements,
                                 batch, stability)
        if "error" not in res or "stable measurement" not in res["error"]:
            break
    return res


def perf_analyzer_once(o, server, model, protocol, concurrency, raw_csv, elements, batch,
                       stability) -> dict:
    grpc = protocol.startswith("grpc")
    # perf_analyzer 2.51 at concurrency > 1 pinned to a single CPU livelocks (no progress,
    # memory grows by GBs; seen over HTTP and gRPC here): then it gets every CPU.
    pin = o.client_cpus if concurrency == 1 or "," in o.client_cpus or "-" in o.client_cpus \
        else o.perf_analyzer_http_cpus
    cmd = ["taskset", "-c", pin, o.perf_analyzer, "-m", model,
           "-i", "grpc" if grpc else "http",
           "-u", f"127.0.0.1:{server.grpc if grpc else server.http}",
           "--concurrency-range", f"{concurrency}:{concurrency}",
           "--stability-percentage", str(stability), "--max-trials", str(o.max_trials),
           "--input-data", "random", "-f", str(raw_csv)]
    if o.quick and elements is not None and elements * 4 >= (1 << 20):
        # Smoke test: a 500 ms window holds too few large requests to be "stable".
        cmd += ["--measurement-mode", "count_windows", "--measurement-request-count", "10"]
    else:
        cmd += ["--measurement-interval", str(o.window_ms)]
    if elements is not None:
        cmd += ["--shape", f"INPUT0:{elements}"]
    if batch is not None:
        cmd += ["-b", str(batch)]
    if protocol == "http-json":
        cmd += ["--input-tensor-format", "json", "--output-tensor-format", "json"]
    if protocol == "grpc-shm":
        cmd += ["--shared-memory", "system",
                "--output-shared-memory-size", str(max(4 * (elements or 1), 1024))]
    log(" ".join(cmd[3:]))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=o.client_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {o.client_timeout} s"}
    if r.returncode != 0 or not raw_csv.exists():
        tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
        return {"error": f"perf_analyzer rc={r.returncode}: {' | '.join(tail)}"}
    with open(raw_csv) as f:
        row = next(csv.DictReader(f))
    return {"infer_per_s": float(row["Inferences/Second"]),
            "p50_us": float(row["p50 latency"]), "p99_us": float(row["p99 latency"]),
            "stability_pct": stability, "command": "perf_analyzer " + " ".join(cmd[4:])}


def run_http_load(o, server: Server, fmt: str, elements: int, concurrency: int) -> dict:
    cmd = ["taskset", "-c", o.client_cpus, sys.executable,
           str(ROOT / "python" / "bench" / "http_load.py"),
           "--url", f"127.0.0.1:{server.http}", "--model", "identity_fp32",
           "--elements", str(elements), "--format", fmt,
           "--concurrency", str(concurrency),
           "--warmup", str(o.own_warmup), "--seconds", str(o.window_ms / 1000 * o.own_windows),
           "--min-requests", "3"]
    log(" ".join(cmd[3:]))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=o.client_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {o.client_timeout} s"}
    if r.returncode != 0:
        return {"error": f"http_load.py rc={r.returncode}: {r.stderr.strip()[-300:]}"}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["command"] = "python/bench/http_load.py " + " ".join(cmd[5:])
    return out


def run_engine_bench(o, seconds: float) -> dict:
    cmd = ["taskset", "-c", o.server_cpus, str(o.quiver), "bench", "engine",
           "--model-repository", str(o.models), "--seconds", str(seconds), "--rounds", "1",
           "--threads", str(len(cpu_list(o.server_cpus))), "--batch", str(o.batch),
           "--markdown"] + (["--skip-identity"] if o.engine_has_skip_identity else [])
    log(" ".join(cmd[3:]))
    ru0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=o.client_timeout)
    ru1, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    m = re.search(r"TorchScript direct: ([\d.]+) infer/s \| Engine: ([\d.]+) infer/s", r.stdout)
    if r.returncode != 0 or not m:
        return {"error": f"quiver bench engine rc={r.returncode}: {r.stderr.strip()[-300:]}"}
    # CPU use over the whole process (model load and the identity part included): on an idle
    # machine close to the thread count; far below it, the run did not get its cores.
    return {"direct": float(m.group(1)), "engine": float(m.group(2)),
            "cpu_cores": cpu / (t1 - t0)}


# --------------------------------------------------------------------------- benchmarks


def fmt_num(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def identity_matrix(o, server: Server) -> list[dict]:
    rows = []
    cores = len(cpu_list(o.server_cpus))
    for size_label in o.sizes:
        nbytes = SIZES[size_label]
        elements = nbytes // 4
        levels = [HIGH_CONCURRENCY[size_label]]
        if not o.quick:
            levels = [1] + levels
        for transport, tool, protocol in TRANSPORTS:
            if transport not in o.transports:
                continue
            if tool == "http_load.py" and o.no_own_tool:
                continue
            if tool == "perf_analyzer" and protocol == "http-json" and elements > 1:
                # perf_analyzer 2.51 sends only the first element as JSON ("shape":[N],
                # "data":[x]; seen with strace), which the server rightly rejects.
                continue
            if o.quick and protocol == "http-json" and nbytes > (1 << 20):
                continue  # ~80 MB of JSON each way: seconds per request, too slow to smoke
            for concurrency in levels:
                raw = o.raw / f"identity_{nbytes}_{protocol}_{tool}_c{concurrency}.csv"
                raw.unlink(missing_ok=True)
                cpu0, n0 = server.cpu_seconds(), server.success_count("identity_fp32")
                if tool == "perf_analyzer":
                    res = run_perf_analyzer(o, server, "identity_fp32", protocol, concurrency,
                                            raw, elements=elements)
                else:
                    res = run_http_load(o, server, protocol.split("-")[1], elements, concurrency)
                cpu1, n1 = server.cpu_seconds(), server.success_count("identity_fp32")
                row = {"tensor": size_label, "bytes": nbytes, "transport": transport,
                       "tool": tool, "concurrency": concurrency, **res}
                if n1 > n0 and cpu1 > cpu0:
                    row["server_cpu_us_per_req"] = (cpu1 - cpu0) / (n1 - n0) * 1e6
                    row["per_server_cpu_s"] = (n1 - n0) / (cpu1 - cpu0)
                if "infer_per_s" in row:
                    row["per_server_core"] = row["infer_per_s"] / cores
                    row["gb_per_s"] = row["infer_per_s"] * nbytes / 1e9
                    log(f"  -> {row['infer_per_s']:,.0f} infer/s, p50 {row['p50_us']:,.0f} us, "
                        f"p99 {row['p99_us']:,.0f} us")
                else:
                    log(f"  -> FAILED: {row['error']}")
                rows.append(row)
    return rows


def mlp_remote_vs_inprocess(o, server: Server) -> list[dict]:
    cores = len(cpu_list(o.server_cpus))
    concurrency = o.mlp_concurrency or 2 * cores
    rows = []
    for rnd in range(o.rounds):
        def remote():
            raw = o.raw / f"mlp_b{o.batch}_grpc_c{concurrency}_round{rnd}.csv"
            raw.unlink(missing_ok=True)
            c0, t0 = server.cpu_seconds(), time.monotonic()
            res = run_perf_analyzer(o, server, "simple_mlp", "grpc", concurrency, raw,
                                    batch=o.batch)
            res["cpu_cores"] = (server.cpu_seconds() - c0) / (time.monotonic() - t0)
            return res

        def local():
            return run_engine_bench(o, o.window_ms / 1000)

        if rnd % 2 == 0:
            a, b = local(), remote()
        else:
            b, a = remote(), local()
        row = {"round": rnd, "concurrency": concurrency,
               "inprocess_engine": a.get("engine"), "inprocess_direct": a.get("direct"),
               "remote": b.get("infer_per_s"), "remote_p50_us": b.get("p50_us"),
               "remote_p99_us": b.get("p99_us"), "inprocess_cpu_cores": a.get("cpu_cores"),
               "server_cpu_cores": b.get("cpu_cores"),
               "error": a.get("error") or b.get("error")}
        if row["remote"] and row["inprocess_engine"]:
            row["ratio"] = row["remote"] / row["inprocess_engine"]
            if row["inprocess_cpu_cores"] and row["server_cpu_cores"]:
                # Per CPU-second instead of per wall-second: approximate (the in-process CPU
                # use covers the whole process), but robust to a busy machine's scheduling.
                row["cpu_ratio"] = ((row["remote"] / row["server_cpu_cores"]) /
                                    (row["inprocess_engine"] / row["inprocess_cpu_cores"]))
            log(f"  round {rnd}: in-process {row['inprocess_engine']:,.0f}, remote "
                f"{row['remote']:,.0f} infer/s, ratio {row['ratio']:.3f}")
        else:
            log(f"  round {rnd}: FAILED: {row['error']}")
        rows.append(row)
    return rows


def write_csv(path: pathlib.Path, rows: list[dict], fields: list[str]):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def markdown(o, meta: dict, ident: list[dict], mlp: list[dict]) -> str:
    out = []
    out.append(f"Run {meta['date']} at commit {meta['commit']}"
               f"{' (QUICK: smoke-test windows, numbers are noisy)' if o.quick else ''}; "
               f"{meta['cpu']}, {meta['nproc']} CPUs; server pinned to CPUs {o.server_cpus}, "
               f"clients to CPUs {o.client_cpus}; perf_analyzer {meta['perf_analyzer']}; "
               f"window {o.window_ms} ms.\n")
    if ident:
        out.append("| tensor | transport | tool | conc. | infer/s | GB/s | p50 us | p99 us "
                   "| server CPU us/req | infer per server CPU-s |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in ident:
            if "error" in r and "infer_per_s" not in r:
                out.append(f"| {r['tensor']} | {r['transport']} | {r['tool']} | "
                           f"{r['concurrency']} | failed: {r['error'][:120]} ||||||")
                continue
            tool = r["tool"]
            if r.get("stability_pct", o.stability) > o.stability:
                tool += (" (unstable)" if r["stability_pct"] >= 1000
                         else f" (±{r['stability_pct']}%)")
            out.append(
                f"| {r['tensor']} | {r['transport']} | {tool} | {r['concurrency']} | "
                f"{fmt_num(r['infer_per_s'])} | {fmt_num(r['gb_per_s'], 3)} | "
                f"{fmt_num(r['p50_us'])} | {fmt_num(r['p99_us'])} | "
                f"{fmt_num(r.get('server_cpu_us_per_req'), 1)} | "
                f"{fmt_num(r.get('per_server_cpu_s'))} |")
        out.append("")
        out.append("GB/s = infer/s x tensor bytes / 1e9 (one direction; identity sends the same "
                   "bytes back). Server CPU = the server process's user+system time over the "
                   "whole client run (warm-up included) / the requests it counted. "
                   + ("Quick mode: perf_analyzer's stability check is off. " if o.quick else
                      f"perf_analyzer rows are stable within {o.stability}% over 3 windows "
                      "unless marked (±30%: relaxed; unstable: taken as measured). ")
                   + "perf_analyzer HTTP-JSON rows exist only for 4 B: "
                   "perf_analyzer 2.51 sends just the first element of a JSON tensor.\n")
    if mlp:
        out.append(f"simple_mlp, batch {o.batch}: in-process = `quiver bench engine --threads "
                   f"{len(cpu_list(o.server_cpus))}` (Engine::Infer), remote = perf_analyzer "
                   f"-b {o.batch} over gRPC at concurrency {mlp[0]['concurrency']}; both on "
                   f"server CPUs {o.server_cpus}, interleaved.\n")
        out.append("| round | in-process (Engine) infer/s | TorchScript direct infer/s "
                   "| remote infer/s | remote p50 us | remote p99 us | remote / in-process "
                   "| in-process CPU use | server CPU use (remote) | ratio per CPU-second |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in mlp:
            out.append(f"| {r['round']} | {fmt_num(r['inprocess_engine'])} | "
                       f"{fmt_num(r['inprocess_direct'])} | {fmt_num(r['remote'])} | "
                       f"{fmt_num(r['remote_p50_us'])} | {fmt_num(r['remote_p99_us'])} | "
                       f"{fmt_num(r.get('ratio'), 3)} | "
                       f"{fmt_num(r.get('inprocess_cpu_cores'), 2)} | "
                       f"{fmt_num(r.get('server_cpu_cores'), 2)} | "
                       f"{fmt_num(r.get('cpu_ratio'), 3)} |")
        out.append("")
        out.append("CPU use = CPU-seconds per wall-second of the in-process benchmark process "
                   "(model load included) and of the server during the remote run, in cores. "
                   "Ratio per CPU-second = (remote / server CPU use) / (in-process / in-process "
                   "CPU use): approximate, a cross-check when the machine is busy.\n")
    out.append("Targets:\n")
    out.append("| target | measured | result |")
    out.append("|---|---|---|")

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "MISSED")

    ratios = [r["ratio"] for r in mlp if r.get("ratio")]
    if mlp:
        med = statistics.median(ratios) if ratios else None
        res = verdict(None if med is None else med >= TARGETS["mlp_ratio"])
        uses = [r["inprocess_cpu_cores"] for r in mlp if r.get("inprocess_cpu_cores")]
        cores = len(cpu_list(o.server_cpus))
        if uses and statistics.median(uses) < 0.7 * cores:
            cpu_ratios = [r["cpu_ratio"] for r in mlp if r.get("cpu_ratio")]
            cpu_med = statistics.median(cpu_ratios) if cpu_ratios else None
            res = (f"no verdict (wall-clock ratio unreliable: the in-process run got "
                   f"{statistics.median(uses):.2f} of its {cores} core(s), the machine was "
                   f"busy; per CPU-second the median ratio was {fmt_num(cpu_med, 3)})")
        out.append(f"| simple_mlp remote >= {TARGETS['mlp_ratio']}x in-process at batch "
                   f"{o.batch} | median ratio {fmt_num(med, 3)} | {res} |")

    def pick(tensor, transport):
        """The best row of any tool and concurrency (the tool is named in the line)."""
        cands = [r for r in ident if r["tensor"] == tensor and r["transport"] == transport
                 and "infer_per_s" in r]
        return max(cands, key=lambda r: r["infer_per_s"]) if cands else None

    def capacity(r):
        if not r.get("per_server_cpu_s"):
            return ""
        return (f"; server capacity {r['per_server_cpu_s'] * r['bytes'] / 1e9:.2f} GB/s per "
                f"server CPU-second")

    if r := pick("4 B", "gRPC"):
        ok = r["per_server_core"] >= TARGETS["grpc_small_per_core"]
        out.append(f"| identity 4 B over gRPC >= {TARGETS['grpc_small_per_core']:,} infer/s per "
                   f"server core | {fmt_num(r['per_server_core'])} infer/s per core "
                   f"({r['tool']}, conc. {r['concurrency']}; "
                   f"{fmt_num(r.get('per_server_cpu_s'))} per server CPU-second) | "
                   f"{verdict(ok)} |")
    if r := pick("16 MiB", "HTTP-binary"):
        out.append(f"| 16 MiB over loopback HTTP-binary >= {TARGETS['binary_16m_gbs']} GB/s | "
                   f"{fmt_num(r['gb_per_s'], 2)} GB/s ({r['tool']}, conc. {r['concurrency']}"
                   f"{capacity(r)}) | {verdict(r['gb_per_s'] >= TARGETS['binary_16m_gbs'])} |")
    if r := pick("16 MiB", "shm (system, gRPC)"):
        out.append(f"| 16 MiB via shm >= {TARGETS['shm_16m_gbs']} GB/s | "
                   f"{fmt_num(r['gb_per_s'], 2)} GB/s ({r['tool']}, conc. {r['concurrency']}"
                   f"{capacity(r)}) | {verdict(r['gb_per_s'] >= TARGETS['shm_16m_gbs'])} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ncpu = sorted(os.sched_getaffinity(0))
    half = max(1, len(ncpu) // 2)
    default_server = ncpu[:half]
    default_client = ncpu[half:] or ncpu
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: short windows, fewer rows")
    p.add_argument("--quiver", type=pathlib.Path, default=ROOT / "build" / "quiver")
    p.add_argument("--models", type=pathlib.Path, default=ROOT / "models")
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "bench")
    p.add_argument("--perf-analyzer", default=str(ROOT / ".venv" / "bin" / "perf_analyzer"))
    p.add_argument("--server-cpus", default=cpu_spec(default_server))
    p.add_argument("--client-cpus", default=cpu_spec(default_client))
    p.add_argument("--sizes", default=None, help="comma list of: 4B,64KiB,1MiB,16MiB")
    p.add_argument("--transports", default=None,
                   help="comma list of: HTTP-JSON,HTTP-binary,gRPC,shm")
    p.add_argument("--no-own-tool", action="store_true", help="perf_analyzer rows only")
    p.add_argument("--skip-identity", action="store_true")
    p.add_argument("--skip-mlp", action="store_true")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=None, help="simple_mlp interleaved rounds")
    p.add_argument("--mlp-concurrency", type=int, default=None,
                   help="perf_analyzer concurrency for simple_mlp (default 2 x server cores)")
    p.add_argument("--window-ms", type=int, default=None, help="measurement window")
    o = p.parse_args()

    o.window_ms = o.window_ms or (500 if o.quick else 3000)
    o.rounds = o.rounds or (2 if o.quick else 5)
    # perf_analyzer: stable = max/min of the last 3 windows within `stability` %.
    o.stability = 1000 if o.quick else 10
    o.max_trials = 3 if o.quick else 10
    o.own_warmup = 0.2 if o.quick else 1.0
    o.own_windows = 1 if o.quick else 3   # own tool: one window as long as perf_analyzer's 3
    o.client_timeout = 120 if o.quick else 300
    o.perf_analyzer_http_cpus = cpu_spec(range(os.cpu_count() or 1))
    names = {k.replace(" ", ""): k for k in SIZES}
    if o.sizes:
        o.sizes = [names[s.strip()] for s in o.sizes.split(",")]
    else:
        o.sizes = ["4 B", "16 MiB"] if o.quick else list(SIZES)
    all_transports = sorted({t for t, _, _ in TRANSPORTS})
    o.transports = ([t for t in all_transports for s in o.transports.split(",")
                     if t.lower().startswith(s.strip().lower())]
                    if o.transports else all_transports)

    if not o.quiver.is_file():
        raise SystemExit(f"{o.quiver} not found: build it first (scripts/setup)")
    o.out.mkdir(parents=True, exist_ok=True)
    o.raw = o.out / "raw"
    o.raw.mkdir(exist_ok=True)
    pa = subprocess.run([o.perf_analyzer, "--version"], capture_output=True, text=True)
    pa_version = (pa.stdout + pa.stderr).strip().replace("Perf Analyzer Version ", "")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    cpu_model = platform.processor() or ""
    try:
        cpu_model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "commit": commit + ("+dirty" if dirty else ""), "cpu": cpu_model,
            "nproc": len(ncpu), "perf_analyzer": pa_version}

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="quiver-bench-serve-") as tmp:
        repo = pathlib.Path(tmp) / "models"
        make_repository(repo, o.models, len(cpu_list(o.server_cpus)))
        # One copy of the binary for the whole run: a rebuild of build/ meanwhile cannot
        # change (or break) what is measured.
        o.quiver = pathlib.Path(shutil.copy2(o.quiver, pathlib.Path(tmp) / "quiver"))
        help_text = subprocess.run([str(o.quiver), "bench", "engine", "--help"],
                                   capture_output=True, text=True).stdout
        o.engine_has_skip_identity = "--skip-identity" in help_text
        server = Server(o.quiver, repo, cpu_list(o.server_cpus), o.out / "server.log")
        try:
            ident = [] if o.skip_identity else identity_matrix(o, server)
            mlp = [] if o.skip_mlp else mlp_remote_vs_inprocess(o, server)
        finally:
            server.stop()

    write_csv(o.out / "serve_identity.csv", ident,
              ["tensor", "bytes", "transport", "tool", "concurrency", "infer_per_s",
               "gb_per_s", "per_server_core", "p50_us", "p99_us", "server_cpu_us_per_req",
               "per_server_cpu_s", "stability_pct", "error", "command"])
    write_csv(o.out / "serve_mlp.csv", mlp,
              ["round", "concurrency", "inprocess_engine", "inprocess_direct", "remote",
               "remote_p50_us", "remote_p99_us", "ratio", "inprocess_cpu_cores",
               "server_cpu_cores", "cpu_ratio", "error"])
    text = markdown(o, meta, ident, mlp)
    (o.out / "serve.md").write_text(text)
    print(text)
    log(f"done in {time.monotonic() - t0:.0f} s; CSVs, raw perf_analyzer CSVs, server.log "
        f"and serve.md in {o.out}")
    failed = sum("infer_per_s" not in r for r in ident) + sum("ratio" not in r for r in mlp)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
