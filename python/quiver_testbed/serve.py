"""Start a `quiver serve` on 127.0.0.1 ephemeral ports for a script, and stop it.

    with quiver_serve("/path/to/models") as server:
        server.grpc_url, server.http_url      # grpc://127.0.0.1:PORT, http://127.0.0.1:PORT

The binary: `binary=`, else $QUIVER_BINARY, else build/quiver of this checkout. The server
prints `QUIVER_READY http=.. grpc=.. metrics=..` once listening; this waits for that line
(no sleeps), and on exit sends SIGTERM and waits for the process.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import select
import signal
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, proc, fields):
        self.proc = proc
        self.http_port = int(fields["http"])
        self.grpc_port = int(fields["grpc"])

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@contextlib.contextmanager
def quiver_serve(models, binary=None, log=None, ready_timeout: float = 120.0):
    binary = pathlib.Path(binary or os.environ.get("QUIVER_BINARY", ROOT / "build" / "quiver"))
    log_file = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [str(binary), "serve", "--model-repository", str(models), "--http-port", "0",
         "--grpc-port", "0", "--metrics-port", "0", "--http-address", "127.0.0.1",
         "--grpc-address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + ready_timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"quiver serve not ready within {ready_timeout} s")
            if select.select([proc.stdout], [], [], left)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"quiver serve exited with {proc.wait()} before it was "
                                       f"ready" + (f"; log: {log}" if log else ""))
                buf += chunk
        words = buf.decode().split()
        if not words or words[0] != "QUIVER_READY":
            raise RuntimeError(f"unexpected first line from quiver serve: {buf!r}")
        yield Server(proc, dict(w.split("=", 1) for w in words[1:]))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        if log:
            log_file.close()
