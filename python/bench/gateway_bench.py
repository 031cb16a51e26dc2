#!/usr/bin/env python3
"""`quiver gateway` benchmarks (issue 11, item 9): a program, not a test. Run via
scripts/bench-gateway.

1. overhead: the gateway in the path vs direct. One `quiver serve` (identity_fp32,
   simple_mlp), one `quiver gateway --upstream grpc://...` in front of it; `quiver perf` at
   concurrency 4 over gRPC and HTTP with small (16 x FP32) and 1 MiB (262144 x FP32)
   identity_fp32 requests (the goals' rows), and simple_mlp at batch 64 (a model that
   computes, for reference). Direct and gateway runs alternate (A B, B A, ...), the ratio and
   the added p50 are medians of the per-round values. Per run also the CPU time per request
   of the server, the gateway and the client (/proc/PID/stat, getrusage) and the gateway's
   context switches per request (/proc/PID/task/*/status); with --profile, where the server's
   and the gateway's CPU time goes (perf record, one extra run per row).
2. scan: one gateway over 1..4 upstreams (each its own `quiver serve`); simple_mlp at batch
   64 and small identity requests at a fixed concurrency; throughput relative to N=1 and how
   the requests spread (each server's success count from its statistics extension).
3. fairness: two tenants of equal weight behind a gateway whose upstream capacity is short
   (`gateway.upstream_max_in_flight`); a greedy tenant at 10x the concurrency of a polite
   one; each tenant's share of the completed requests, and the same load through a gateway
   without tenants (admission pass-through: the server's FIFO queue decides) for comparison. Skipped, and said so, when the quiver program
   has no tenants (a request without a token is answered).
4. analysis: `quiver analyze --mode columnar` from 1, 2 and 4 concurrent users through
   `quiver up` (the embedded default facility), or, where this quiver has no `up`, through
   the same two servers + `quiver gateway` started here; events/s per user and in total.

Everything listens on 127.0.0.1 with ephemeral ports and is stopped on exit. Writes the
Markdown (also on stdout), every measurement with its command (gateway.json) and the logs
to --out.
"""

import argparse
import ctypes
import datetime
import json
import os
import pathlib
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUIVER_COPY: pathlib.Path | None = None  # the copy of the program this run uses
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The overhead section's loads: label -> (model, quiver perf keyword arguments).
SIZES = {"16 x FP32": ("identity_fp32", {"elements": 16}),
         "1 MiB": ("identity_fp32", {"elements": 262144}),
         "simple_mlp b64": ("simple_mlp", {"batch": 64})}
SECTIONS = ["overhead", "scan", "fairness", "analysis"]
TENANT_TOKENS = {"greedy": "bench-greedy-token", "polite": "bench-polite-token"}


def log(msg: str):
    print(f"[bench-gateway {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0, suffix=""):
    return "–" if x is None else f"{x:,.{digits}f}{suffix}"


# --------------------------------------------------------------------------- processes


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Proc:
    """A child that prints `QUIVER_READY http=.. grpc=.. metrics=..` once listening
    (`quiver serve`, `quiver gateway`, `quiver up`), optionally pinned with taskset."""

    def __init__(self, argv: list[str], log_path: pathlib.Path, cpus: str | None = None,
                 name: str = ""):
        self.name = name or pathlib.Path(argv[0]).name
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        cmd = (["taskset", "-c", cpus] if cpus else []) + argv
        self.command = " ".join(cmd)
        # Own session (a terminal's Ctrl-C reaches only this script, which stops the
        # children in order); SIGTERM to the child if this script dies without stopping it.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log_file,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self.lines = []
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + 180
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append(line.decode(errors="replace"))
                if line.startswith(b"QUIVER_READY"):
                    fields = dict(kv.split("=") for kv in line.decode().split()[1:])
                    self.http, self.grpc = int(fields["http"]), int(fields["grpc"])
                    self.metrics = int(fields.get("metrics", 0))
                    self._rest = buf
                    log(f"{self.name} ready (pid {self.pid}): {line.decode()}")
                    return
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} did not print QUIVER_READY; see {log_path}")
            if select.select([fd], [], [], min(left, 1.0))[0]:
                chunk = os.read(fd, 4096)
                if not chunk and self.proc.poll() is not None:
                    continue
                buf += chunk

    def more_lines(self, until: str, timeout: float = 10) -> list[str]:
        """Lines after QUIVER_READY up to one containing `until` (quiver up's URL list)."""
        fd, buf, out = self.proc.stdout.fileno(), self._rest, []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out.append(line.decode(errors="replace"))
                if until in out[-1]:
                    self._rest = buf
                    return out
            if select.select([fd], [], [], 0.5)[0]:
                buf += os.read(fd, 4096)
        self._rest = buf
        return out

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK_TCK  # utime + stime, all threads

    def context_switches(self) -> int:
        """Voluntary + involuntary switches of the threads alive now (exited ones are lost;
        a gRPC process keeps its threads)."""
        total = 0
        for task in pathlib.Path(f"/proc/{self.pid}/task").iterdir():
            try:
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches" in line:  # voluntary_ and nonvoluntary_
                        total += int(line.split()[1])
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


class Processes:
    """Every child started here; stopped in reverse order on exit, on error and on
    SIGTERM/SIGINT."""

    def __init__(self):
        self.procs: list[Proc] = []

    def start(self, *args, **kw) -> Proc:
        p = Proc(*args, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: Proc):
        p.stop()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        while self.procs:
            p = self.procs.pop()
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {p.name}: {e}")


