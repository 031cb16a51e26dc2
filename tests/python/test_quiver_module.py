"""The Python module `quiver` (issue 4, item 5) against a real `quiver serve` and local://.

Covers: a numpy round trip of every KServe data type over grpc://, http:// and local://;
errors as quiver.Error subclasses with the server's message; zero-copy inputs and outputs
(what can be observed: shared memory between input and output in-process, the module's
copy counters, reference counts); the GIL released while a call waits; the async variant;
pickling by configuration; the columnar helpers (infer_jagged, pad_jagged, unpad,
reduce_lists); and `import quiver` from Debian's /usr/bin/python3 without PYTHONPATH.
"""

import asyncio
import collections
import concurrent.futures
import gc
import json
import os
import pathlib
import pickle
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref

import numpy as np
import pytest

from conftest import ROOT, ServerProcess, write_repository

# This checkout's package first (the .pth that scripts/setup writes may name another).
sys.path.insert(0, str(ROOT / "python"))
import quiver  # noqa: E402

WAIT_S = 30  # bound on any wait: longer means a hang

# KServe data type -> (Triton config type, numpy dtype used to send it).
DATATYPES = {
    "BOOL": ("TYPE_BOOL", np.bool_),
    "UINT8": ("TYPE_UINT8", np.uint8),
    "UINT16": ("TYPE_UINT16", np.uint16),
    "UINT32": ("TYPE_UINT32", np.uint32),
    "UINT64": ("TYPE_UINT64", np.uint64),
    "INT8": ("TYPE_INT8", np.int8),
    "INT16": ("TYPE_INT16", np.int16),
    "INT32": ("TYPE_INT32", np.int32),
    "INT64": ("TYPE_INT64", np.int64),
    "FP16": ("TYPE_FP16", np.float16),
    "BF16": ("TYPE_BF16", np.uint16),  # bit patterns, declared with datatypes=
    "FP32": ("TYPE_FP32", np.float32),
    "FP64": ("TYPE_FP64", np.float64),
    "BYTES": ("TYPE_STRING", object),
}


def identity_config(name, config_type, dims="[ -1, -1 ]"):
    return f"""
name: "{name}"
backend: "identity"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: {config_type} dims: {dims} }} ]
output [ {{ name: "OUTPUT0" data_type: {config_type} dims: {dims} }} ]
"""


MODELS = {f"id_{dt.lower()}": identity_config(f"id_{dt.lower()}", ct)
          for dt, (ct, _) in DATATYPES.items()}
# Batches of 2 only, waiting up to 30 s for the second request: two concurrent callers
# finish at once only if neither holds the GIL while waiting.
MODELS["batch_pair"] = """
name: "batch_pair"
backend: "identity"
max_batch_size: 2
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
dynamic_batching { preferred_batch_size: [ 2 ] max_queue_delay_microseconds: 30000000 }
"""
# Pairs when two are queued, a lone request at once (as simple_mlp's 64 and 128 rows); one
# per try of the hold test (a hold that runs out pauses holding for its model).
for _try in range(6):
    MODELS[f"held_pair_{_try}"] = MODELS["batch_pair"].replace(
        "batch_pair", f"held_pair_{_try}").replace(
        "preferred_batch_size: [ 2 ]", "preferred_batch_size: [ 1, 2 ]")
# As batch_pair with a 5 s wait: requests left pending by the exit tests drain quickly.
MODELS["exit_pair"] = MODELS["batch_pair"].replace("batch_pair", "exit_pair").replace(
    "30000000", "5000000")
# A lone request waits 5 s in these: longer than the deadline tests' timeouts. One model per
# check, as a request abandoned at its deadline stays queued and would pair with the next.
for _check in ("grpc_call", "grpc_default", "http_call", "http_default"):
    MODELS[f"slow_{_check}"] = MODELS["batch_pair"].replace(
        "batch_pair", f"slow_{_check}").replace("30000000", "5000000")
