#!/usr/bin/env python3
"""Where a local:// batch's time goes, Python client vs C++ client (issue 9, item 9): a
program, not a test. Needs root (perf probe), Linux perf and scripts/setup:

    /usr/bin/python3 python/bench/local_budget.py [--cpu 0] [--seconds 2] [--rounds 2]

Runs simple_mlp at batch 64 over local://, pinned to one CPU as in `scripts/bench-client
--parts 2`, first from the C++ client (`quiver perf --client`, N calls in flight, resent from
its callbacks), then from Python (one thread keeping N `infer_async` calls in flight, as
client_bench.py pyload). For each it puts a uprobe on the backend's execution entry and
return and records them with the scheduler's context switches for --seconds, then prints,
as medians (and means) per batch:
  exec      the model's execution (TorchInstance::ExecuteOrThrow),
  gap       from one execution's end to the next one's start,
  worker    the part of the gap on the model's worker thread (delivery, release, the next
            batch's preparation; the C++ client's own work runs here, inside callbacks),
  other     the part of the gap on other threads (the Python thread's interpreter work),
  switches  context switches in the gap.
On one shared core every microsecond of the gap is lost throughput, so "Python / C++" is
(exec + gap) C++ / (exec + gap) Python. Probing costs each execution a few microseconds:
compare the two clients with each other, not with the plain benchmark.
"""

import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import serve_bench  # noqa: E402  (make_repository)

SYMBOL = re.compile(r"^([0-9a-f]+) t quiver::engine::\(anonymous namespace\)::TorchInstance::"
                    r"ExecuteOrThrow\(")
EVENT = re.compile(r"^\s*(\d+)\s+([\d.]+):\s+(\S+):(.*)$")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def add_probe(binary: pathlib.Path, name: str) -> tuple[str, str]:
    """A uprobe pair on ExecuteOrThrow in `binary`; returns the (entry, return) event names."""
    nm = run(["nm", "-C", str(binary)]).stdout.splitlines()
    addr = next((m.group(1) for m in map(SYMBOL.match, nm) if m), None)
    if addr is None:
        raise SystemExit(f"local_budget: no TorchInstance::ExecuteOrThrow in {binary}")
    for spec in (f"{name}=0x{addr}", f"{name}=0x{addr}%return"):
        r = run(["perf", "probe", "-q", "-f", "-x", str(binary), "-a", spec])
        if r.returncode != 0:
            raise SystemExit(f"local_budget: perf probe failed (root and tracefs needed): "
                             f"{r.stderr.strip()}")
    # perf names them itself (group from the binary, a suffix on the return probe).
    listed = re.findall(r"^\s*(\S+:" + name + r"\w*) ", run(["perf", "probe", "-l"]).stdout, re.M)
    entry = next((e for e in listed if e.endswith(":" + name)), None)
    ret = next((e for e in listed if e != entry), None)
    if entry is None or ret is None:
        raise SystemExit(f"local_budget: probes on {binary} not listed: {listed}")
    return entry, ret


