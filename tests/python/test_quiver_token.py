"""The client's bearer token: quiver.Client(token=..., else $QUIVER_TOKEN), the error
classes of the gateway's status codes, and `quiver perf` / `quiver analyze` (--token, else
$QUIVER_TOKEN), against a stand-in KServe v2 HTTP server that records the Authorization
header of every request (no authentication in quiver serve is needed)."""

import http.server
import json
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import QUIVER, ROOT

sys.path.insert(0, str(ROOT / "python"))
import quiver  # noqa: E402

INFER_ANSWER = json.dumps({
    "model_name": "m", "model_version": "1",
    "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [1], "data": [1.5]}],
}).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        with server.lock:
            server.seen.append((self.path, self.headers.get_all("Authorization") or []))
        if server.status != 200:
            status, body = server.status, json.dumps({"error": "no valid token given"}).encode()
        elif self.path.endswith("/infer"):
            status, body = 200, INFER_ANSWER
        else:
            status, body = 200, b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    """A stand-in server on 127.0.0.1; `status` (200) answers every request."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.seen, server.lock, server.status = [], threading.Lock(), 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _client(url, **kwargs):
    return quiver.Client(url, shared_memory=False, validate_inputs=False, retries=0, **kwargs)


def _infer(client):
    out = client.infer("m", {"INPUT0": np.ones(1, np.float32)})
    np.testing.assert_array_equal(out["OUTPUT0"], np.array([1.5], np.float32))


def test_token_goes_with_every_request(recorder, monkeypatch):
    monkeypatch.delenv("QUIVER_TOKEN", raising=False)
    with _client(recorder.url, token="s3cret-T0ken") as client:
        assert client.live()
        _infer(client)
    paths = [p for p, _ in recorder.seen]
    assert "/v2/health/live" in paths and "/v2/models/m/infer" in paths
    assert all(auth == ["Bearer s3cret-T0ken"] for _, auth in recorder.seen), recorder.seen


def test_quiver_token_is_the_default(recorder, monkeypatch):
    monkeypatch.setenv("QUIVER_TOKEN", "from-env")
    with _client(recorder.url) as client:
        _infer(client)
    with _client(recorder.url, token="") as client:  # "" turns the environment's off
        _infer(client)
    assert [auth for _, auth in recorder.seen] == [["Bearer from-env"], []]


def test_no_token_sends_no_header(recorder, monkeypatch):
    monkeypatch.delenv("QUIVER_TOKEN", raising=False)
    with _client(recorder.url) as client:
        _infer(client)
    assert recorder.seen == [("/v2/models/m/infer", [])]


def test_token_is_pickled_but_never_shown(recorder, monkeypatch):
    monkeypatch.delenv("QUIVER_TOKEN", raising=False)
    client = _client(recorder.url, token="s3cret")
    assert "s3cret" not in repr(client) and "s3cret" not in str(client.config)
    copy = pickle.loads(pickle.dumps(client))  # a Dask worker authenticates as well
    _infer(copy)
    assert recorder.seen[-1][1] == ["Bearer s3cret"]


def test_refusal_is_unauthenticated_without_the_token(recorder):
    recorder.status = 401
    client = _client(recorder.url, token="s3cret")
    with pytest.raises(quiver.Unauthenticated) as raised:
        _infer(client)
    assert isinstance(raised.value, PermissionError)
    assert raised.value.code == "UNAUTHENTICATED"
    assert "s3cret" not in str(raised.value)
    assert len(recorder.seen) == 1, "an UNAUTHENTICATED call was retried"


def test_too_many_requests_is_not_retried(recorder):
    recorder.status = 429
    client = quiver.Client(recorder.url, shared_memory=False, validate_inputs=False, retries=4)
    with pytest.raises(quiver.TooManyRequests) as raised:
        _infer(client)
    assert raised.value.code == "TOO_MANY_REQUESTS"
    assert len(recorder.seen) == 1
    assert client.stats()["retries"] == 0


def test_a_token_that_cannot_be_sent_is_refused_at_once():
    with pytest.raises(quiver.InvalidArgument) as raised:
        quiver.Client("http://127.0.0.1:1", token="s3cret\n")
    assert "s3cret" not in str(raised.value)
    with pytest.raises(TypeError):
        quiver.Client("http://127.0.0.1:1", token=b"bytes")


def test_new_error_classes_are_exported_and_documented():
    for name in ("Unauthenticated", "TooManyRequests"):
        assert name in quiver.__all__ and name in quiver.__doc__
        assert issubclass(getattr(quiver, name), quiver.Error)
    assert issubclass(quiver.Unauthenticated, PermissionError)
    assert "token" in quiver.Client.__doc__ and "QUIVER_TOKEN" in quiver.Client.__doc__


@pytest.mark.parametrize("command", [["perf", "-m", "m"], ["analyze", "-i", "missing.h5"]])
@pytest.mark.parametrize("via", ["flag", "env"])
def test_quiver_program_sends_the_token(recorder, monkeypatch, command, via):
    """`quiver perf` and `quiver analyze` (their first request, the model's metadata, is
    refused by the stand-in's empty answer: enough to see what they sent)."""
    monkeypatch.setenv("QUIVER_TOKEN", "from-env" if via == "env" else "not-this-one")
    args = [str(QUIVER), *command, "-u", recorder.url]
    if via == "flag":
        args += ["--token", "from-flag"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0  # the stand-in is no real server
    expected = "Bearer from-env" if via == "env" else "Bearer from-flag"
    assert recorder.seen and all(auth == [expected] for _, auth in recorder.seen), recorder.seen
    assert "from-" not in result.stdout + result.stderr, "the token was printed"