# Jagged lists: padded values [n, max_len, 2] plus a mask [n, max_len]; batches of 4.
MODELS["jagged_identity"] = """
name: "jagged_identity"
backend: "identity"
max_batch_size: 4
input [
  { name: "values" data_type: TYPE_FP32 dims: [ -1, 2 ] },
  { name: "mask" data_type: TYPE_BOOL dims: [ -1 ] },
  { name: "jet_pt" data_type: TYPE_FP32 dims: [ 1 ] }
]
output [
  { name: "values_out" data_type: TYPE_FP32 dims: [ -1, 2 ] },
  { name: "mask_out" data_type: TYPE_BOOL dims: [ -1 ] },
  { name: "jet_pt_out" data_type: TYPE_FP32 dims: [ 1 ] }
]
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_repository(tmp_path_factory.mktemp("quiver_repo"), MODELS)


@pytest.fixture(scope="module")
def qserver(tmp_path_factory, repository):
    """`quiver serve` over models/ and the test repository."""
    log = tmp_path_factory.mktemp("quiver_log") / "serve.log"
    proc = ServerProcess(["--model-repository", ROOT / "models", "--model-repository",
                          repository, "--http-port", "0", "--grpc-port", "0"], log)
    try:
        proc.wait_ready()
        yield proc
    finally:
        rc = proc.stop()
        assert rc == 0, f"quiver serve exited with {rc}; log:\n{proc.log()}"


def url_for(transport, server, repository):
    if transport == "grpc":
        return f"grpc://127.0.0.1:{server.grpc_port}"
    if transport == "http":
        return f"http://127.0.0.1:{server.http_port}"
    return f"local://{repository}"


@pytest.fixture(scope="module")
def clients(qserver, repository):
    """One client per transport, shared by the tests of this module."""
    made = {t: quiver.Client(url_for(t, qserver, repository), timeout=WAIT_S)
            for t in ("grpc", "http", "local")}
    yield made
    for c in made.values():
        c.close()


def sample(datatype, shape=(2, 3)):
    n = int(np.prod(shape))
    _, dtype = DATATYPES[datatype]
    if datatype == "BOOL":
        return (np.arange(n) % 3 == 0).reshape(shape)
    if datatype == "BYTES":
        items = [b"", b"a", b"\x00bin\xff", "unicode \u00e9".encode(), b"x" * 300, b"z"]
        return np.array(items[:n], dtype=object).reshape(shape)
    if datatype == "BF16":
        # 1.0, -2.0, 0.5, ... as bfloat16 bit patterns (the top half of float32's bits).
        f = np.array([1.0, -2.0, 0.5, 3.0, -0.25, 8.0][:n], dtype=np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).reshape(shape)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = [info.min, info.max, 0, 1, info.max // 3, info.min // 5][:n]
        return np.array(values, dtype=dtype).reshape(shape)
    return np.array([0.5, -1.25, np.inf, 3.0e4, -0.0, 7.0][:n], dtype=dtype).reshape(shape)


# ---------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("transport", ["grpc", "http", "local"])
@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_round_trip_every_datatype(clients, transport, datatype):
    client = clients[transport]
    x = sample(datatype)
    datatypes = {"INPUT0": "BF16"} if datatype == "BF16" else None
    out = client.infer(f"id_{datatype.lower()}", {"INPUT0": x}, datatypes=datatypes)
    assert list(out) == ["OUTPUT0"]
    y = out["OUTPUT0"]
    assert y.shape == x.shape
    if datatype == "BYTES":
        assert y.dtype == object
        assert y.tolist() == x.tolist()
    elif datatype == "BF16":
        # ml_dtypes.bfloat16 where ml_dtypes is installed (the venv), else uint16 bits.
        assert y.dtype.itemsize == 2 and y.dtype.name in ("bfloat16", "uint16")
        np.testing.assert_array_equal(y.view(np.uint16), x)
    else:
        assert y.dtype == x.dtype
        np.testing.assert_array_equal(y, x)
    assert not y.flags.writeable  # read-only views of the response, as tritonclient's


@pytest.mark.parametrize("transport", ["grpc", "http", "local"])
def test_bytes_from_str_and_fixed_width_arrays(clients, transport):
    client = clients[transport]
    for x in (np.array([["ab", "\u00e9t\u00e9"]]), np.array([[b"ab", b"c"]]),
              np.array([["x", b"y"]], dtype=object)):
        y = client.infer("id_bytes", {"INPUT0": x})["OUTPUT0"]
        expected = [[v.encode() if isinstance(v, str) else bytes(v) for v in row]
                    for row in x.tolist()]
        assert y.tolist() == expected


def test_bfloat16_arrays_of_ml_dtypes(clients):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([[1.0, -2.5, 0.15625]], dtype=ml_dtypes.bfloat16)
    y = clients["grpc"].infer("id_bf16", {"INPUT0": x})["OUTPUT0"]
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y.view(np.uint16), x.view(np.uint16))


@pytest.mark.parametrize("transport", ["grpc", "http", "local"])
def test_shipped_models_version_and_outputs(clients, transport):
    client = clients[transport] if transport != "local" else quiver.Client(
        f"local://{ROOT / 'models'}")
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    out = client.infer("identity_fp32", {"INPUT0": x}, version=1, outputs=["OUTPUT0"])
    np.testing.assert_array_equal(out["OUTPUT0"], x)
    out = client.infer("identity_fp32", {"INPUT0": x}, version="1")
    np.testing.assert_array_equal(out["OUTPUT0"], x)
    md = client.model_metadata("identity_fp32")
    assert md["name"] == "identity_fp32"
    assert md["inputs"] == [{"name": "INPUT0", "datatype": "FP32", "shape": [-1]}]
    assert client.live() and client.ready() and client.model_ready("identity_fp32")


def test_non_contiguous_and_byte_swapped_inputs_are_converted(clients):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    for x in (base[:, ::2], base.T, base.astype(">f4")):
        y = clients["grpc"].infer("id_fp32", {"INPUT0": x})["OUTPUT0"]
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, x)


def test_lists_are_accepted_as_inputs(clients):
    y = clients["local"].infer("id_int64", {"INPUT0": [[1, 2], [3, 4]]})["OUTPUT0"]
    np.testing.assert_array_equal(y, [[1, 2], [3, 4]])
    assert y.dtype == np.int64


# ---------------------------------------------------------------------------------------
# Errors


def server_error(server, model):
    """The message quiver serve answers (HTTP) for an inference on `model`."""
    body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1],
                                   "data": [1.0]}]}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}/v2/models/{model}/infer", data=body,
        headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=WAIT_S)
    assert info.value.code == 404
    return json.loads(info.value.read())["error"]


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_unknown_model_is_not_found_with_the_server_message(qserver, clients, transport):
    expected = server_error(qserver, "no_such_model")
    with pytest.raises(quiver.NotFound) as info:
        clients[transport].infer("no_such_model", {"INPUT0": np.ones(1, np.float32)})
    assert expected in str(info.value)
    assert isinstance(info.value, quiver.Error) and isinstance(info.value, LookupError)
    assert info.value.code == "NOT_FOUND"


def test_unknown_model_local_is_not_found(clients):
    with pytest.raises(quiver.NotFound, match="no_such_model"):
        clients["local"].infer("no_such_model", {"INPUT0": np.ones(1, np.float32)})


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:1", "grpc//nope", "grpc://:8001",
                                 "http://127.0.0.1:99999", "local://"])
def test_bad_url_is_invalid_argument(url):
    with pytest.raises(quiver.InvalidArgument) as info:
        quiver.Client(url)
    assert isinstance(info.value, ValueError)
    assert str(info.value)  # the parser's message


def test_bad_fallback_is_invalid_argument():
    with pytest.raises(quiver.InvalidArgument, match="fallback"):
        quiver.Client("grpc://127.0.0.1:1", fallback="nope")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_unreachable_server_is_unavailable(scheme):
    port = closed_port()
    client = quiver.Client(f"{scheme}://127.0.0.1:{port}", retries=1, timeout=WAIT_S)
    with pytest.raises(quiver.Unavailable) as info:
        client.infer("identity_fp32", {"INPUT0": np.ones(2, np.float32)})
    assert str(port) in str(info.value)
    assert isinstance(info.value, ConnectionError)
    future = client.infer_async("identity_fp32", {"INPUT0": np.ones(2, np.float32)})
    assert isinstance(future.exception(timeout=WAIT_S), quiver.Unavailable)


def test_fallback_serves_when_the_server_is_down(repository):
    client = quiver.Client(f"grpc://127.0.0.1:{closed_port()}", fallback=f"local://{repository}",
                           retries=0)
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    np.testing.assert_array_equal(client.infer("id_int32", {"INPUT0": x})["OUTPUT0"], x)
    assert client.stats()["fallback_calls"] >= 1


def test_wrong_input_is_invalid_argument(clients):
    with pytest.raises(quiver.InvalidArgument, match="FP32"):
        clients["grpc"].infer("id_fp32", {"INPUT0": np.ones((1, 2), np.int32)})
    with pytest.raises(quiver.InvalidArgument, match="complex"):
        clients["grpc"].infer("id_fp32", {"INPUT0": np.ones((1, 2), np.complex64)})
    with pytest.raises(quiver.InvalidArgument, match="element 1"):
        clients["grpc"].infer("id_bytes", {"INPUT0": np.array([[b"a", 3]], dtype=object)})
    with pytest.raises(TypeError):
        clients["grpc"].infer("id_fp32", [np.ones(2, np.float32)])


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_timeout_is_deadline_exceeded(clients, qserver, transport):
    x = np.ones((1, 2), np.float32)
    start = time.monotonic()
    with pytest.raises(quiver.DeadlineExceeded) as info:
        clients[transport].infer(f"slow_{transport}_call", {"INPUT0": x}, timeout=0.3)
    assert time.monotonic() - start < 4
    assert isinstance(info.value, TimeoutError) and "deadline" in str(info.value)
    client = quiver.Client(url_for(transport, qserver, None), timeout=0.3)  # the default
    with pytest.raises(quiver.DeadlineExceeded):
        client.infer_async(f"slow_{transport}_default", {"INPUT0": x}).result(WAIT_S)


def test_errors_pickle():
    e = pickle.loads(pickle.dumps(quiver.NotFound("model 'x' is unknown")))
    assert type(e) is quiver.NotFound and str(e) == "model 'x' is unknown"


# ---------------------------------------------------------------------------------------
# Zero copy


def test_local_identity_output_is_the_input_memory(clients):
    """In-process the whole path is zero-copy: the identity model's output views the
    numpy input itself (borrowed into the request, returned as a view of the response)."""
    x = np.arange(1000, dtype=np.float32).reshape(10, 100)
    before = quiver._quiver._copy_counters()
    y = clients["local"].infer("id_fp32", {"INPUT0": x})["OUTPUT0"]
    after = quiver._quiver._copy_counters()
    assert np.shares_memory(x, y)
    assert after["inputs_borrowed"] == before["inputs_borrowed"] + 1
    assert after["inputs_copied"] == before["inputs_copied"]
    assert after["outputs_borrowed"] == before["outputs_borrowed"] + 1


def test_non_contiguous_input_is_copied_once(clients):
    x = np.arange(200, dtype=np.float32).reshape(10, 20)[:, ::2]
    before = quiver._quiver._copy_counters()
    y = clients["local"].infer("id_fp32", {"INPUT0": x})["OUTPUT0"]
    after = quiver._quiver._copy_counters()
    assert not np.shares_memory(x, y)
    np.testing.assert_array_equal(x, y)
    assert after["inputs_copied"] == before["inputs_copied"] + 1
    assert after["inputs_borrowed"] == before["inputs_borrowed"]


def wait_for(condition, what):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        gc.collect()
        time.sleep(0.01)


@pytest.mark.parametrize("transport", ["grpc", "local"])
def test_borrowed_input_reference_is_released(clients, transport):
    """The request holds one reference to a borrowed array while it needs the memory and
    releases it afterwards (from whichever thread drops the last C++ reference)."""
    x = np.arange(100_000, dtype=np.float32).reshape(100, 1000)  # shared memory over grpc
    baseline = sys.getrefcount(x)
    out = clients[transport].infer("id_fp32", {"INPUT0": x})
    np.testing.assert_array_equal(out["OUTPUT0"], x)
    del out
    wait_for(lambda: sys.getrefcount(x) == baseline, "the input's reference to be released")


def test_output_keeps_response_alive(clients):
    y = clients["grpc"].infer("id_fp64", {"INPUT0": np.full((3, 4), 2.5)})["OUTPUT0"]
    gc.collect()
    assert y.base is not None  # a view of the response buffer, owned through a capsule
    np.testing.assert_array_equal(y, np.full((3, 4), 2.5))


# ---------------------------------------------------------------------------------------
# GIL, threads, async


@pytest.mark.parametrize("transport", ["local", "grpc"])
def test_gil_is_released_while_waiting(clients, transport):
    """batch_pair holds a lone request for 30 s waiting for a partner. Two threads each
    send one: both return at once only if the first released the GIL while it waited,
    letting the second thread run and send the partner request."""
    client = clients[transport]
    results = {}

    def call(i):
        x = np.full((1, 3), float(i), np.float32)
        results[i] = client.infer("batch_pair", {"INPUT0": x})["OUTPUT0"]

    start = time.monotonic()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - start
    assert sorted(results) == [0, 1]
    for i in range(2):
        np.testing.assert_array_equal(results[i], np.full((1, 3), float(i)))
    assert elapsed < 15, f"took {elapsed:.1f} s: the two requests were not batched together"


@pytest.mark.parametrize("transport", ["grpc", "http", "local"])
def test_infer_async_many(clients, transport):
    client = clients[transport]
    xs = [np.full((2, 5), i, np.int64) for i in range(50)]
    futures = [client.infer_async("id_int64", {"INPUT0": x}) for x in xs]
    for x, f in zip(xs, futures):
        assert isinstance(f, concurrent.futures.Future)
        np.testing.assert_array_equal(f.result(timeout=WAIT_S)["OUTPUT0"], x)


def test_infer_async_error_and_callbacks(clients):
    done = threading.Event()
    seen = []
    f = clients["grpc"].infer_async("no_such_model", {"INPUT0": np.ones(1, np.float32)})
    f.add_done_callback(lambda fut: (seen.append(fut.exception()), done.set()))
    assert done.wait(WAIT_S)
    assert isinstance(seen[0], quiver.NotFound)
    with pytest.raises(quiver.NotFound):
        f.result()


def test_infer_async_completed_by_the_caller_when_the_call_ran_inline(clients):
    # local:// runs the model inside infer_async: the future is done when it returns (no
    # hop through the completion thread), and so is one refused before sending.
    x = np.full((2, 5), 7, np.int64)
    f = clients["local"].infer_async("id_int64", {"INPUT0": x})
    assert f.done()
    np.testing.assert_array_equal(f.result(timeout=0)["OUTPUT0"], x)
    seen = []
    f.add_done_callback(lambda fut: seen.append(fut.result()["OUTPUT0"][0, 0]))
    assert seen == [7]  # a callback added to a done future runs at once, in this thread
    bad = clients["local"].infer_async("id_int64", {"INPUT0": np.ones((2, 5), np.float32)})
    assert bad.done()
    assert isinstance(bad.exception(timeout=0), quiver.InvalidArgument)
    # Many in a row, interleaved with remote calls that complete on the completion thread.
    futures = [(c, clients[c].infer_async("id_int64", {"INPUT0": np.full((1, 5), i, np.int64)}))
               for i in range(40) for c in ("local", "grpc")]
    for i, (c, f) in enumerate(futures):
        assert f.result(timeout=WAIT_S)["OUTPUT0"][0, 0] == i // 2, c


@pytest.mark.parametrize("transport", ["grpc", "http", "local"])
def test_infer_async_from_many_threads_completes_each_call_once(clients, transport):
    """Calls from 8 threads at once, each future waited on by result() in a thread of its
    own, by exception() in another and by a done-callback: every one ends exactly once
    with its own values, whoever completes it (the caller, a waiting thread or Quiver's
    completion thread)."""
    client = clients[transport]
    calls, lock = [], threading.Lock()
    callbacks = collections.Counter()
    pool = concurrent.futures.ThreadPoolExecutor(16)

    def count(counter, key):
        with lock:
            counter[key] += 1

    def send(t):
        for i in range(25):
            x = np.full((1, 3), t * 100 + i, np.int64)
            f = client.infer_async("id_int64", {"INPUT0": x})
            f.add_done_callback(lambda fut: count(callbacks, id(fut)))
            waits = (pool.submit(f.result, WAIT_S), pool.submit(f.exception, WAIT_S))
            with lock:
                calls.append((x, f, waits))

    senders = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(WAIT_S)
    outs = [r.result(WAIT_S) for _, _, (r, _) in calls]
    assert [e.result(WAIT_S) for _, _, (_, e) in calls] == [None] * len(calls)
    pool.shutdown()
    assert len(calls) == 200
    for (x, f, _), out in zip(calls, outs):
        assert isinstance(f, concurrent.futures.Future) and f.done()
        np.testing.assert_array_equal(out["OUTPUT0"], x)
        assert f.result(timeout=0) is out  # one result object per call
    wait_for(lambda: sum(callbacks.values()) == len(calls), "every done-callback")
    assert set(callbacks.values()) == {1} and len(callbacks) == len(calls)


def test_infer_async_result_timeout_then_completion(clients):
    """result(timeout) on a call still waiting (batch_pair holds a lone request for its
    partner) raises TimeoutError after about the timeout, not twice it; the future stays
    usable: waiters in several threads all get the one result once the partner arrives,
    and its done-callback runs once."""
    client = clients["grpc"]
    f = client.infer_async("batch_pair", {"INPUT0": np.full((1, 3), 1.0, np.float32)})
    seen = []
    f.add_done_callback(seen.append)
    for method in (f.result, f.exception):
        start = time.monotonic()
        with pytest.raises(concurrent.futures.TimeoutError):
            method(timeout=0.3)
        assert 0.25 < time.monotonic() - start < 0.55
    assert not f.done() and not seen
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        waiters = [pool.submit(f.result, WAIT_S) for _ in range(3)]
        time.sleep(0.2)  # let the waiters block in result()
        partner = client.infer_async("batch_pair",
                                     {"INPUT0": np.full((1, 3), 2.0, np.float32)})
        outs = [w.result(WAIT_S) for w in waiters]
    assert outs[0] is outs[1] is outs[2]
    np.testing.assert_array_equal(outs[0]["OUTPUT0"], np.full((1, 3), 1.0))
    np.testing.assert_array_equal(partner.result(WAIT_S)["OUTPUT0"], np.full((1, 3), 2.0))
    wait_for(lambda: len(seen) == 1, "the done-callback")
    time.sleep(0.1)
    assert seen == [f]


def test_infer_async_future_with_wait_and_as_completed(clients):
    """concurrent.futures.wait() and as_completed() on infer_async futures: a waiter that
    registered while the call was pending is woken by its completion (the future's
    Condition is made on first use); a future only ever waited on through result() is
    completed without one."""
    client = clients["grpc"]
    f = client.infer_async("batch_pair", {"INPUT0": np.full((1, 3), 1.0, np.float32)})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(concurrent.futures.wait, [f], WAIT_S,
                              concurrent.futures.FIRST_COMPLETED)
        wait_for(lambda: len(f._waiters) == 1, "wait() to register its waiter")
        partner = client.infer_async("batch_pair",
                                     {"INPUT0": np.full((1, 3), 2.0, np.float32)})
        done, not_done = waiting.result(WAIT_S)
    assert done == {f} and not not_done
    np.testing.assert_array_equal(f.result(timeout=0)["OUTPUT0"], np.full((1, 3), 1.0))
    assert list(concurrent.futures.as_completed([partner], timeout=WAIT_S)) == [partner]
    assert "OUTPUT0" in partner.result(timeout=0)
    # local://, no batching: it runs inline, and infer_async itself completes the future.
    g = clients["local"].infer_async("id_int64", {"INPUT0": np.ones((1, 3), np.int64)})
    assert g.result(WAIT_S)["OUTPUT0"].sum() == 3 and g.exception(timeout=0) is None
    if quiver._LEAN_FUTURE:
        assert "_cond" not in vars(g)
    assert g.done() and not g.running() and "finished" in repr(g)


def test_infer_async_pipeline_over_paired_batches_on_local(clients):
    """One thread keeping two calls in flight over local:// on a model that runs requests in
    pairs only, so every response comes in a two-response delivery batch (the wake-ups and
    completion-thread posts deferred to its end, a post skipped when the woken thread took
    the result): every future completes once with its own values, done-callbacks included.
    (That it saves context switches is measured in docs/benchmarks.md, not asserted.)"""
    client = clients["local"]
    window = collections.deque()
    called = collections.Counter()

    def send(i):
        f = client.infer_async("batch_pair", {"INPUT0": np.full((1, 3), float(i), np.float32)})
        if i % 3 == 0:
            f.add_done_callback(lambda fut, i=i: called.update([i]))
        window.append((i, f))

    send(0)
    send(1)
    for i in range(2, 200):
        j, f = window.popleft()
        np.testing.assert_array_equal(f.result(WAIT_S)["OUTPUT0"], np.full((1, 3), float(j)))
        send(i)
    for j, f in window:
        np.testing.assert_array_equal(f.result(WAIT_S)["OUTPUT0"], np.full((1, 3), float(j)))
    wait_for(lambda: len(called) == len(range(0, 200, 3)), "every done-callback")
    assert set(called.values()) == {1}


def kept_result(client, value):
    """An infer_async future of batch_pair whose result arrived while nobody waited for it:
    the blocking infer() that follows pairs with it, so both run in one batch."""
    f = client.infer_async("batch_pair", {"INPUT0": np.full((1, 3), value, np.float32)})
    client.infer("batch_pair", {"INPUT0": np.zeros((1, 3), np.float32)}, timeout=WAIT_S)
    return f


def test_infer_async_result_waits_in_the_call_for_result(clients):
    """A lean future's result that arrives while nobody waits stays in the call (no
    completion thread); result() then completes the future in the calling thread."""
    f = kept_result(clients["local"], 7.0)
    assert vars(f)["_state"] == "RUNNING" and "_cond" not in vars(f)
    np.testing.assert_array_equal(f.result(0)["OUTPUT0"], np.full((1, 3), 7.0))
    assert "_cond" not in vars(f)


def test_infer_async_kept_result_completes_on_first_use_of_the_condition(clients):
    """done(), add_done_callback() and concurrent.futures.wait() see a kept result at once:
    making the Condition completes the future."""
    f = kept_result(clients["local"], 3.0)
    assert f.done() and f.result(0)["OUTPUT0"][0, 0] == 3.0
    g = kept_result(clients["local"], 4.0)
    seen = []
    g.add_done_callback(lambda fut: seen.append((threading.get_ident(), fut.result(0))))
    assert len(seen) == 1 and seen[0][0] == threading.get_ident()  # ran here, at once
    assert seen[0][1]["OUTPUT0"][0, 0] == 4.0
    h = kept_result(clients["local"], 5.0)
    done, not_done = concurrent.futures.wait([h], timeout=WAIT_S)
    assert done == {h} and not not_done


def test_infer_async_kept_result_of_a_dropped_future_is_freed(clients):
    """A future dropped before its result arrived is freed once the result came: the call
    lets go of the future and its inputs (queued for a thread with the GIL)."""
    client = clients["local"]
    x = np.full((1, 3), 2.0, np.float32)
    baseline = sys.getrefcount(x)
    f = client.infer_async("batch_pair", {"INPUT0": x})
    ref = weakref.ref(f)
    del f
    client.infer("batch_pair", {"INPUT0": np.zeros((1, 3), np.float32)}, timeout=WAIT_S)
    client.infer("id_fp32", {"INPUT0": np.ones((1, 2), np.float32)})  # drops queued references
    wait_for(lambda: ref() is None, "the dropped future to be freed")
    wait_for(lambda: sys.getrefcount(x) == baseline, "the input's reference to be released")


def test_infer_async_error_through_a_waiting_thread(clients):
    """An error reaches a thread already waiting in result() as the call's quiver.Error,
    and exception() afterwards returns the same exception."""
    f = clients["http"].infer_async("no_such_model", {"INPUT0": np.ones(1, np.float32)})
    with pytest.raises(quiver.NotFound) as raised:
        f.result(WAIT_S)
    assert f.exception(timeout=0) is raised.value


@pytest.mark.parametrize("transport", ["grpc", "http", "local"])
def test_infer_aio_gather_many(clients, transport):
    """asyncio.gather over 200 infer_aio calls: each result matches its call, errors come
    back as the call's exception, and a cancelled await leaves the others unharmed."""
    client = clients[transport]

    async def main():
        xs = [np.full((1, 4), i, np.int64) for i in range(200)]
        outs = await asyncio.gather(*(client.infer_aio("id_int64", {"INPUT0": x}) for x in xs))
        bad = await asyncio.gather(client.infer_aio("no_such_model", {"INPUT0": xs[0]}),
                                   return_exceptions=True)
        task = asyncio.ensure_future(client.infer_aio("id_int64", {"INPUT0": xs[1]}))
        task.cancel()
        after = await client.infer_aio("id_int64", {"INPUT0": xs[2]})
        return xs, outs, bad[0], task, after

    xs, outs, bad, task, after = asyncio.run(main())
    for x, out in zip(xs, outs):
        np.testing.assert_array_equal(out["OUTPUT0"], x)
    assert isinstance(bad, quiver.NotFound)
    assert task.cancelled()
    np.testing.assert_array_equal(after["OUTPUT0"], xs[2])


