"""`quiver gateway` in front of a real NVIDIA Triton server (issue 11, item 8).

Runs only where Triton is available; skipped (not failed) elsewhere:
- QUIVER_TEST_TRITON_URL=grpc://host:port (or http://host:port): an already running Triton
  serving this repository's models/ (identity_fp32 at least), or
- `tritonserver` on PATH: started here on models/, on the fixed ports given by
  QUIVER_TEST_TRITON_PORTS="http,grpc,metrics" (default 18000,18001,18002).
"""

import os
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import ROOT, ServerProcess

WAIT_S = 60


def _wait_port(port, deadline):
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def triton_url():
    url = os.environ.get("QUIVER_TEST_TRITON_URL")
    if url:
        yield url
        return
    binary = shutil.which("tritonserver")
    if not binary:
        pytest.skip("no Triton here: set QUIVER_TEST_TRITON_URL or put tritonserver on PATH")
    http_port, grpc_port, metrics_port = (
        int(p) for p in os.environ.get("QUIVER_TEST_TRITON_PORTS", "18000,18001,18002").split(","))
    proc = subprocess.Popen(
        [binary, "--model-repository", str(ROOT / "models"), "--http-port", str(http_port),
         "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
         "--exit-on-error=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not _wait_port(grpc_port, time.monotonic() + WAIT_S):
            pytest.fail("tritonserver did not listen within 60 s")
        yield f"grpc://127.0.0.1:{grpc_port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def triton_gateway(tmp_path_factory, triton_url):
    proc = ServerProcess(["--upstream", triton_url, "--http-port", "0", "--grpc-port", "0"],
                         tmp_path_factory.mktemp("log") / "quiver-gateway.log",
                         command="gateway")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def test_identity_through_the_gateway_to_triton(triton_gateway):
    for module, url in ((grpcclient, triton_gateway.grpc_url),
                        (httpclient, triton_gateway.http_url)):
        client = module.InferenceServerClient(url)
        deadline = time.monotonic() + WAIT_S
        while not client.is_model_ready("identity_fp32") and time.monotonic() < deadline:
            time.sleep(0.2)  # the gateway learns Triton's index on its next poll
        assert client.is_model_ready("identity_fp32")
        x = np.arange(8, dtype=np.float32)
        inp = module.InferInput("INPUT0", [8], "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer("identity_fp32", [inp])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)
        client.close()
