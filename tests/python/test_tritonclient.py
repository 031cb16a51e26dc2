"""End-to-end tests of `quiver serve` with NVIDIA's official Triton client (tritonclient).

Each test talks to a real server process (conftest.py) over HTTP and gRPC as a Triton user
would, directly and through `quiver gateway` (the `endpoint` fixture): health and metadata, inference (JSON, binary, BYTES, libtorch), async and streaming
inference, system shared memory, errors, and the process's own flags and signals.
"""

import os
import pathlib
import queue
import signal
import socket
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from conftest import ROOT, write_repository

WAIT_S = 30  # bound on every wait for an asynchronous answer


@pytest.fixture(params=["server", "gateway"])
def endpoint(request):
    """Every client test runs against the server and against `quiver gateway` in front of
    it (issue 11: clients cannot tell a gateway from a server)."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def http(endpoint):
    client = httpclient.InferenceServerClient(endpoint.http_url, concurrency=4)
    yield client
    client.close()


@pytest.fixture
def grpc(endpoint):
    client = grpcclient.InferenceServerClient(endpoint.grpc_url)
    yield client
    client.close()


def fp32_input(module, values, name="INPUT0", **kwargs):
    arr = np.asarray(values, dtype=np.float32)
    tensor = module.InferInput(name, list(arr.shape), "FP32")
    tensor.set_data_from_numpy(arr, **kwargs)
    return tensor, arr


# --- server process -----------------------------------------------------------------


def test_ready_line_names_bound_ports(server):
    assert set(server.fields) >= {"http", "grpc"}
    assert server.http_port > 0 and server.grpc_port > 0
    assert server.http_port != server.grpc_port


# --- health and metadata ------------------------------------------------------------


def test_http_health_and_server_metadata(http):
    assert http.is_server_live()
    assert http.is_server_ready()
    meta = http.get_server_metadata()
    assert meta["name"] == "quiver"
    assert meta["version"]
    assert "system_shared_memory" in meta["extensions"]
    assert "binary_tensor_data" in meta["extensions"]


def test_grpc_health_and_server_metadata(grpc):
    assert grpc.is_server_live()
    assert grpc.is_server_ready()
    meta = grpc.get_server_metadata()
    assert meta.name == "quiver"
    assert meta.version
    assert "system_shared_memory" in meta.extensions


@pytest.mark.parametrize("model", ["identity_fp32", "identity_bytes", "simple_mlp",
                                   "identity_int32"])
def test_every_model_is_ready(http, grpc, model):
    assert http.is_model_ready(model)
    assert grpc.is_model_ready(model)


def test_http_model_metadata_and_config(http):
    meta = http.get_model_metadata("simple_mlp")
    assert meta["name"] == "simple_mlp"
    assert "1" in meta["versions"]
    assert meta["platform"] == "pytorch_libtorch"
    assert meta["inputs"] == [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 32]}]
    assert meta["outputs"] == [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 8]}]
    config = http.get_model_config("simple_mlp")
    assert config["name"] == "simple_mlp"
    assert config["max_batch_size"] == 256
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert [int(d) for d in config["input"][0]["dims"]] == [32]
    assert [int(s) for s in config["dynamic_batching"]["preferred_batch_size"]] == [64, 128]

    meta = http.get_model_metadata("identity_bytes", model_version="1")
    assert meta["inputs"] == [{"name": "INPUT0", "datatype": "BYTES", "shape": [-1]}]


def test_grpc_model_metadata_and_config(grpc):
    meta = grpc.get_model_metadata("simple_mlp")
    assert meta.name == "simple_mlp"
    assert list(meta.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("INPUT__0", "FP32", [-1, 32])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("OUTPUT__0", "FP32", [-1, 8])]
    config = grpc.get_model_config("simple_mlp").config
    assert config.name == "simple_mlp"
    assert config.max_batch_size == 256
    assert list(config.input[0].dims) == [32]
    assert list(config.dynamic_batching.preferred_batch_size) == [64, 128]
    as_json = grpc.get_model_config("identity_fp32", as_json=True)
    assert as_json["config"]["backend"] == "identity"


# --- inference ----------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_http_infer_identity_fp32(http, binary):
    tensor, arr = fp32_input(httpclient, [1.5, -2.25, 3.0e38, 0.0, -0.0], binary_data=binary)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)
    result = http.infer("identity_fp32", [tensor], outputs=[out], request_id="req-7")
    got = result.as_numpy("OUTPUT0")
    assert got.dtype == np.float32
    assert got.tolist() == arr.tolist()
    response = result.get_response()
    assert response["model_name"] == "identity_fp32"
    assert response["id"] == "req-7"
    (output,) = response["outputs"]
    assert output["shape"] == [5]
    assert ("binary_data_size" in output.get("parameters", {})) == binary


def test_grpc_infer_identity_fp32(grpc):
    tensor, arr = fp32_input(grpcclient, np.linspace(-1, 1, 1000))
    result = grpc.infer("identity_fp32", [tensor],
                        outputs=[grpcclient.InferRequestedOutput("OUTPUT0")], request_id="g-1")
    assert np.array_equal(result.as_numpy("OUTPUT0"), arr)
    response = result.get_response()
    assert response.model_name == "identity_fp32"
    assert response.id == "g-1"


def test_infer_second_repository_int32(http, grpc):
    arr = np.array([-(2**31), -1, 0, 1, 2**31 - 1], dtype=np.int32)
    for module, client in ((httpclient, http), (grpcclient, grpc)):
        tensor = module.InferInput("INPUT0", [5], "INT32")
        tensor.set_data_from_numpy(arr)
        got = client.infer("identity_int32", [tensor]).as_numpy("OUTPUT0")
        assert got.dtype == np.int32 and got.tolist() == arr.tolist()


BYTES_VALUES = [b"", b"hello", "h\u00e9llo \u2713".encode(), b"a\x00b", b"x" * 3000]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_http_infer_identity_bytes(http, binary):
    # JSON carries BYTES as strings, so it needs UTF-8 text; binary carries any bytes.
    values = BYTES_VALUES if binary else [v for v in BYTES_VALUES if b"\x00" not in v]
    arr = np.array(values, dtype=np.object_)
    tensor = httpclient.InferInput("INPUT0", [len(values)], "BYTES")
    tensor.set_data_from_numpy(arr, binary_data=binary)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)
    got = http.infer("identity_bytes", [tensor], outputs=[out]).as_numpy("OUTPUT0")
    assert got.dtype == np.object_
    as_bytes = [g if isinstance(g, bytes) else g.encode() for g in got.tolist()]
    assert as_bytes == values


def test_grpc_infer_identity_bytes(grpc):
    arr = np.array(BYTES_VALUES, dtype=np.object_)
    tensor = grpcclient.InferInput("INPUT0", [len(BYTES_VALUES)], "BYTES")
    tensor.set_data_from_numpy(arr)
    got = grpc.infer("identity_bytes", [tensor]).as_numpy("OUTPUT0")
    assert got.dtype == np.object_
    assert got.tolist() == BYTES_VALUES


def mlp_input(rows, seed=1):
    return np.random.default_rng(seed).standard_normal((rows, 32)).astype(np.float32)


def infer_mlp(module, client, x):
    tensor = module.InferInput("INPUT__0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    out = client.infer("simple_mlp", [tensor]).as_numpy("OUTPUT__0")
    assert out.shape == (x.shape[0], 8) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    return out


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_simple_mlp_batch_consistency(http, grpc, protocol):
    module, client = (httpclient, http) if protocol == "http" else (grpcclient, grpc)
    x = mlp_input(2)
    batch = infer_mlp(module, client, x)
    one = infer_mlp(module, client, x[:1])
    two = infer_mlp(module, client, x[1:])
    np.testing.assert_allclose(batch, np.concatenate([one, two]), rtol=1e-5, atol=1e-5)
    assert not np.allclose(batch[0], batch[1]), "different rows must give different outputs"


def test_simple_mlp_matches_torchscript(http):
    torch = pytest.importorskip("torch")  # Debian's python3-torch, as in scripts/setup
    model = torch.jit.load(str(ROOT / "models" / "simple_mlp" / "1" / "model.pt"))
    x = mlp_input(5, seed=7)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(infer_mlp(httpclient, http, x), expected, rtol=1e-5, atol=1e-5)


# --- asynchronous and streaming inference -------------------------------------------


def test_http_async_infer(http):
    pending = []
    for i in range(8):
        tensor, arr = fp32_input(httpclient, [float(i)] * (i + 1))
        pending.append((http.async_infer("identity_fp32", [tensor], request_id=str(i)), arr))
    for request, arr in pending:
        result = request.get_result(block=True, timeout=WAIT_S)
        assert np.array_equal(result.as_numpy("OUTPUT0"), arr)


def test_grpc_async_infer(grpc):
    answers = queue.Queue()
    sent = {}
    for i in range(8):
        tensor, arr = fp32_input(grpcclient, [float(i)] * (i + 1))
        sent[str(i)] = arr
        grpc.async_infer("identity_fp32", [tensor],
                         callback=lambda result, error: answers.put((result, error)),
                         request_id=str(i))
    seen = set()
    for _ in sent:
        result, error = answers.get(timeout=WAIT_S)
        assert error is None, error
        rid = result.get_response().id
        assert rid not in seen
        seen.add(rid)
        assert np.array_equal(result.as_numpy("OUTPUT0"), sent[rid])
    assert seen == set(sent)


def test_grpc_stream_answers_each_request_once(grpc):
    answers = queue.Queue()
    grpc.start_stream(callback=lambda result, error: answers.put((result, error)))
    sent = {}
    try:
        for i in range(32):
            tensor, arr = fp32_input(grpcclient, np.arange(i + 1, dtype=np.float32) * i)
            sent[f"s{i}"] = arr
            grpc.async_stream_infer("identity_fp32", [tensor], request_id=f"s{i}")
        order = []
        for _ in sent:
            result, error = answers.get(timeout=WAIT_S)
            assert error is None, error
            rid = result.get_response().id
            order.append(rid)
            assert np.array_equal(result.as_numpy("OUTPUT0"), sent[rid])
    finally:
        grpc.stop_stream()
    assert sorted(order) == sorted(sent), "every request answered exactly once"
    assert order == list(sent), "non-decoupled stream answers in request order"
    assert answers.empty()


def test_grpc_stream_reports_errors_in_band(grpc):
    answers = queue.Queue()
    grpc.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        tensor, _ = fp32_input(grpcclient, [1.0])
        grpc.async_stream_infer("no_such_model", [tensor], request_id="bad")
        grpc.async_stream_infer("identity_fp32", [tensor], request_id="good")
        (r1, e1), (r2, e2) = answers.get(timeout=WAIT_S), answers.get(timeout=WAIT_S)
    finally:
        grpc.stop_stream()
    assert r1 is None and "no_such_model" in e1.message()
    assert e2 is None and r2.get_response().id == "good"


# --- system shared memory -----------------------------------------------------------


@pytest.fixture
def shm_regions():
    """An input and an output POSIX shm region (16 FP32 each), destroyed afterwards."""
    tag = f"{os.getpid()}_{threading.get_ident()}"
    size = 16 * 4
    regions = (shm.create_shared_memory_region(f"in_{tag}", f"/quiver_in_{tag}", size),
               shm.create_shared_memory_region(f"out_{tag}", f"/quiver_out_{tag}", size))
    yield regions, tag, size
    for handle in regions:
        shm.destroy_shared_memory_region(handle)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_system_shared_memory_infer(http, grpc, shm_regions, protocol):
    (in_handle, out_handle), tag, size = shm_regions
    module, client = (httpclient, http) if protocol == "http" else (grpcclient, grpc)
    in_name, out_name = f"{protocol}_in_{tag}", f"{protocol}_out_{tag}"
    arr = np.arange(16, dtype=np.float32) * 0.5 - 3
    shm.set_shared_memory_region(in_handle, [arr])
    client.register_system_shared_memory(in_name, f"/quiver_in_{tag}", size)
    client.register_system_shared_memory(out_name, f"/quiver_out_{tag}", size)
    try:
        status = client.get_system_shared_memory_status()
        if protocol == "http":
            names = {r["name"] for r in status}
        else:
            names = set(status.regions.keys())
        assert {in_name, out_name} <= names

        tensor = module.InferInput("INPUT0", [16], "FP32")
        tensor.set_shared_memory(in_name, size)
        out = module.InferRequestedOutput("OUTPUT0")
        out.set_shared_memory(out_name, size)
        client.infer("identity_fp32", [tensor], outputs=[out])
        got = shm.get_contents_as_numpy(out_handle, np.float32, [16])
        assert np.array_equal(got, arr)

        # The output region is written by the server, not echoed from the input region.
        shm.set_shared_memory_region(in_handle, [arr * 2])
        client.infer("identity_fp32", [tensor], outputs=[out])
        assert np.array_equal(shm.get_contents_as_numpy(out_handle, np.float32, [16]), arr * 2)
    finally:
        client.unregister_system_shared_memory(in_name)
        client.unregister_system_shared_memory(out_name)
    status = client.get_system_shared_memory_status()
    names = {r["name"] for r in status} if protocol == "http" else set(status.regions.keys())
    assert not names & {in_name, out_name}


def test_shared_memory_out_of_bounds_is_an_error(http, shm_regions):
    (in_handle, _), tag, size = shm_regions
    http.register_system_shared_memory(f"oob_{tag}", f"/quiver_in_{tag}", size)
    try:
        tensor = httpclient.InferInput("INPUT0", [32], "FP32")
        tensor.set_shared_memory(f"oob_{tag}", 2 * size)
        with pytest.raises(InferenceServerException) as info:
            http.infer("identity_fp32", [tensor])
        assert f"oob_{tag}" in info.value.message()
    finally:
        http.unregister_system_shared_memory(f"oob_{tag}")


# --- errors ---------------------------------------------------------------------------


def test_http_unknown_model(http):
    tensor, _ = fp32_input(httpclient, [1.0])
    with pytest.raises(InferenceServerException) as info:
        http.infer("no_such_model", [tensor])
    assert "no_such_model" in info.value.message()
    assert info.value.status() in ("400", "404")
    with pytest.raises(InferenceServerException) as info:
        http.get_model_metadata("no_such_model")
    assert "no_such_model" in info.value.message()
    assert not http.is_model_ready("no_such_model")


def test_grpc_unknown_model(grpc):
    tensor, _ = fp32_input(grpcclient, [1.0])
    with pytest.raises(InferenceServerException) as info:
        grpc.infer("no_such_model", [tensor])
    assert "no_such_model" in info.value.message()
    assert info.value.status() in ("StatusCode.NOT_FOUND", "StatusCode.INVALID_ARGUMENT",
                                   "StatusCode.UNAVAILABLE")
    with pytest.raises(InferenceServerException) as info:
        grpc.get_model_metadata("no_such_model")
    assert "no_such_model" in info.value.message()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_wrong_datatype_and_input_name(http, grpc, protocol):
    module, client = (httpclient, http) if protocol == "http" else (grpcclient, grpc)
    tensor = module.InferInput("INPUT0", [2], "INT32")
    tensor.set_data_from_numpy(np.array([1, 2], dtype=np.int32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("identity_fp32", [tensor])
    assert "INT32" in info.value.message() or "FP32" in info.value.message()
    assert info.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")  # Triton's codes
    tensor, _ = fp32_input(module, [1.0], name="NOT_AN_INPUT")
    with pytest.raises(InferenceServerException) as info:
        client.infer("identity_fp32", [tensor])
    assert "NOT_AN_INPUT" in info.value.message() or "INPUT0" in info.value.message()
    # The server keeps serving after errors.
    tensor, arr = fp32_input(module, [4.0])
    assert np.array_equal(client.infer("identity_fp32", [tensor]).as_numpy("OUTPUT0"), arr)


# --- process flags and signals ----------------------------------------------------------


def identity_repository(tmp_path):
    """A repository with the two shipped identity models (no libtorch: starts fast)."""
    models = {name: (ROOT / "models" / name / "config.pbtxt").read_text()
              for name in ("identity_fp32", "identity_bytes")}
    return write_repository(tmp_path / "repo", models)


def test_sigint_exits_zero_and_closes_ports(start_server, tmp_path):
    proc = start_server(["--model-repository", identity_repository(tmp_path),
                         "--http-port", "0", "--grpc-port", "0"])
    client = httpclient.InferenceServerClient(proc.http_url)
    assert client.is_server_live()
    client.close()
    assert proc.stop(signal.SIGINT) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proc.http_port), timeout=5).close()


def test_explicit_mode_loads_only_named_models(start_server, tmp_path):
    proc = start_server(["--model-repository", identity_repository(tmp_path),
                         "--model-control-mode", "explicit", "--load-model", "identity_fp32",
                         "--http-port", "0", "--grpc-port", "0"])
    client = grpcclient.InferenceServerClient(proc.grpc_url)
    try:
        assert client.is_model_ready("identity_fp32")
        assert not client.is_model_ready("identity_bytes")
        client.load_model("identity_bytes")
        assert client.is_model_ready("identity_bytes")
        client.unload_model("identity_fp32")
        assert not client.is_model_ready("identity_fp32")
    finally:
        client.close()
    assert proc.stop() == 0


def test_http_only_server(start_server, tmp_path):
    proc = start_server(["--model-repository", identity_repository(tmp_path),
                         "--http-port", "0", "--allow-grpc", "false"])
    assert proc.grpc_port == 0
    client = httpclient.InferenceServerClient(proc.http_url)
    assert client.is_server_ready()
    client.close()
    assert proc.stop() == 0


def test_busy_port_fails_startup(server, start_server, tmp_path):
    proc = start_server(["--model-repository", identity_repository(tmp_path),
                         "--http-port", str(server.http_port), "--grpc-port", "0"], wait=False)
    assert proc.proc.wait(timeout=WAIT_S) == 1
    assert str(server.http_port) in proc.log()
    assert proc.proc.stdout.read() == b"", "no ready line when startup fails"


@pytest.mark.parametrize("args", [
    [],  # --model-repository is required
    ["--model-repository", "/nonexistent/quiver-repo"],
    [f"--model-repository={ROOT / 'models'}", "--model-control-mode", "sometimes"],
    [f"--model-repository={ROOT / 'models'}", "--http-port", "70000"],
], ids=["no-repository", "missing-repository", "bad-mode", "bad-port"])
def test_bad_flags_fail_fast(start_server, args):
    proc = start_server(args, wait=False)
    assert proc.proc.wait(timeout=WAIT_S) != 0
    assert proc.proc.stdout.read() == b""


# --- metrics ------------------------------------------------------------------------


def scrape(port):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def metric_value(text, name, model):
    prefix = f'{name}{{model="{model}",version="1"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return None


def test_metrics_count_successful_requests(server, http):
    assert server.metrics_port > 0
    before = metric_value(scrape(server.metrics_port), "nv_inference_request_success",
                          "identity_fp32") or 0.0
    for i in range(3):
        tensor, _ = fp32_input(httpclient, [float(i)])
        http.infer("identity_fp32", [tensor])
    text = scrape(server.metrics_port)
    assert "# TYPE nv_inference_request_success counter" in text
    assert metric_value(text, "nv_inference_request_success", "identity_fp32") == before + 3
    assert metric_value(text, "nv_inference_queue_duration_us", "identity_fp32") is not None
    assert "nv_cpu_memory_used_bytes" in text