def test_infer_aio(clients):
    async def main():
        xs = [np.full((1, 2), i, np.float32) for i in range(8)]
        outs = await asyncio.gather(*(clients["grpc"].infer_aio("id_fp32", {"INPUT0": x})
                                      for x in xs))
        return xs, outs

    xs, outs = asyncio.run(main())
    for x, out in zip(xs, outs):
        np.testing.assert_array_equal(out["OUTPUT0"], x)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="holds need two usable CPUs")
def test_local_calls_are_held_for_the_waiting_thread(repository):
    """Over local://, in a process that may use several CPUs, an infer_async call sent while
    the model is idle is held for the thread that waits for it in result(), which runs it
    itself instead of blocking while the model's worker (another core) does: one voluntary
    context switch per call or pair otherwise. Every future still gets its own result;
    calls waited for otherwise (asyncio, a result() timeout, nobody) go to the worker."""
    script = f"""
import asyncio, collections, json, resource, sys
sys.path.insert(0, {str(ROOT / 'python')!r})
import numpy as np, quiver
c = quiver.Client("local://{repository}", timeout=30)
x = lambda i: {{"INPUT0": np.full((1, 3), float(i), np.float32)}}

def pipeline(model, n, depth):
    c.infer(model, x(0))  # loaded
    window = collections.deque()
    blocked = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
    for i in range(n):
        window.append((i, c.infer_async(model, x(i))))
        if len(window) == depth:
            j, f = window.popleft()
            assert f.result()["OUTPUT0"][0, 0] == j
    for j, f in window:
        assert f.result()["OUTPUT0"][0, 0] == j
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - blocked

# A sender preempted for 200 us lets a hold run out, and its model holds nothing for 100 ms:
# the least blocked of six tries, each on its own model, is the evidence.
blocked = min(pipeline(f"held_pair_{{k}}", 200, 1 + k % 2) for k in range(6))
async def many():
    return await asyncio.gather(*(c.infer_aio("held_pair_0", x(i)) for i in range(10)))
assert [o["OUTPUT0"][0, 0] for o in asyncio.run(many())] == list(range(10))
assert c.infer_async("held_pair_1", x(5)).result(30)["OUTPUT0"][0, 0] == 5
dropped = c.infer_async("held_pair_1", x(6))  # never waited for: held until the next call
del dropped
assert c.infer("held_pair_1", x(7))["OUTPUT0"][0, 0] == 7  # no waiter: both to the worker
print(json.dumps({{"calls": 200, "blocked": blocked}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout.splitlines()[-1])
    # Without the hold, result() blocks for about every call or pair (100-200 of 200).
    assert counts["blocked"] < counts["calls"] // 8, counts


def test_exit_with_calls_in_flight_is_clean(qserver, repository):
    """The interpreter exits while futures are pending (a 5 s batch wait): no crash, no
    hang, exit code 0."""
    script = f"""
