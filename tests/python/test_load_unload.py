"""Model load/unload while traffic runs, over the network (issue 3, item 7).

A `quiver serve` in explicit model-control mode serves model A and, now and then, model B.
Client threads (tritonclient HTTP and gRPC) infer on A and on B without pause while the
test's main thread loads and unloads B and reloads A over the repository API, as a Triton
user would. Expected, as with Triton:

- every request on A succeeds with the right output, including during A's reloads (a load
  of a loaded model replaces it without a gap; in-flight requests finish on the old one);
- every request on B either succeeds with the right output or fails cleanly with the
  "unknown / not found / not ready / unavailable" kind of error: no hang, crash or wrong data.

There are no sleeps: each control step waits until the A clients have completed a number
of further requests, so the steps always overlap traffic, and the test is bounded by
request counts (plus generous timeouts that turn a hang into a failure).
"""

import re
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import write_repository

CYCLES = 24  # load B / unload B cycles; A is reloaded every third cycle
STEP_REQUESTS = 12  # A requests that must complete after each control step
WAIT_S = 30  # bound on any single wait: longer means something hangs
CALL_TIMEOUT_S = 15  # per request, so that a hung call fails instead of blocking

MODEL_A = "model_a"
MODEL_B = "model_b"

CONFIG_A = """
name: "model_a"
backend: "identity"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
"""

CONFIG_B = """
name: "model_b"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: 100 }
"""

# What a request on B may answer while B comes and goes (ours and Triton's wording).
B_ERROR_TEXT = re.compile(
    r"unknown model|not found|not ready|no ready version|no available versions|"
    r"unavailable|being reloaded|is shutting down|has no instances",
    re.IGNORECASE)
B_ERROR_STATUS = {"400", "404", "503", "StatusCode.NOT_FOUND", "StatusCode.UNAVAILABLE",
                  "StatusCode.INVALID_ARGUMENT"}


class Progress:
    """Counts completed A requests; lets the controller wait for N more."""

    def __init__(self):
        self._cv = threading.Condition()
        self._count = 0

    def add(self):
        with self._cv:
            self._count += 1
            self._cv.notify_all()

    def wait_for_more(self, n, stop):
        with self._cv:
            target = self._count + n
            ok = self._cv.wait_for(lambda: self._count >= target or stop.is_set(), WAIT_S)
        assert ok, f"A requests stalled: fewer than {n} completed in {WAIT_S} s"


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []  # (where, text)
        self.clean_errors = 0

    def record_ok(self):
        with self.lock:
            self.ok += 1

    def record_failure(self, where, text):
        with self.lock:
            self.failures.append((where, text))

    def record_clean_error(self):
        with self.lock:
            self.clean_errors += 1


def make_client(protocol, server):
    if protocol == "http":
        return httpclient.InferenceServerClient(
            server.http_url, connection_timeout=CALL_TIMEOUT_S, network_timeout=CALL_TIMEOUT_S)
    return grpcclient.InferenceServerClient(server.grpc_url)


def infer(protocol, client, model, arr):
    module = httpclient if protocol == "http" else grpcclient
    dtype = "FP32" if arr.dtype == np.float32 else "INT32"
    tensor = module.InferInput("INPUT0", list(arr.shape), dtype)
    tensor.set_data_from_numpy(arr)
    if protocol == "http":
        result = client.infer(model, [tensor])
    else:
        result = client.infer(model, [tensor], client_timeout=CALL_TIMEOUT_S)
    return result.as_numpy("OUTPUT0")


def worker_a(protocol, server, index, stop, progress, tally):
    """Infers on A until stopped; every failure counts."""
    rng = np.random.default_rng(1000 + index)
    client = make_client(protocol, server)
    try:
        while not stop.is_set():
            arr = rng.standard_normal(int(rng.integers(1, 64))).astype(np.float32)
            try:
                out = infer(protocol, client, MODEL_A, arr)
            except Exception as e:  # noqa: BLE001 - any failure on A is a test failure
                tally.record_failure(f"{protocol} A", repr(e))
                continue
            if out is None or not np.array_equal(out, arr):
                tally.record_failure(f"{protocol} A", f"wrong output {out!r} for {arr!r}")
            else:
                tally.record_ok()
            progress.add()
    finally:
        client.close()