def record(cmd: list[str], events: tuple[str, str], o, env=None) -> list[tuple]:
    """Starts `cmd` pinned to --cpu, records the probes and sched_switch for --seconds after
    --warmup seconds, stops it; returns (tid, time, kind, next_tid) tuples."""
    proc = subprocess.Popen(["taskset", "-c", str(o.cpu)] + cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(o.warmup)
        with tempfile.NamedTemporaryFile(suffix=".data") as data:
            r = run(["perf", "record", "-q", "-e", events[0], "-e", events[1],
                     "-e", "sched:sched_switch", "-o", data.name, "-p", str(proc.pid),
                     "--", "sleep", str(o.seconds)])
            if r.returncode != 0:
                raise SystemExit(f"local_budget: perf record failed: {r.stderr.strip()}")
            text = run(["perf", "script", "-i", data.name, "-F", "tid,time,event,trace"]).stdout
    finally:
        proc.kill()
        proc.wait()
    found = []
    for line in text.splitlines():
        m = EVENT.match(line)
        if not m:
            continue
        tid, t, name, rest = m.group(1), float(m.group(2)), m.group(3), m.group(4)
        if name == "sched:sched_switch":
            nxt = re.search(r"next_pid=(\d+)", rest)
            found.append((tid, t, "switch", nxt.group(1) if nxt else ""))
        elif name.rstrip(":") == events[1]:
            found.append((tid, t, "end", None))
        else:
            found.append((tid, t, "start", None))
    return found


def budget(events: list[tuple]) -> dict:
    """Per-batch medians/means from the event stream (see the module docstring)."""
    execs, gaps, on_worker, other, switches = [], [], [], [], []
    started, gap = {}, None
    for tid, t, kind, nxt in events:
        if kind == "start":
            if gap is not None and tid == gap["worker"]:
                gap["split"][gap["on"] == gap["worker"]] += t - gap["last"]
                gaps.append(t - gap["t0"])
                on_worker.append(gap["split"][True])
                other.append(gap["split"][False])
                switches.append(gap["switches"])
                gap = None
            started[tid] = t
        elif kind == "end" and tid in started:
            execs.append(t - started.pop(tid))
            gap = {"t0": t, "last": t, "worker": tid, "on": tid, "switches": 0,
                   "split": {True: 0.0, False: 0.0}}
        elif kind == "switch" and gap is not None:
            gap["split"][gap["on"] == gap["worker"]] += t - gap["last"]
            gap["last"], gap["on"] = t, nxt
            gap["switches"] += 1
    if not gaps:
        raise SystemExit("local_budget: no complete batch recorded")

    def stat(v):
        return {"median_us": statistics.median(v) * 1e6, "mean_us": statistics.mean(v) * 1e6}

    return {"batches": len(gaps), "exec": stat(execs), "gap": stat(gaps),
            "worker": stat(on_worker), "other": stat(other),
            "switches": statistics.mean(switches)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quiver", type=pathlib.Path, default=ROOT / "build" / "quiver")
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--warmup", type=float, default=4.0, help="seconds before recording")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds recorded")
    p.add_argument("--rounds", type=int, default=2)
    o = p.parse_args()
    if os.geteuid() != 0 or shutil.which("perf") is None:
        raise SystemExit("local_budget: needs root and Linux perf (uprobes)")
    module = next((ROOT / "build" / "python" / "quiver").glob("_quiver_local*.so"), None)
    if module is None or not o.quiver.exists():
        raise SystemExit("local_budget: build/quiver or the local:// module is missing; "
                         "run scripts/setup")
    cpp_event = add_probe(o.quiver, "budget_cpp_exe")
    py_event = add_probe(module, "budget_py_exe")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="quiver-local-budget-") as tmp:
            repo = pathlib.Path(tmp) / "models"
            serve_bench.make_repository(repo, ROOT / "models", 1)
            url = f"local://{repo}"
            length = int((o.warmup + o.seconds + 30) * 1000)
            cpp = [str(o.quiver), "perf", "-m", "simple_mlp", "-u", url, "-i", "grpc",
                   "-b", "64", "--concurrency-range", f"{o.concurrency}:{o.concurrency}",
                   "-p", str(length), "-s", "100", "-r", "1", "--client"]
            py = [sys.executable, str(ROOT / "python" / "bench" / "client_bench.py"), "pyload",
                  "--url", url, "--concurrency", str(o.concurrency), "--window-ms", str(length),
                  "--windows", "1", "--mode", "async"]
            for r in range(o.rounds):
                for label, cmd, event in (("C++", cpp, cpp_event), ("Python", py, py_event)):
                    rows.append((r, label, budget(record(cmd, event, o, env))))
    finally:
        for event in (*cpp_event, *py_event):
            run(["perf", "probe", "-q", "-d", event])
    print(f"simple_mlp, batch 64, N={o.concurrency}, local:// pinned to CPU {o.cpu}; "
          "per batch, median (mean) in us")
    print("| round | client | batches | exec | gap | gap on the worker | gap on other threads "
          "| switches per gap |")
    print("|---|---|---|---|---|---|---|---|")
    for r, label, b in rows:
        cell = lambda k: f"{b[k]['median_us']:.0f} ({b[k]['mean_us']:.0f})"
        print(f"| {r} | {label} | {b['batches']} | {cell('exec')} | {cell('gap')} | "
              f"{cell('worker')} | {cell('other')} | {b['switches']:.2f} |")
    for r in range(o.rounds):
        c, py_ = (b for rr, _, b in rows if rr == r)
        total = lambda b, k: b["exec"][k] + b["gap"][k]
        print(f"round {r}: (exec + gap) C++ / Python = {total(c, 'median_us') / total(py_, 'median_us'):.3f}"
              f" by medians, {total(c, 'mean_us') / total(py_, 'mean_us'):.3f} by means")
    return 0


if __name__ == "__main__":
    sys.exit(main())