import sys
sys.path.insert(0, {str(ROOT / 'python')!r})
import numpy as np, quiver
for url in ["grpc://127.0.0.1:{qserver.grpc_port}", "local://{repository}"]:
    c = quiver.Client(url)
    futures = [c.infer_async("exit_pair", {{"INPUT0": np.ones((1, 2), np.float32)}})]
    assert not futures[0].done()
    globals().setdefault("keep", []).append((c, futures))
print("exiting")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "exiting"  # (the engine logs on stdout)


def test_exit_with_a_daemon_thread_blocked_in_infer(qserver):
    """A daemon thread waits in a blocking infer (5 s batch wait) while the interpreter
    exits; an atexit handler that runs after quiver's keeps the exit going for a while,
    so the thread wakes up (it checks for signals every 100 ms) during finalization. It
    must stay out of the interpreter: exit code 0, no abort."""
    script = f"""
import atexit, sys, threading, time
atexit.register(time.sleep, 0.5)  # runs after quiver's handler (registered later)
sys.path.insert(0, {str(ROOT / 'python')!r})
import numpy as np, quiver
c = quiver.Client("grpc://127.0.0.1:{qserver.grpc_port}")
c.infer("id_fp32", {{"INPUT0": np.ones((1, 1), np.float32)}})  # connected
started = threading.Event()
def blocked():
    started.set()
    c.infer("exit_pair", {{"INPUT0": np.ones((1, 2), np.float32)}})
threading.Thread(target=blocked, daemon=True).start()
started.wait()
c.infer("id_fp32", {{"INPUT0": np.ones((1, 1), np.float32)}})  # lets the thread run
print("exiting")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "exiting"


def test_exit_closes_clients_and_unlinks_shared_memory(qserver):
    """Clients still open at exit (one made directly, one unpickled, both over gRPC with
    inputs large enough for shared memory) are closed by the exit handler: their shared
    memory regions are unregistered and unlinked, not left in /dev/shm."""
    script = f"""
