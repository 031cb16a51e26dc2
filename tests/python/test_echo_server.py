"""Smoke test of quiver_echo_server (issue 9, item 6: the transport floor of scripts/bench-echo).

It serves identity_fp32 without an engine: one gRPC and one HTTP inference through NVIDIA's
tritonclient must come back with the values sent, and SIGTERM must stop it with exit code 0.
The binary is build/quiver_echo_server, next to QUIVER_BINARY (override with
QUIVER_ECHO_SERVER_BINARY).
"""

import os
import pathlib
import select
import signal
import subprocess
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import QUIVER

ECHO = pathlib.Path(os.environ.get("QUIVER_ECHO_SERVER_BINARY",
                                   QUIVER.parent / "quiver_echo_server"))
READY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 30.0


@pytest.fixture
def echo_server(tmp_path):
    """A running quiver_echo_server on ephemeral ports: {"http": port, "grpc": port}."""
    if not ECHO.is_file():
        pytest.fail(f"{ECHO} not found: build it (cmake --build build --target "
                    "quiver_echo_server) or set QUIVER_ECHO_SERVER_BINARY")
    log = open(tmp_path / "echo.log", "wb")
    proc = subprocess.Popen([str(ECHO), "--http-port", "0", "--grpc-port", "0"],
                            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    try:
        buf = b""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no QUIVER_READY line within {READY_TIMEOUT_S} s"
            if select.select([proc.stdout], [], [], left)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"quiver_echo_server exited with {proc.wait()} before it was ready"
                buf += chunk
        words = buf.split(b"\n")[0].decode().split()
        assert words[0] == "QUIVER_READY", words
        yield {k: int(v) for k, v in (w.split("=") for w in words[1:])}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        log.close()


def test_echoes_over_grpc_and_http(echo_server):
    x = np.random.default_rng(7).random((1, 16), dtype=np.float32)

    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{echo_server['grpc']}")
    assert grpc.is_server_ready()
    assert grpc.is_model_ready("identity_fp32")
    meta = grpc.get_model_metadata("identity_fp32", as_json=True)
    assert [i["name"] for i in meta["inputs"]] == ["INPUT0"]
    assert [o["name"] for o in meta["outputs"]] == ["OUTPUT0"]
    grpc_in = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
    grpc_in.set_data_from_numpy(x)
    result = grpc.infer("identity_fp32", [grpc_in])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)

    http = httpclient.InferenceServerClient(f"127.0.0.1:{echo_server['http']}")
    assert http.is_server_ready()
    config = http.get_model_config("identity_fp32")
    assert config["max_batch_size"] == 0
    assert config["input"][0]["dims"] == [-1]
    http_in = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    http_in.set_data_from_numpy(x, binary_data=True)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)
    result = http.infer("identity_fp32", [http_in], outputs=[out])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)

    # Both requests were counted (the bench divides server CPU time by this count).
    stats = http.get_inference_statistics("identity_fp32")
    assert int(stats["model_stats"][0]["inference_stats"]["success"]["count"]) == 2


def test_unknown_model_and_json_tensors_are_refused(echo_server):
    http = httpclient.InferenceServerClient(f"127.0.0.1:{echo_server['http']}")
    x = np.zeros(4, dtype=np.float32)
    inp = httpclient.InferInput("INPUT0", [4], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    with pytest.raises(Exception, match="unknown model"):
        http.infer("no_such_model", [inp])
    inp.set_data_from_numpy(x, binary_data=False)  # JSON data: not what the echo serves
    with pytest.raises(Exception, match="binary tensors only"):
        http.infer("identity_fp32", [inp])
