"""Status codes, error texts and endpoint behaviour that must match NVIDIA Triton's.

Each expectation is Triton's observed behaviour, with its source in docs/protocol.md
(server/src/http_server.cc, server/src/grpc/grpc_utils.cc, core/src/*). Raw HTTP (urllib)
checks what tritonclient hides (status codes, bodies); the clients check what a Triton user
sees.
"""

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import ROOT, write_repository


def raw(server, method, path, body=None):
    """(status, body bytes) of one HTTP request, error statuses included."""
    request = urllib.request.Request(f"http://{server.http_url}{path}", data=body,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def error_of(body):
    return json.loads(body)["error"]


@pytest.fixture
def http(server):
    client = httpclient.InferenceServerClient(server.http_url)
    yield client
    client.close()


@pytest.fixture
def grpc(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    yield client
    client.close()


def test_health_is_200_with_an_empty_body(server):
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert raw(server, "GET", path) == (200, b"")


def test_model_ready_of_unknown_model_or_version_is_400(server, http, grpc):
    # HandleModelReady: not ready (unknown included) is a 400 with this fixed text.
    for path in ("/v2/models/no_such_model/ready", "/v2/models/identity_fp32/versions/9/ready"):
        status, body = raw(server, "GET", path)
        assert status == 400, path
        assert error_of(body) == "Model version not ready"
    assert raw(server, "GET", "/v2/models/identity_fp32/ready") == (200, b"")
    # The clients just say False (gRPC: OK with ready=false).
    assert not http.is_model_ready("no_such_model")
    assert not grpc.is_model_ready("no_such_model")
    assert not grpc.is_model_ready("identity_fp32", "9")


def test_unknown_route_and_wrong_method(server):
    status, body = raw(server, "GET", "/v2/no/such/route")
    assert (status, error_of(body)) == (404, "Not Found")
    status, body = raw(server, "GET", "/v2/models/identity_fp32/versions/latest")
    assert (status, error_of(body)) == (404, "Not Found")  # versions are [0-9]+
    status, body = raw(server, "POST", "/v2/health/ready", b"")
    assert (status, error_of(body)) == (405, "Method Not Allowed")
    status, body = raw(server, "GET", "/v2/models/identity_fp32/infer")
    assert (status, error_of(body)) == (405, "Method Not Allowed")


def test_unknown_model_is_not_found(server, http, grpc):
    tensor = httpclient.InferInput("INPUT0", [1], "FP32")
    tensor.set_data_from_numpy(np.ones(1, dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        http.infer("no_such_model", [tensor])
    assert info.value.status() == "404"
    assert "'no_such_model'" in info.value.message()
    tensor = grpcclient.InferInput("INPUT0", [1], "FP32")
    tensor.set_data_from_numpy(np.ones(1, dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        grpc.infer("no_such_model", [tensor])
    assert info.value.status() == "StatusCode.NOT_FOUND"
    for call in (http.get_model_metadata, http.get_model_config):
        with pytest.raises(InferenceServerException) as info:
            call("no_such_model")
        assert info.value.status() == "404"
    with pytest.raises(InferenceServerException) as info:
        grpc.get_model_metadata("no_such_model")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_wrong_input_is_invalid_argument(server, http, grpc):
    for module, client, code in ((httpclient, http, "400"),
                                 (grpcclient, grpc, "StatusCode.INVALID_ARGUMENT")):
        tensor = module.InferInput("NOT_AN_INPUT", [1], "FP32")
        tensor.set_data_from_numpy(np.ones(1, dtype=np.float32))
        with pytest.raises(InferenceServerException) as info:
            client.infer("identity_fp32", [tensor])
        assert info.value.status() == code
        assert "NOT_AN_INPUT" in info.value.message()
        tensor = module.InferInput("INPUT0", [1], "INT32")
        tensor.set_data_from_numpy(np.ones(1, dtype=np.int32))
        with pytest.raises(InferenceServerException) as info:
            client.infer("identity_fp32", [tensor])
        assert info.value.status() == code
        assert "INPUT0" in info.value.message() and "INT32" in info.value.message()


def test_cuda_shared_memory_answers_as_triton_without_gpus(http, grpc):
    # Status lists nothing, unregister succeeds (test scripts call it to clean up).
    assert http.get_cuda_shared_memory_status() == []
    assert len(grpc.get_cuda_shared_memory_status().regions) == 0
    http.unregister_cuda_shared_memory()
    grpc.unregister_cuda_shared_memory()
    http.unregister_cuda_shared_memory("cuda_region")
    grpc.unregister_cuda_shared_memory("cuda_region")
    handle = base64.b64encode(b"\0" * 64).decode()
    for client, code in ((http, "400"), (grpc, "StatusCode.INVALID_ARGUMENT")):
        with pytest.raises(InferenceServerException) as info:
            client.register_cuda_shared_memory("cuda_region", handle, 0, 64)
        assert info.value.status() == code
        assert info.value.message() == (
            "failed to register CUDA shared memory region: 'cuda_region', GPUs not supported")


def test_registering_a_region_twice_is_already_exists(http, grpc, tmp_path):
    import tritonclient.utils.shared_memory as shm

    key = f"/quiver_parity_{tmp_path.name}"
    handle = shm.create_shared_memory_region("parity", key, 64)
    try:
        http.register_system_shared_memory("parity", key, 64)
        with pytest.raises(InferenceServerException) as info:
            http.register_system_shared_memory("parity", key, 64)
        assert info.value.status() == "400"  # ALREADY_EXISTS is a 400 over HTTP
        assert "already" in info.value.message()
        with pytest.raises(InferenceServerException) as info:
            grpc.register_system_shared_memory("parity", key, 64)
        assert info.value.status() == "StatusCode.ALREADY_EXISTS"
    finally:
        http.unregister_system_shared_memory("parity")
        shm.destroy_shared_memory_region(handle)


def test_unload_of_a_model_that_is_not_loaded_succeeds(start_server, tmp_path):
    models = {name: (ROOT / "models" / name / "config.pbtxt").read_text()
              for name in ("identity_fp32", "identity_bytes")}
    repo = write_repository(tmp_path / "repo", models)
    proc = start_server(["--model-repository", repo, "--model-control-mode", "explicit",
                         "--load-model", "identity_fp32", "--http-port", "0",
                         "--grpc-port", "0"])
    http = httpclient.InferenceServerClient(proc.http_url)
    grpc = grpcclient.InferenceServerClient(proc.grpc_url)
    try:
        for client in (http, grpc):
            client.unload_model("identity_bytes")  # in the repository, not loaded
            client.unload_model("no_such_model")  # not in the repository
        assert http.is_model_ready("identity_fp32")
    finally:
        http.close()
        grpc.close()
    assert proc.stop() == 0