import os, pickle, sys
sys.path.insert(0, {str(ROOT / 'python')!r})
import numpy as np, quiver
url = "grpc://127.0.0.1:{qserver.grpc_port}"
x = np.ones((256, 1024), np.float32)  # 1 MiB
for c in (quiver.Client(url), pickle.loads(pickle.dumps(quiver.Client(url, retries=3)))):
    assert np.array_equal(c.infer("id_fp32", {{"INPUT0": x}})["OUTPUT0"], x)
    globals().setdefault("keep", []).append(c)
prefix = f"quiver_{{os.getpid()}}_"
print(os.getpid(), sum(n.startswith(prefix) for n in os.listdir("/dev/shm")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    pid, regions = map(int, result.stdout.split())
    assert regions >= 2, "the clients did not use shared memory: the test checks nothing"
    left = [n for n in os.listdir("/dev/shm") if n.startswith(f"quiver_{pid}_")]
    assert left == []


# ---------------------------------------------------------------------------------------
# Pickling


def test_pickle_round_trip_reconnects(clients, qserver):
    original = quiver.Client([f"grpc://127.0.0.1:{qserver.grpc_port}",
                              f"http://127.0.0.1:{qserver.http_port}"], timeout=12.5, retries=2,
                             max_in_flight=7)
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(original.infer("identity_fp32", {"INPUT0": x})["OUTPUT0"], x)
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is quiver.Client
    assert copy.config == original.config
    assert copy.urls == original.urls and copy.timeout == 12.5 and copy.retries == 2
    assert copy.stats()["calls"] == 0  # configuration only: not yet connected
    np.testing.assert_array_equal(copy.infer("identity_fp32", {"INPUT0": x})["OUTPUT0"], x)
    # Unpickled copies with one configuration share one connection set per process.
    again = pickle.loads(pickle.dumps(original))
    assert again.stats()["calls"] == 1


def test_close_then_reuse(clients, qserver):
    with quiver.Client(f"http://127.0.0.1:{qserver.http_port}") as c:
        x = np.ones(3, np.float32)
        c.infer("identity_fp32", {"INPUT0": x})
        c.close()
        np.testing.assert_array_equal(c.infer("identity_fp32", {"INPUT0": x})["OUTPUT0"], x)
    assert "127.0.0.1" in repr(c)


# ---------------------------------------------------------------------------------------
# Columnar


def jets(seed=3, n=11):
    """n jets with 0..6 constituents of two features (pt, eta), awkward-style buffers."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 7, n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pt = rng.uniform(1, 100, offsets[-1]).astype(np.float32)
    eta = rng.uniform(-2.5, 2.5, offsets[-1]).astype(np.float32)
    return offsets, pt, eta


def padded_reference(offsets, pt, eta, max_len, sort=False):
    n = len(offsets) - 1
    values = np.zeros((n, max_len, 2), np.float32)
    mask = np.zeros((n, max_len), bool)
    for i in range(n):
        idx = np.arange(offsets[i], offsets[i + 1])
        if sort:
            idx = idx[np.argsort(-pt[idx], kind="stable")]
        idx = idx[:max_len]
        values[i, :len(idx), 0] = pt[idx]
        values[i, :len(idx), 1] = eta[idx]
        mask[i, :len(idx)] = True
    return values, mask


def test_pad_unpad_reduce_helpers():
    offsets, pt, eta = jets()
    values, mask = quiver.pad_jagged(offsets, {"pt": pt, "eta": eta}, max_len=4, sort_by="pt")
    ref_values, ref_mask = padded_reference(offsets, pt, eta, 4, sort=True)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(mask, ref_mask)
    back = quiver.unpad(values, offsets, sort_by=pt)  # [content, 2]; truncated -> NaN
    kept = ~np.isnan(back[:, 0])
    np.testing.assert_array_equal(back[kept], np.stack([pt, eta], axis=1)[kept])
    sums = quiver.reduce_lists(pt, offsets, "sum", empty_fill=-1.0)
    expected = [pt[a:b].sum() if b > a else -1.0 for a, b in zip(offsets[:-1], offsets[1:])]
    np.testing.assert_allclose(sums, expected, rtol=1e-6)
    # awkward may give int32 offsets and float64 contents: converted (a copy).
    v32, _ = quiver.pad_jagged(offsets.astype(np.int32), [pt.astype(np.float64)], max_len=4)
    assert v32.shape == (len(offsets) - 1, 4, 1)


def test_pad_errors_are_invalid_argument():
    with pytest.raises(quiver.InvalidArgument, match="offsets"):
        quiver.pad_jagged(np.array([0, 3, 1]), {"pt": np.ones(3, np.float32)})
    with pytest.raises(quiver.InvalidArgument, match="pt"):
        quiver.pad_jagged(np.array([0, 5]), {"pt": np.ones(3, np.float32)})
    with pytest.raises(quiver.InvalidArgument, match="reduce"):
        quiver.reduce_lists(np.ones(2, np.float32), np.array([0, 2]), "median")


@pytest.mark.parametrize("transport", ["grpc", "http", "local"])
def test_infer_jagged_per_list_element_and_event(clients, transport):
    client = clients[transport]
    offsets, pt, eta = jets()
    n = len(offsets) - 1
    jet_pt = np.array([[pt[a:b].sum()] for a, b in zip(offsets[:-1], offsets[1:])], np.float32)
    fields = {"pt": pt, "eta": eta}
    # per list: the padded tensor comes back, one row per jet, batched 4 jets at a time
    out = client.infer_jagged("jagged_identity", offsets, fields, inputs={"jet_pt": jet_pt},
                              max_len=5, sort_by="pt")
    ref_values, ref_mask = padded_reference(offsets, pt, eta, 5, sort=True)
    np.testing.assert_array_equal(out["values_out"], ref_values)
    np.testing.assert_array_equal(out["mask_out"], ref_mask)
    np.testing.assert_array_equal(out["jet_pt_out"], jet_pt)
    # per element: per-slot outputs back on the constituents (none truncated: max_len 0
    # = the longest jet)
    out = client.infer_jagged("jagged_identity", offsets, fields, inputs={"jet_pt": jet_pt},
                              per="element", outputs=["values_out"], sort_by="pt")
    np.testing.assert_array_equal(out["values_out"], np.stack([pt, eta], axis=1))
    # per event: per-jet outputs reduced over the events' jets
    event_offsets = np.array([0, 3, 3, 7, n], np.int64)
    out = client.infer_jagged("jagged_identity", offsets, fields, inputs={"jet_pt": jet_pt},
                              per="event", event_offsets=event_offsets, reduce="max",
                              outputs=["jet_pt_out"], empty_fill=-1.0)
    expected = [jet_pt[a:b].max() if b > a else -1.0
                for a, b in zip(event_offsets[:-1], event_offsets[1:])]
    np.testing.assert_array_equal(out["jet_pt_out"][:, 0], expected)


def test_infer_jagged_errors(clients):
    offsets, pt, eta = jets()
    with pytest.raises(quiver.InvalidArgument, match="values_name"):
        clients["grpc"].infer_jagged("identity_fp32", offsets, {"pt": pt})
    with pytest.raises(quiver.InvalidArgument, match="event_offsets"):
        clients["grpc"].infer_jagged("jagged_identity", offsets, {"pt": pt, "eta": eta},
                                     per="event")
    with pytest.raises(quiver.NotFound):
        clients["grpc"].infer_jagged("no_such_model", offsets, {"pt": pt})


def test_infer_batched_splits_rows(clients):
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    out = clients["grpc"].infer_batched("batch_pair", {"INPUT0": x}, max_in_flight=5)
    np.testing.assert_array_equal(out["OUTPUT0"], x)


# ---------------------------------------------------------------------------------------
# Installation


def test_import_from_debian_python_without_pythonpath():
    """After scripts/setup, Debian's /usr/bin/python3 imports this checkout's package
    (through the .pth file in /usr/local/lib/python3*/dist-packages) from any directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QUIVER_BUILD_DIR")}
    result = subprocess.run(
        ["/usr/bin/python3", "-c", "import quiver; print(quiver.__file__); "
         "print(quiver.Client('grpc://127.0.0.1:1'))"],
        capture_output=True, text=True, cwd="/", env=env, timeout=WAIT_S)
    assert result.returncode == 0, (
        "`import quiver` failed in /usr/bin/python3 (run scripts/setup):\n" + result.stderr)
    lines = result.stdout.splitlines()
    assert pathlib.Path(lines[0]) == ROOT / "python" / "quiver" / "__init__.py", (
        "the quiver.pth written by scripts/setup names another checkout: " + lines[0])
    assert lines[1] == "quiver.Client(['grpc://127.0.0.1:1'])"


def test_remote_only_import_does_not_load_libtorch():
    """`import quiver` and a remote client leave the engine (libtorch) out of the process;
    the first local:// URL loads it (quiver._quiver_local) and serves the model."""
    code = (
        "import numpy as np, quiver\n"
        "maps = lambda: open('/proc/self/maps').read()\n"
        "quiver.Client('grpc://127.0.0.1:1')\n"
        "print('libtorch' in maps())\n"
        f"c = quiver.Client('local://{ROOT / 'models'}')\n"
        "print('libtorch' in maps())\n"
        "print(c.infer('identity_fp32', {'INPUT0': np.arange(3, dtype=np.float32)})['OUTPUT0'].tolist())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["False", "True", "[0.0, 1.0, 2.0]"]
