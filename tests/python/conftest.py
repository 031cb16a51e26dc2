"""Fixtures for the end-to-end tests: a real `quiver serve` process on ephemeral ports.

The server binary is build/quiver (override with QUIVER_BINARY). It serves the shipped
models/ plus a temporary second repository (which also exercises a repeated
--model-repository). The process is always stopped with SIGTERM and must exit 0.
"""

import os
import pathlib
import select
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# This checkout's python/ first (the .pth written by scripts/setup may name another clone).
sys.path.insert(0, str(ROOT / "python"))
QUIVER = pathlib.Path(os.environ.get("QUIVER_BINARY", ROOT / "build" / "quiver"))
READY_TIMEOUT_S = 60.0  # simple_mlp loads libtorch: a few seconds on a busy 2-core box
EXIT_TIMEOUT_S = 30.0

# Models of the temporary second repository: name -> config.pbtxt.
EXTRA_MODELS = {
    "identity_int32": """
name: "identity_int32"
backend: "identity"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ -1 ] } ]
""",
}


def write_repository(root: pathlib.Path, models: dict) -> pathlib.Path:
    """Writes a Triton-layout repository of config-only (identity) models."""
    for name, config in models.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(config)
    return root


class ServerProcess:
    """A running `quiver serve` (or `quiver gateway`, `command`): its ports, and a stop()
    that checks the exit code."""

    def __init__(self, args, log_path: pathlib.Path, command="serve"):
        if not QUIVER.is_file():
            pytest.fail(f"{QUIVER} not found: build it first (scripts/setup) or set QUIVER_BINARY")
        self.log_path = log_path
        self._log = open(log_path, "wb")
        args = [str(a) for a in args]
        if "--metrics-port" not in args:  # never the fixed default 8002 in tests
            args += ["--metrics-port", "0"]
        self.proc = subprocess.Popen(
            [str(QUIVER), command, *args],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL)
        self.ready_line = None
        self.fields = {}

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """Reads stdout until the QUIVER_READY line; fails on exit or after `timeout`."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"no QUIVER_READY line within {timeout} s; log:\n{self.log()}")
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:  # EOF: the server exited
                rc = self.proc.wait(timeout=EXIT_TIMEOUT_S)
                pytest.fail(f"server exited with {rc} before it was ready; log:\n{self.log()}")
            buf += chunk
        line, _, rest = buf.partition(b"\n")
        assert rest == b"", f"unexpected stdout after the ready line: {rest!r}"
        self.ready_line = line.decode()
        words = self.ready_line.split()
        assert words[0] == "QUIVER_READY", f"first stdout line is not QUIVER_READY: {line!r}"
        self.fields = dict(w.split("=", 1) for w in words[1:])
        return self

    @property
    def http_port(self) -> int:
        return int(self.fields["http"])

    @property
    def grpc_port(self) -> int:
        return int(self.fields["grpc"])

    @property
    def metrics_port(self) -> int:
        return int(self.fields["metrics"])

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def stop(self, sig=signal.SIGTERM) -> int:
        """Sends `sig`, waits (bounded) and returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not exit within {EXIT_TIMEOUT_S} s of {sig!r}")
        self.proc.stdout.close()
        self._log.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def extra_repository(tmp_path_factory):
    return write_repository(tmp_path_factory.mktemp("repo"), EXTRA_MODELS)


@pytest.fixture(scope="session")
def server(tmp_path_factory, extra_repository):
    """The shared server: models/ + the extra repository, HTTP and gRPC on port 0."""
    log = tmp_path_factory.mktemp("log") / "quiver-serve.log"
    proc = ServerProcess(
        ["--model-repository", ROOT / "models", "--model-repository", extra_repository,
         "--http-port", "0", "--grpc-port", "0"], log)
    try:
        proc.wait_ready()
        yield proc
    finally:
        rc = proc.stop(signal.SIGTERM)
        assert rc == 0, f"quiver serve exited with {rc} after SIGTERM; log:\n{proc.log()}"


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, server):
    """`quiver gateway` in front of the shared server (its gRPC port): clients pointed at it
    must not tell it from the server."""
    log = tmp_path_factory.mktemp("log") / "quiver-gateway.log"
    proc = ServerProcess(
        ["--upstream", f"grpc://{server.grpc_url}", "--http-port", "0", "--grpc-port", "0"],
        log, command="gateway")
    try:
        proc.wait_ready()
        yield proc
    finally:
        rc = proc.stop(signal.SIGTERM)
        assert rc == 0, f"quiver gateway exited with {rc} after SIGTERM; log:\n{proc.log()}"


@pytest.fixture
def start_server(tmp_path):
    """Factory for a test's own server (lifecycle and flag tests); stops what it started."""
    started = []

    def start(args, wait=True):
        proc = ServerProcess(args, tmp_path / f"quiver-serve-{len(started)}.log")
        started.append(proc)
        return proc.wait_ready() if wait else proc

    yield start
    for proc in started:
        proc.kill()