def worker_b(protocol, server, index, stop, tally):
    """Infers on B until stopped; success must be right, errors must be the clean kind."""
    rng = np.random.default_rng(2000 + index)
    client = make_client(protocol, server)
    try:
        while not stop.is_set():
            arr = rng.integers(-1000, 1000, size=(int(rng.integers(1, 9)), 4), dtype=np.int32)
            try:
                out = infer(protocol, client, MODEL_B, arr)
            except InferenceServerException as e:
                text, status = e.message() or "", str(e.status())
                if B_ERROR_TEXT.search(text) and status in B_ERROR_STATUS:
                    tally.record_clean_error()
                else:
                    tally.record_failure(f"{protocol} B", f"[{status}] {text}")
                continue
            except Exception as e:  # noqa: BLE001 - timeouts, resets: never acceptable
                tally.record_failure(f"{protocol} B", repr(e))
                continue
            if out is None or not np.array_equal(out, arr):
                tally.record_failure(f"{protocol} B", f"wrong output {out!r} for {arr!r}")
            else:
                tally.record_ok()
    finally:
        client.close()


@pytest.fixture
def explicit_server(start_server, tmp_path):
    repo = write_repository(tmp_path / "repo", {MODEL_A: CONFIG_A, MODEL_B: CONFIG_B})
    proc = start_server(["--model-repository", repo, "--model-control-mode", "explicit",
                         "--load-model", MODEL_A, "--http-port", "0", "--grpc-port", "0"])
    yield proc, repo
    assert proc.stop() == 0, f"quiver serve did not exit cleanly; log:\n{proc.log()}"


def test_load_unload_while_traffic_runs(explicit_server):
    server, repo = explicit_server
    stop = threading.Event()
    progress = Progress()
    a_tally, b_tally = Tally(), Tally()
    threads = [threading.Thread(target=worker_a, args=(p, server, i, stop, progress, a_tally))
               for i, p in enumerate(["http", "http", "grpc", "grpc"])]
    threads += [threading.Thread(target=worker_b, args=(p, server, i, stop, b_tally))
                for i, p in enumerate(["http", "grpc"])]
    for t in threads:
        t.start()

    control = {"http": make_client("http", server), "grpc": make_client("grpc", server)}
    config_a = repo / MODEL_A / "config.pbtxt"
    try:
        progress.wait_for_more(STEP_REQUESTS, stop)  # traffic is flowing
        for cycle in range(CYCLES):
            protocol = "http" if cycle % 2 == 0 else "grpc"
            client = control[protocol]
            client.load_model(MODEL_B)
            assert client.is_model_ready(MODEL_B), f"cycle {cycle}: B not ready after load"
            progress.wait_for_more(STEP_REQUESTS, stop)
            if cycle % 3 == 0:
                # Reload A. Every other time its config changes (a comment), so the reload
                # really replaces the loaded model; otherwise it is Triton's no-op reload.
                if cycle % 2 == 0:
                    config_a.write_text(f"# revision {cycle}\n" + CONFIG_A)
                client.load_model(MODEL_A)
                assert client.is_model_ready(MODEL_A), f"cycle {cycle}: A not ready"
                progress.wait_for_more(STEP_REQUESTS, stop)
            client.unload_model(MODEL_B)
            assert not client.is_model_ready(MODEL_B), f"cycle {cycle}: B ready after unload"
            progress.wait_for_more(STEP_REQUESTS, stop)
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT_S)
        for c in control.values():
            c.close()
    print(f"A: {a_tally.ok} ok, {len(a_tally.failures)} failed; B: {b_tally.ok} ok, "
          f"{b_tally.clean_errors} clean errors, {len(b_tally.failures)} bad")
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"client threads did not finish (hung request?): {hung}"

    assert not a_tally.failures, (f"{len(a_tally.failures)} failed requests on A "
                                  f"(of {a_tally.ok + len(a_tally.failures)}); first: "
                                  f"{a_tally.failures[:3]}")
    assert a_tally.ok >= (2 * CYCLES + 1) * STEP_REQUESTS
    assert not b_tally.failures, (f"{len(b_tally.failures)} bad answers on B; first: "
                                  f"{b_tally.failures[:3]}")
    # B was up about half of the time: it must have served, and refused, some requests.
    assert b_tally.ok > 0
    assert b_tally.clean_errors > 0
    assert server.proc.poll() is None, "the server died"
