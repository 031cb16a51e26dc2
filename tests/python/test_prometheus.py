"""End-to-end: a real Prometheus (Debian's /usr/bin/prometheus) scrapes `quiver serve`.

The test starts `quiver serve` (identity_fp32 only) on ephemeral ports, then Prometheus on
127.0.0.1:0 (it logs the port it bound) with its storage in a temporary directory and a
1 s scrape interval pointed at the server's metrics port. It sends a known number of
inferences, then polls Prometheus's HTTP API until the scraped values equal that number,
bounded by a deadline (no fixed sleeps). Prometheus's own text parser thereby checks the
exposition format, including the quiver_* histograms. Both processes are always stopped.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import ROOT

PROMETHEUS = pathlib.Path(os.environ.get("PROMETHEUS_BINARY", "/usr/bin/prometheus"))
START_TIMEOUT_S = 60.0   # until Prometheus listens and reports ready
SCRAPE_TIMEOUT_S = 90.0  # until the scraped values appear (first scrape: ~6 s after start)
STOP_TIMEOUT_S = 30.0
MODEL = "identity_fp32"
REQUESTS = 7

pytestmark = pytest.mark.skipif(
    not PROMETHEUS.is_file(),
    reason=f"{PROMETHEUS} not found (Debian package 'prometheus', installed by scripts/setup)")

LISTENING = re.compile(rb'msg="Listening on" address=127\.0\.0\.1:(\d+)')


class Prometheus:
    """A Prometheus process on 127.0.0.1:<ephemeral>, scraping `targets` every second."""

    def __init__(self, workdir: pathlib.Path, targets):
        self.workdir = workdir
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: quiver\n"
            "    metrics_path: /metrics\n"
            "    static_configs:\n"
            f"      - targets: [{', '.join(json.dumps(t) for t in targets)}]\n")
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}",
             f"--storage.tsdb.path={workdir / 'data'}",
             "--web.listen-address=127.0.0.1:0"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.port = None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self):
        """Waits for the port in the log, then for /-/ready; fails on exit or timeout."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.port is None:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited with {self.proc.returncode}; log:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus did not listen within {START_TIMEOUT_S} s; "
                            f"log:\n{self.log()}")
            m = LISTENING.search(self.log_path.read_bytes())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)  # polling the log file for the bound port
        while True:
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready within {START_TIMEOUT_S} s; log:\n{self.log()}")
            time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params):
        """GET /api/v1/<path> and return its `data` (asserting status "success")."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.url(f"/api/v1/{path}{query}"), timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str):
        """The instant vector of `expr` as a list of (labels, float value)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(s["metric"], float(s["value"][1])) for s in data["result"]]

    def targets_report(self) -> str:
        try:
            return json.dumps(self.api("targets")["activeTargets"], indent=1)
        except Exception as e:  # diagnostics only
            return f"(targets unavailable: {e})"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        return rc


@pytest.fixture
def prometheus_factory(tmp_path):
    """Starts Prometheus processes for a test; always stops them."""
    started = []

    def start(targets):
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        p = Prometheus(workdir, targets)
        started.append(p)
        return p.wait_ready()

    yield start
    for p in started:
        p.stop()


def infer_http(port: int, values):
    """One KServe v2 JSON inference on identity_fp32; returns the output data."""
    body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32",
                                   "shape": [len(values)], "data": values}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        return json.load(r)["outputs"][0]["data"]


def test_prometheus_scrapes_counters_and_histograms(start_server, prometheus_factory):
    server = start_server(["--model-repository", ROOT / "models", "--model-control-mode",
                           "explicit", "--load-model", MODEL, "--http-port", "0",
                           "--grpc-port", "0"])
    try:
        for i in range(REQUESTS):
            assert infer_http(server.http_port, [float(i), 2.0]) == [float(i), 2.0]

        prom = prometheus_factory([f"127.0.0.1:{server.metrics_port}"])
        sel = f'model="{MODEL}",version="1"'
        expected = {
            f"nv_inference_request_success{{{sel}}}": REQUESTS,
            f"nv_inference_exec_count{{{sel}}}": REQUESTS,
            f"quiver_request_duration_us_count{{{sel}}}": REQUESTS,
            f'quiver_request_duration_us_bucket{{{sel},le="+Inf"}}': REQUESTS,
            f"quiver_queue_duration_us_count{{{sel}}}": REQUESTS,
            # No batching: one execution per request.
            f"quiver_compute_infer_duration_us_count{{{sel}}}": REQUESTS,
        }
        seen = {}
        deadline = time.monotonic() + SCRAPE_TIMEOUT_S
        while True:
            for expr in expected:
                result = prom.query(expr)
                seen[expr] = result[0][1] if len(result) == 1 else result
            if seen == expected or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # polling Prometheus until the scrape lands
        assert seen == expected, (
            f"after {SCRAPE_TIMEOUT_S} s Prometheus has {seen}, expected {expected}; "
            f"targets:\n{prom.targets_report()}\nlog:\n{prom.log()}")

        # The scrape itself is healthy and the histogram is typed as one.
        assert prom.query('up{job="quiver"}')[0][1] == 1.0
        for family in ("quiver_request_duration_us", "quiver_queue_duration_us",
                       "quiver_compute_infer_duration_us"):
            meta = prom.api("metadata", metric=family)
            assert meta[family][0]["type"] == "histogram", meta
        buckets = prom.query(f"quiver_request_duration_us_bucket{{{sel}}}")
        les = sorted(float(labels["le"]) for labels, _ in buckets)
        assert les[0] == 50.0 and les[-2] == 10_000_000.0 and les[-1] == float("inf"), les
        # Cumulative: counts never decrease with le.
        by_le = sorted((float(labels["le"]), v) for labels, v in buckets)
        assert all(a[1] <= b[1] for a, b in zip(by_le, by_le[1:])), by_le

        # A quantile computed by Prometheus from the buckets: finite, positive microseconds.
        median = prom.query(
            f"histogram_quantile(0.5, quiver_request_duration_us_bucket{{{sel}}})")
        assert len(median) == 1, median
        assert 0.0 < median[0][1] <= 10_000_000.0, median
    finally:
        rc = server.stop()
        assert rc == 0, f"quiver serve exited with {rc}; log:\n{server.log()}"