def http_json(port: int, path: str, token: str | None = None, method: str = "GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def success_count(server: Proc, model: str) -> int:
    stats = http_json(server.http, f"/v2/models/{model}/stats")
    return sum(int(m["inference_stats"]["success"]["count"]) for m in stats["model_stats"])


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def wait_replicas(gateway: Proc, wanted: dict[str, int], timeout: float = 60):
    """Until the gateway's placement has each model READY on `wanted` upstreams."""
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(gateway.metrics)
        have = {k: m.get(f'quiver_gateway_ready_replicas{{model="{k}"}}', 0) for k in wanted}
        if all(have[k] >= n for k, n in wanted.items()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{gateway.name}: replicas {have}, wanted {wanted}")
        time.sleep(0.2)


def serve_argv(o, models: list[str]) -> list[str]:
    argv = [str(o.quiver), "serve", "--model-repository", str(o.models),
            "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
            "--model-control-mode", "explicit"]
    for m in models:
        argv += ["--load-model", m]
    return argv


def gateway_argv(o, upstreams: list[Proc], config: pathlib.Path | None = None) -> list[str]:
    argv = [str(o.quiver), "gateway", "--http-port", "0", "--grpc-port", "0",
            "--metrics-port", "0"]
    if config:
        argv += ["--config", str(config)]
    for s in upstreams:
        argv += ["--upstream", f"grpc://127.0.0.1:{s.grpc}"]
    return argv


# --------------------------------------------------------------------------- load


def perf_cmd(o, url: str, model: str, concurrency: int, seconds: float, *,
             elements: int | None = None, batch: int | None = None,
             token: str | None = None, cpus: str | None = None) -> list[str]:
    cmd = (["taskset", "-c", cpus] if cpus else []) + [
        str(o.quiver), "perf", "-m", model, "-u", url, "--concurrency-range", str(concurrency),
        "-p", str(int(seconds * 1000)), "-r", "1", "--json"]
    if elements is not None:
        cmd += ["--shape", f"INPUT0:{elements}"]
    if batch is not None:
        cmd += ["-b", str(batch)]
    if token:
        cmd += ["--token", token]
    return cmd


def show(cmd: list[str] | str) -> str:
    """A command as written in the docs: the copied program as `build/quiver`."""
    s = cmd if isinstance(cmd, str) else " ".join(cmd)
    return s.replace(str(QUIVER_COPY), "build/quiver") if QUIVER_COPY else s


def parse_perf(stdout: str, rc: int, stderr: str) -> dict:
    # 3 = measured but "not stable": one window (-r 1) never counts as stable.
    if rc not in (0, 3):
        return {"error": f"quiver perf rc={rc}: {' | '.join(stderr.strip().splitlines()[-3:])}"}
    row = json.loads(stdout)["results"][0]
    return {"infer_per_s": row["infer_per_sec"], "p50_us": row["latency_us"]["p50"],
            "p99_us": row["latency_us"]["p99"], "requests": row["request_count"]}


def run_perf(o, cmd: list[str]) -> dict:
    log("  " + show(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=o.seconds * 3 + 120)
    res = parse_perf(r.stdout, r.returncode, r.stderr)
    res["command"] = show(cmd)
    return res


# --------------------------------------------------------------------------- 1. overhead


def section_overhead(o, procs: Processes, report: dict) -> list[str]:
    server = procs.start(serve_argv(o, ["identity_fp32", "simple_mlp"]), o.out / "server.log",
                         o.server_cpus or None, name="server")
    gateway = procs.start(gateway_argv(o, [server]), o.out / "gateway.log",
                          o.gateway_cpus or None, name="gateway")
    wait_replicas(gateway, {"identity_fp32": 1, "simple_mlp": 1})
    report["overhead_setup"] = {"server": show(server.command), "gateway": show(gateway.command)}
    targets = {"direct": server, "gateway": gateway}
    runs, profiles = [], []
    # quiver's start-up (dynamic loading of libtorch & co.) costs ~0.5 s of CPU before the
    # first request: measured with --help and taken off each run's client CPU.
    startup = []
    for _ in range(3):
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([str(o.quiver), "perf", "--help"], capture_output=True)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        startup.append((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime))
    startup_cpu = median(startup)
    report["client_startup_cpu_s"] = startup_cpu
    for proto in o.protocols:
        for size, (model, kw) in SIZES.items():
            if size not in o.sizes:
                continue
            def url(p):
                return f"{proto}://127.0.0.1:{p.grpc if proto == 'grpc' else p.http}"
            for name, p in targets.items():  # warm-up: connections, allocator, placement
                run_perf(o, perf_cmd(o, url(p), model, o.concurrency, 1, **kw,
                                     cpus=o.client_cpus or None))
            for rnd in range(o.repeat):
                order = ["direct", "gateway"] if rnd % 2 == 0 else ["gateway", "direct"]
                for name in order:
                    cpu_s, cpu_g = server.cpu_seconds(), gateway.cpu_seconds()
                    cs_s, cs_g = server.context_switches(), gateway.context_switches()
                    n0 = success_count(server, model)
                    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    res = run_perf(o, perf_cmd(o, url(targets[name]), model, o.concurrency,
                                               o.seconds, **kw, cpus=o.client_cpus or None))
                    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    n = success_count(server, model) - n0
                    res.update(protocol=proto, size=size, round=rnd, path=name,
                               loadavg=loadavg())
                    if n > 0:
                        res["server_cpu_us"] = (server.cpu_seconds() - cpu_s) / n * 1e6
                        res["client_cpu_us"] = ((ru1.ru_utime + ru1.ru_stime) -
                                                (ru0.ru_utime + ru0.ru_stime) -
                                                startup_cpu) / n * 1e6
                        res["server_cs"] = (server.context_switches() - cs_s) / n
                        if name == "gateway":
                            res["gateway_cpu_us"] = (gateway.cpu_seconds() - cpu_g) / n * 1e6
                            res["gateway_cs"] = (gateway.context_switches() - cs_g) / n
                    if "error" in res:
                        log(f"  -> FAILED: {res['error']}")
                    else:
                        log(f"  -> {name}: {res['infer_per_s']:,.0f} infer/s, p50 "
                            f"{res['p50_us']} us")
                    runs.append(res)
            if o.profile:  # one more gateway run, under perf record (not a measured round)
                profiles.append(profile_run(o, proto, size, server, gateway, perf_cmd(
                    o, url(gateway), model, o.concurrency, o.seconds, **kw,
                    cpus=o.client_cpus or None)))
    report["overhead"] = runs
    report["profiles"] = profiles
    procs.stop(gateway)
    procs.stop(server)

    lines = [
        "| transport | tensor | direct infer/s | gateway infer/s | ratio gateway/direct "
        "(rounds) | direct p50 us | gateway p50 us | added p50 us (rounds) | CPU us/req "
        "direct: server + client | CPU us/req via gateway: server + gateway + client | "
        "CPU per request, direct / via gateway | gateway ctx sw/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for proto in o.protocols:
        for size in o.sizes:
            rs = [r for r in runs if r["protocol"] == proto and r["size"] == size
                  and "error" not in r]
            if not rs:
                continue
            d = {r["round"]: r for r in rs if r["path"] == "direct"}
            g = {r["round"]: r for r in rs if r["path"] == "gateway"}
            rounds = sorted(set(d) & set(g))
            ratios = [g[i]["infer_per_s"] / d[i]["infer_per_s"] for i in rounds]
            added = [g[i]["p50_us"] - d[i]["p50_us"] for i in rounds]
            md = lambda k, src: median([r.get(k) for r in src.values()])  # noqa: E731
            label = "gRPC" if proto == "grpc" else "HTTP"
            ratio, add = median(ratios), median(added)
            # What the throughput ratio would be if the CPUs were the only limit.
            parts_d = [md(k, d) for k in ("server_cpu_us", "client_cpu_us")]
            parts_g = [md(k, g) for k in ("server_cpu_us", "gateway_cpu_us", "client_cpu_us")]
            cpu_ratio = (sum(parts_d) / sum(parts_g)
                         if None not in parts_d + parts_g and sum(parts_g) > 0 else None)
            lines.append(
                f"| {label} | {size} | {fmt(md('infer_per_s', d))} | {fmt(md('infer_per_s', g))} | "
                f"**{fmt(ratio, 3)}** ({' '.join(f'{x:.2f}' for x in ratios)}) | "
                f"{fmt(md('p50_us', d))} | {fmt(md('p50_us', g))} | **{fmt(add)}** "
                f"({' '.join(f'{x:.0f}' for x in added)}) | "
                f"{fmt(md('server_cpu_us', d), 1)} + {fmt(md('client_cpu_us', d), 1)} | "
                f"{fmt(md('server_cpu_us', g), 1)} + {fmt(md('gateway_cpu_us', g), 1)} + "
                f"{fmt(md('client_cpu_us', g), 1)} | {fmt(cpu_ratio, 2)} | "
                f"{fmt(md('gateway_cs', g), 1)} |")
            if SIZES[size][0] != "identity_fp32":
                continue  # the goals are for identity's small and 1 MiB requests
            verdicts.append(
                f"| {label} {size}: throughput >= 0.95x direct | {fmt(ratio, 3)} | "
                f"{'met' if ratio is not None and ratio >= 0.95 else 'MISSED'} |")
            verdicts.append(
                f"| {label} {size}: added p50 <= 50 us | {fmt(add)} us | "
                f"{'met' if add is not None and add <= 50 else 'MISSED'} |")
    lines += ["", f"Ratio and added p50: medians of the per-round values (rounds in brackets, "
              f"in run order). CPU us/req: the process's user+system time over the whole "
              f"quiver perf run / the requests the server counted (statistics extension); the "
              f"client's minus its start-up ({startup_cpu:.2f} s of CPU, `quiver perf --help`). "
              f"Gateway ctx sw/req: voluntary + involuntary context switches of its threads "
              f"(/proc/PID/task/*/status) / requests. Medians over the rounds. CPU per request, "
              f"direct / via gateway: (server + client) / (server + gateway + client), the "
              f"throughput ratio to expect where all processes share saturated CPUs.",
              "", "| goal | measured (median of rounds) | result |", "|---|---|---|", *verdicts]
    if profiles:
        lines += ["", "Where the CPU time goes (`perf record -F 999 -g` of the server and the "
                  "gateway during one extra gateway run per row; share of each process's "
                  "samples; scheduler = `finish_task_switch` + `_raw_spin_unlock_irqrestore`, "
                  "the context-switch and wake-up paths):", "",
                  "| transport | tensor | process | kernel (scheduler) | gRPC + absl + protobuf | "
                  "libc, libstdc++ | quiver's own code | other | samples |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for pr in profiles:
            for proc_name in ("server", "gateway"):
                g = pr.get(proc_name)
                if not g:
                    continue
                label = "gRPC" if pr["protocol"] == "grpc" else "HTTP"
                lines.append(
                    f"| {label} | {pr['size']} | {proc_name} | {g['kernel']:.0f} % "
                    f"({g['scheduler']:.0f} %) | {g['grpc']:.0f} % | {g['libc']:.0f} % | "
                    f"{g['quiver']:.0f} % | {g['other']:.0f} % | {g['samples']} |")
    return lines


def dso_groups(data: pathlib.Path) -> dict:
    """Shares of `perf report` samples by library group, and the scheduler's symbols."""
    samples = []

    def report(sort: str) -> list[tuple[float, str]]:
        r = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", sort,
                            "--stdio", "-g", "none"], capture_output=True, text=True)
        rows = []
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith("# Samples:"):
                samples.append(line.split()[2])
            if line and not line.startswith("#") and "%" in line:
                pct, _, name = line.partition("%")
                try:
                    rows.append((float(pct), name.strip()))
                except ValueError:
                    pass
        return rows
    out = {"kernel": 0.0, "grpc": 0.0, "libc": 0.0, "quiver": 0.0, "other": 0.0}
    for pct, dso in report("dso"):
        if dso.startswith("[kernel"):
            out["kernel"] += pct
        elif any(k in dso for k in ("libgrpc", "libgpr", "libabsl", "libprotobuf", "libupb",
                                    "libaddress_sorting", "libre2", "libcares")):
            out["grpc"] += pct
        elif any(k in dso for k in ("libc.so", "libstdc++", "ld-linux", "libm.so", "[vdso]")):
            out["libc"] += pct
        elif dso == "quiver":
            out["quiver"] += pct
        else:
            out["other"] += pct
    out["scheduler"] = sum(pct for pct, sym in report("sym")
                           if sym.endswith("finish_task_switch.isra.0")
                           or sym.endswith("finish_task_switch")
                           or sym.endswith("_raw_spin_unlock_irqrestore"))
    out["samples"] = samples[0] if samples else "?"
    return out


def profile_run(o, proto, size, server: Proc, gateway: Proc, cmd: list[str]) -> dict:
    tag = f"{proto}-{size.replace(' ', '')}"
    recs = {}
    for name, p in (("server", server), ("gateway", gateway)):
        data = o.out / f"perf-{name}-{tag}.data"
        recs[name] = (data, subprocess.Popen(
            ["perf", "record", "-F", "999", "-g", "-o", str(data), "-p", str(p.pid), "--",
             "sleep", str(o.seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    res = run_perf(o, cmd)
    out = {"protocol": proto, "size": size, "run": res,
           "command": "perf record -F 999 -g -p <pid> -- sleep %g" % o.seconds}
    for name, (data, rec) in recs.items():
        rec.wait()
        if rec.returncode == 0 and data.exists():
            out[name] = dso_groups(data)
    return out


# --------------------------------------------------------------------------- 2. scan


class HealthSampler:
    """Samples a gateway's quiver_gateway_upstream_healthy gauges every `period` s while a
    run lasts: the share of samples in which each upstream was out (ejected or probing)."""

    def __init__(self, gateway: Proc, period: float = 0.2):
        import threading
        self.gateway, self.period = gateway, period
        self.samples, self.out = 0, {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop_event.wait(self.period):
            try:
                m = metrics(self.gateway.metrics)
            except OSError:
                continue
            self.samples += 1
            for k, v in m.items():
                if k.startswith("quiver_gateway_upstream_healthy{"):
                    url = k.split('"')[1]
                    self.out[url] = self.out.get(url, 0) + (v == 0)

    def finish(self) -> dict:
        self.stop_event.set()
        self.thread.join()
        return {u: n / max(1, self.samples) for u, n in self.out.items()}


def section_scan(o, procs: Processes, report: dict) -> list[str]:
    servers = [procs.start(serve_argv(o, ["identity_fp32", "simple_mlp"]),
                           o.out / f"scan-server{i + 1}.log", name=f"server{i + 1}")
               for i in range(max(o.upstreams))]
    loads = [("simple_mlp", "simple_mlp b64", {"batch": 64}),
             ("identity_fp32", "identity 16 x FP32", {"elements": 16})]
    runs = []
    report["scan_setup"] = {}
    gateways = {}  # (ejection, N) -> gateway; all run at once, so rounds interleave them
    for ejection in o.scan_latency_ejection:
        # As shipped (latency_factor 3) or with latency ejection off: on 2 shared cores a
        # descheduled server looks like a latency outlier (see the docs).
        config = o.out / f"scan-latency-ejection-{ejection}.yaml"
        config.write_text("gateway:\n  outlier: {latency_factor: %s}\n"
                          % ("3.0" if ejection == "on" else "0"))
        for n in o.upstreams:
            gateways[ejection, n] = procs.start(gateway_argv(o, servers[:n], config),
                                                o.out / f"scan-gateway{n}-{ejection}.log",
                                                name=f"gateway-{n}-{ejection}")
            wait_replicas(gateways[ejection, n], {"identity_fp32": n, "simple_mlp": n})
        report["scan_setup"][ejection] = {
            "config": config.read_text(),
            "gateways": [show(g.command) for (e, _), g in gateways.items() if e == ejection]}
    for g in gateways.values():  # warm-up
        for model, _, kw in loads:
            run_perf(o, perf_cmd(o, f"grpc://127.0.0.1:{g.grpc}", model,
                                 o.scan_concurrency, 1, **kw))
    for rnd in range(o.repeat):
        # Alternate the order of the N values and of the variants from round to round.
        order = [(e, n) for e in o.scan_latency_ejection for n in o.upstreams]
        if rnd % 2:
            order.reverse()
        for ejection, n in order:
            g = gateways[ejection, n]
            for model, label, kw in loads:
                before = [success_count(s, model) for s in servers]
                sampler = HealthSampler(g)
                res = run_perf(o, perf_cmd(o, f"grpc://127.0.0.1:{g.grpc}", model,
                                           o.scan_concurrency, o.seconds, **kw))
                out = sampler.finish()
                after = [success_count(s, model) for s in servers]
                res.update(upstreams=n, model=label, round=rnd, ejection=ejection,
                           loadavg=loadavg(), per_server=[y - x for x, y in zip(before, after)],
                           out_share=max(out.values(), default=0))
                log(f"  -> N={n} {label} (latency ejection {ejection}): "
                    f"{res.get('infer_per_s', 0):,.0f} infer/s, per server "
                    f"{res['per_server']}, an upstream out for {res['out_share']:.0%} "
                    "of the run")
                runs.append(res)
    for g in gateways.values():
        procs.stop(g)
    report["scan"] = runs
    for s in servers:
        procs.stop(s)

    head = " | ".join(f"{label} infer/s | vs N=1 | share per server (%)" for _, label, _ in loads)
    lines = [f"| latency ejection | upstreams | {head} | runs with an upstream ejected |",
             "|---|---|" + "---|---|---|" * len(loads) + "---|"]
    for ejection in o.scan_latency_ejection:
        base = {}
        for n in o.upstreams:
            cells, ejected = [], []
            for _, label, _ in loads:
                rs = [r for r in runs if r["upstreams"] == n and r["model"] == label
                      and r["ejection"] == ejection and "error" not in r]
                tput = median([r["infer_per_s"] for r in rs])
                base.setdefault(label, tput)
                total = sum(sum(r["per_server"][:n]) for r in rs) or 1
                shares = [sum(r["per_server"][i] for r in rs) / total * 100 for i in range(n)]
                cells.append(f"{fmt(tput)} | {fmt(tput / base[label] if tput and base[label] else None, 2)} | "
                             f"{' / '.join(f'{x:.0f}' for x in shares)}")
                ejected.append(f"{sum(r['out_share'] > 0 for r in rs)} of {len(rs)}")
            lines.append(f"| {ejection} | {n} | {' | '.join(cells)} | {' + '.join(ejected)} |")
    lines += ["", "Share per server: each server's success count (its statistics extension) "
              "over all rounds, / the sum over the N servers. Runs with an upstream ejected: "
              "quiver_gateway_upstream_healthy sampled every 0.2 s on the gateway's metrics "
              "port read 0 for some upstream at least once (simple_mlp + identity)."]
    return lines


# --------------------------------------------------------------------------- 3. fairness


def write_fairness_config(path: pathlib.Path, capacity: int, tenants: bool):
    text = f"gateway:\n  upstream_max_in_flight: {capacity}\n"
    if tenants:
        text += "tenants:\n" + "".join(
            f"  - name: {name}\n    token: {token}\n    weight: 1.0\n"
            for name, token in TENANT_TOKENS.items())
    path.write_text(text)


def section_fairness(o, procs: Processes, report: dict) -> list[str]:
    server = procs.start(serve_argv(o, ["identity_fp32", "simple_mlp"]),
                         o.out / "fair-server.log", name="fair-server")
    cfg_t, cfg_f = o.out / "fair-tenants.yaml", o.out / "fair-fifo.yaml"
    write_fairness_config(cfg_t, o.capacity, tenants=True)
    write_fairness_config(cfg_f, o.capacity, tenants=False)
    try:
        tenants_gw = procs.start(gateway_argv(o, [server], cfg_t), o.out / "fair-gateway.log",
                                 name="gateway-tenants")
    except RuntimeError as e:
        return [f"Skipped: the gateway did not start with a `tenants:` section ({e}); this "
                "quiver has no tenants yet."]
    fifo_gw = procs.start(gateway_argv(o, [server], cfg_f), o.out / "fair-fifo-gateway.log",
                          name="gateway-fifo")
    wait_replicas(fifo_gw, {"simple_mlp": 1})
    code = http_status(tenants_gw.http, "/v2/models/simple_mlp")
    report["fairness_no_token_status"] = code
    if code != 401:
        procs.stop(tenants_gw)
        procs.stop(fifo_gw)
        procs.stop(server)
        return [f"Skipped: this quiver has no tenants yet (a request to a gateway with a "
                f"`tenants:` section but without a token was answered {code}, not 401)."]
    wait_replicas(tenants_gw, {"simple_mlp": 1})
    greedy_c, polite_c = o.polite_concurrency * 10, o.polite_concurrency
    runs = []
    for rnd in range(o.repeat):
        order = ["tenants", "fifo"] if rnd % 2 == 0 else ["fifo", "tenants"]
        for kind in order:
            g = tenants_gw if kind == "tenants" else fifo_gw
            url = f"grpc://127.0.0.1:{g.grpc}"
            cmds = {
                "greedy": perf_cmd(o, url, "simple_mlp", greedy_c, o.seconds, batch=64,
                                   token=TENANT_TOKENS["greedy"] if kind == "tenants" else None),
                "polite": perf_cmd(o, url, "simple_mlp", polite_c, o.seconds, batch=64,
                                   token=TENANT_TOKENS["polite"] if kind == "tenants" else None),
            }
            m0 = metrics(g.metrics)
            for name, cmd in cmds.items():
                log(f"  {kind}: " + show(cmd))
            ps = {name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True) for name, cmd in cmds.items()}
            out = {}
            for name, p in ps.items():
                stdout, stderr = p.communicate(timeout=o.seconds * 3 + 120)
                out[name] = parse_perf(stdout, p.returncode, stderr)
                out[name]["command"] = show(cmds[name])
            m1 = metrics(g.metrics)
            row = {"kind": kind, "round": rnd, "loadavg": loadavg(), **out}
            if all("error" not in out[k] for k in out):
                done = {k: out[k]["requests"] for k in out}
                row["polite_share"] = done["polite"] / max(1, sum(done.values()))
                if kind == "tenants":
                    key = 'quiver_gateway_tenant_requests_total{{tenant="{}",outcome="admitted"}}'
                    adm = {k: m1.get(key.format(k), 0) - m0.get(key.format(k), 0) for k in done}
                    row["admitted"] = adm
                log(f"  -> {kind}: polite {done['polite']}, greedy {done['greedy']}, polite "
                    f"share {row['polite_share']:.1%}")
            else:
                log(f"  -> FAILED: {out}")
            runs.append(row)
    report["fairness"] = runs
    procs.stop(tenants_gw)
    procs.stop(fifo_gw)
    procs.stop(server)

    lines = ["| gateway | greedy: concurrency, completed req/s | polite: concurrency, completed "
             "req/s | polite share of completed requests (rounds) | polite share of admitted "
             "(gateway metrics) | polite p50 ms | greedy p50 ms |",
             "|---|---|---|---|---|---|---|"]
    verdict = None
    for kind, label in [("tenants", "2 tenants, weight 1 each (WFQ)"),
                        ("fifo", "no tenants: admission is pass-through, every request "
                                 "goes to the server, whose queue is FIFO")]:
        rs = [r for r in runs if r["kind"] == kind and "polite_share" in r]
        if not rs:
            continue
        share = median([r["polite_share"] for r in rs])
        if kind == "tenants":
            verdict = share
        rounds = " ".join(f"{r['polite_share'] * 100:.0f}" for r in rs)
        adm = median([r["admitted"]["polite"] / max(1, sum(r["admitted"].values()))
                      for r in rs if r.get("admitted")])
        lines.append(
            f"| {label} | {greedy_c}, {fmt(median([r['greedy']['infer_per_s'] / 64 for r in rs]))} | "
            f"{polite_c}, {fmt(median([r['polite']['infer_per_s'] / 64 for r in rs]))} | "
            f"**{fmt(share * 100, 1, ' %')}** ({rounds}) | "
            f"{fmt(adm * 100 if adm is not None else None, 1, ' %')} | "
            f"{fmt(median([r['polite']['p50_us'] / 1000 for r in rs]), 1)} | "
            f"{fmt(median([r['greedy']['p50_us'] / 1000 for r in rs]), 1)} |")
    if verdict is not None:
        lines += ["", "| goal | measured (median of rounds) | result |", "|---|---|---|",
                  f"| polite tenant >= 40 % of completed requests | {verdict * 100:.1f} % | "
                  f"{'met' if verdict >= 0.40 else 'MISSED'} |"]
    return lines


# --------------------------------------------------------------------------- 4. analysis


def has_up(o) -> bool:
    return subprocess.run([str(o.quiver), "up", "--help"], capture_output=True).returncode == 0


def section_analysis(o, procs: Processes, report: dict) -> list[str]:
    files = json.loads(subprocess.run(
        [str(o.quiver_src), "generate", "--preset", o.preset, "--out", str(o.data), "--json",
         "--no-progress"], capture_output=True, text=True, check=True).stdout)
    h5 = [e["h5"] for e in files]
    # Each user reads every file --passes times (one process, one connection): long enough
    # that process start-up and the first metadata calls do not dominate.
    inputs = [a for _ in range(o.passes) for f in h5 for a in ("-i", f)]
    taggers = {"emj_gnn": 2, "emj_dnn": 1, "emj_event": 1}
    if has_up(o):
        up = procs.start([str(o.quiver), "up", "--http-port", "0", "--grpc-port", "0",
                          "--metrics-port", "0", "--log-dir", str(o.out / "up-logs")],
                         o.out / "up.log", name="quiver up")
        more = up.more_lines("Ctrl-C")
        report["analysis_facility"] = {"command": show(up.command), "printed": up.lines + more}
        gateway, how = up, "`quiver up` (the embedded deploy/facility.yaml)"
        stop = [up]
    else:
        s1 = procs.start(serve_argv(o, ["emj_gnn", "emj_dnn"]), o.out / "an-s1.log", name="s1")
        s2 = procs.start(serve_argv(o, ["emj_gnn", "emj_event"]), o.out / "an-s2.log", name="s2")
        gateway = procs.start(gateway_argv(o, [s1, s2]), o.out / "an-gateway.log",
                              name="an-gateway")
        how = ("`quiver serve` s1 (emj_gnn, emj_dnn) + s2 (emj_gnn, emj_event) + "
               "`quiver gateway` over both, started by this script (this quiver has no `up`)")
        report["analysis_facility"] = {"commands": [show(p.command) for p in (s1, s2, gateway)]}
        stop = [gateway, s2, s1]
    wait_replicas(gateway, taggers)
    url = f"grpc://127.0.0.1:{gateway.grpc}"
    # The reference: one user straight to one `quiver serve` with all three taggers (idle
    # while the facility is measured, and the other way round).
    ref = procs.start(serve_argv(o, list(taggers)), o.out / "an-direct.log", name="direct")
    stop.insert(0, ref)
    direct_url = f"grpc://127.0.0.1:{ref.grpc}"
    adir = o.out / "analysis"
    adir.mkdir(exist_ok=True)

    def short_analyze(cmd: str) -> str:  # the inputs once, not o.passes x len(h5) times
        return cmd.replace(" ".join(inputs), f"<{len(h5)} files x {o.passes}: "
                           f"{' '.join(inputs[:2 * len(h5)])}>")

    def analyze(users: int, rnd: int, target: str = url, tag: str = "") -> dict:
        cmds = [[str(o.quiver), "analyze", *inputs, "-u", target, "--mode", "columnar",
                 "-o", str(adir / f"users{users}{tag}-r{rnd}-u{i}.json")] for i in range(users)]
        log(f"  {users} user(s): " + short_analyze(show(" ".join(cmds[0]))))
        t0 = time.monotonic()
        ps = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
              for c in cmds]
        errs = [p.communicate(timeout=900)[1] for p in ps]
        wall = time.monotonic() - t0
        if any(p.returncode for p in ps):
            return {"error": " | ".join(e.strip()[-200:] for e in errs if e.strip())}
        timing = [json.loads(pathlib.Path(c[-1]).read_text())["timing"] for c in cmds]
        events = sum(t["events_processed"] for t in timing)
        # Total: all users' events over the longest analysis wall time (they start together;
        # process start-up, which the analysis' own wall time leaves out, is in wall_s).
        res = {"users": users, "round": rnd, "wall_s": wall, "events": events, "path": tag,
               "per_user": [t["events_per_s"] for t in timing],
               "total": events / max(t["wall_s"] for t in timing),
               "failed": sum(t["events_failed"] for t in timing), "loadavg": loadavg(),
               "command": short_analyze(show(" ".join(cmds[0])))}
        log(f"  -> {users} user(s): per user {[round(x) for x in res['per_user']]} events/s, "
            f"total {res['total']:,.0f} events/s")
        return res

    analyze(1, -1)  # warm-up (TorchScript's profiling executor, connections)
    analyze(1, -1, direct_url, "-direct")
    runs = []
    for rnd in range(o.repeat):
        order = list(o.users) if rnd % 2 == 0 else list(reversed(o.users))
        for users in order:
            runs.append(analyze(users, rnd))
        runs.append(analyze(1, rnd, direct_url, "-direct"))
    report["analysis"] = runs
    for p in stop:
        procs.stop(p)

    per_run = runs[0]["events"] // runs[0]["users"] if runs and "events" in runs[0] else "?"
    lines = [f"Facility: {how}; each user analyses the {len(h5)} files of the `{o.preset}` "
             f"preset {o.passes} times ({per_run} events per user and run).", "",
             "| users | events/s per user (median) | total events/s (all users' events / "
             "longest analysis wall) | "
             "total vs 1 user | per user vs 1 user | failed events |", "|---|---|---|---|---|---|"]
    base = None
    for users in o.users:
        rs = [r for r in runs if r.get("users") == users and r.get("path") == ""
              and "error" not in r]
        if not rs:
            continue
        per_user = median([x for r in rs for x in r["per_user"]])
        total = median([r["total"] for r in rs])
        if base is None:
            base = (per_user, total)
        lines.append(f"| {users} | {fmt(per_user)} | {fmt(total)} | {fmt(total / base[1], 2)} | "
                     f"{fmt(per_user / base[0], 2)} | {sum(r['failed'] for r in rs)} |")
    rs = [r for r in runs if r.get("path") == "-direct" and "error" not in r]
    if rs and base:
        per_user = median([x for r in rs for x in r["per_user"]])
        lines.append(f"| 1, direct to one `quiver serve` (all three taggers, no gateway) | "
                     f"{fmt(per_user)} | {fmt(per_user)} | {fmt(per_user / base[1], 2)} | "
                     f"{fmt(per_user / base[0], 2)} | {sum(r['failed'] for r in rs)} |")
    failed = [r["error"] for r in runs if "error" in r]
    if failed:
        lines += ["", f"{len(failed)} run(s) FAILED: " + " / ".join(failed)]
    return lines




# --------------------------------------------------------------------------- main


def git_commit(tree: pathlib.Path = ROOT) -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=tree, capture_output=True, text=True).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) or "unknown"
    except OSError:
        return "unknown"


def cpu_name() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main():
    global QUIVER_COPY
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quiver", default=os.environ.get("QUIVER", str(ROOT / "build" / "quiver")),
                    help="the quiver program (default: $QUIVER or build/quiver); copied once, "
                         "so a rebuild during the run changes nothing")
    ap.add_argument("--models", default=str(ROOT / "models"))
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--repeat", type=int, default=5, help="rounds per measurement (default 5)")
    ap.add_argument("--seconds", type=float, default=2.0,
                    help="measurement window of each quiver perf run (default 2)")
    ap.add_argument("--protocols", default="grpc,http")
    ap.add_argument("--sizes", default=",".join(SIZES), help="of: " + ", ".join(SIZES))
    ap.add_argument("--concurrency", type=int, default=4, help="overhead section (default 4)")
    ap.add_argument("--server-cpus", default="0", help="overhead section: taskset of the "
                    "server (default 0; '' = unpinned)")
    ap.add_argument("--gateway-cpus", default="", help="overhead section: taskset of the "
                    "gateway (default '' = unpinned, both CPUs)")
    ap.add_argument("--client-cpus", default="1", help="overhead section: taskset of quiver "
                    "perf (default 1)")
    ap.add_argument("--profile", action="store_true",
                    help="overhead section: one more gateway run per row under `perf record` "
                         "of the server and the gateway; a table of where their CPU time goes")
    ap.add_argument("--upstreams", default="1,2,3,4", help="scan section")
    ap.add_argument("--scan-concurrency", type=int, default=8)
    ap.add_argument("--scan-latency-ejection", default="on,off",
                    help="scan: run with the gateway's latency outlier ejection on (as "
                         "shipped), off (outlier.latency_factor 0), or both (default on,off)")
    ap.add_argument("--capacity", type=int, default=2,
                    help="fairness: gateway.upstream_max_in_flight (default 2)")
    ap.add_argument("--polite-concurrency", type=int, default=2,
                    help="fairness: the polite tenant's; the greedy one sends 10x (default 2)")
    ap.add_argument("--users", default="1,2,4", help="analysis section")
    ap.add_argument("--preset", default="testbed", help="analysis data (quiver generate "
                    "--preset; cached in data/)")
    ap.add_argument("--data", default=str(ROOT / "data"))
    ap.add_argument("--passes", type=int, default=3,
                    help="analysis: each user reads the files this many times (default 3)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "gateway"))
    o = ap.parse_args()
    o.sections = [s for s in o.sections.split(",") if s]
    for s in o.sections:
        if s not in SECTIONS:
            ap.error(f"unknown section {s}")
    o.protocols = o.protocols.split(",")
    o.sizes = o.sizes.split(",")
    o.upstreams = [int(x) for x in o.upstreams.split(",")]
    o.users = [int(x) for x in o.users.split(",")]
    o.scan_latency_ejection = o.scan_latency_ejection.split(",")
    if not set(o.scan_latency_ejection) <= {"on", "off"}:
        ap.error("--scan-latency-ejection: on, off or on,off")
    o.out = pathlib.Path(o.out)
    o.out.mkdir(parents=True, exist_ok=True)
    o.models = pathlib.Path(o.models).resolve()
    o.quiver_src = pathlib.Path(o.quiver).resolve()
    if not o.quiver_src.is_file():
        raise SystemExit(f"bench-gateway: {o.quiver_src} missing; build first")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    o.quiver = tmp / "quiver"
    shutil.copy2(o.quiver_src, o.quiver)
    QUIVER_COPY = o.quiver
    o.data = pathlib.Path(o.data)

    procs = Processes()

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    report = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
              "commit": git_commit(), "quiver": str(o.quiver_src),
              # The checkout the program was built in (build/quiver -> its parent's parent).
              "quiver_tree_commit": git_commit(o.quiver_src.parent.parent), "cpu": cpu_name(),
              "cpus": os.cpu_count(), "loadavg_start": loadavg(), "argv": sys.argv[1:]}
    md = [f"Run {report['started']}, script at commit {report['commit']}, {o.quiver_src} "
          f"built from a tree at {report['quiver_tree_commit']} (HEAD when the run started); "
          f"{report['cpu']}, {report['cpus']} CPUs; load average at start {report['loadavg_start']}; "
          f"{o.repeat} rounds, {o.seconds:g} s windows.", ""]
    titles = {
        "overhead": (f"Gateway in the path vs direct: quiver perf at concurrency "
                     f"{o.concurrency}; server on CPUs {o.server_cpus or 'any'}, gateway on "
                     f"{o.gateway_cpus or 'any'}, client on {o.client_cpus or 'any'}; the "
                     f"gateway's upstream is the server's gRPC port"),
        "scan": (f"1..{max(o.upstreams)} upstreams (a functional scan on {os.cpu_count()} CPUs: "
                 f"every server shares them), quiver perf over gRPC at concurrency "
                 f"{o.scan_concurrency}, nothing pinned"),
        "fairness": (f"Fairness: simple_mlp batch 64 over gRPC, one upstream, "
                     f"gateway.upstream_max_in_flight = {o.capacity}; greedy at 10x the polite "
                     f"tenant's concurrency, both for the same {o.seconds:g} s window"),
        "analysis": "The test bed's analysis (`quiver analyze --mode columnar`, gRPC) from "
                    "concurrent users, nothing pinned",
    }
    funcs = {"overhead": section_overhead, "scan": section_scan,
             "fairness": section_fairness, "analysis": section_analysis}
    try:
        for s in o.sections:
            log(f"section {s} (load average {loadavg()})")
            la0 = loadavg()
            try:
                lines = funcs[s](o, procs, report)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                log(f"section {s} FAILED: {e}")
                lines = [f"FAILED: {e}"]
            finally:
                procs.stop_all()
            md += [f"### {titles[s]}", "", f"Load average before/after: {la0} / {loadavg()}.",
                   "", *lines, ""]
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        procs.stop_all()
        raise SystemExit(130)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    report["loadavg_end"] = loadavg()
    (o.out / "gateway.json").write_text(json.dumps(report, indent=1))
    text = "\n".join(md)
    (o.out / "gateway.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
