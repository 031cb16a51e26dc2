"""The Coffea side of the emerging-jets test bed (issue 10, items 6/7/9/10).

Inputs are made here, small and deterministic: synthetic ROOT files in the contract's
NanoAOD-like layout and TorchScript stand-ins of emj_gnn / emj_dnn / emj_event
(python/quiver_testbed/synthetic.py), served by a `quiver serve` started on 127.0.0.1
port 0 for this module and always stopped.

- the processor eagerly (processor.Runner + IterativeExecutor, several chunks) and on Dask
  (apply_to_fileset + dask.compute on a 2-worker distributed.LocalCluster) gives the same
  cutflow, selected event ids and histograms;
- the Quiver wrapper gives the same scores over grpc://, http:// and local:// as torch in
  this process, splits by the model config's max_batch_size, fails over to a second URL
  and falls back to local://; it pickles without its client;
- coffea's own triton_wrapper (unchanged) against quiver serve gives the same scores;
- the CLI writes the contract's JSON.
"""

import json
import math
import os
import pickle
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import QUIVER, ROOT, ServerProcess

sys.path[:0] = [str(ROOT / "python")]  # spawned Dask workers inherit sys.path
if not any((ROOT / "build" / "python" / "quiver").glob("_quiver*.so")):
    # this checkout has no build of its own: use the one next to the server binary
    os.environ.setdefault("QUIVER_BUILD_DIR", str(QUIVER.parent))

ak = pytest.importorskip("awkward")
pytest.importorskip("coffea")
pytest.importorskip("torch")
import quiver  # noqa: E402
from quiver_testbed import coffea_processor as cp  # noqa: E402
from quiver_testbed import emj_inputs, synthetic  # noqa: E402

MAX_BATCH = 128  # stand-in models' max_batch_size: the wrapper must split by it


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """{'files': {sample: [paths]}, 'repo': model repository} made for this module."""
    d = tmp_path_factory.mktemp("testbed")
    files = {
        "qcd": [synthetic.write_root(d / "qcd_0.root", 300, seed=11, run=1),
                synthetic.write_root(d / "qcd_1.root", 250, seed=12, run=1, first_event=300)],
        "emj": [synthetic.write_root(d / "emj_0.root", 300, seed=13, run=2)],
    }
    repo = synthetic.write_models(d / "models", max_batch_size=MAX_BATCH,
                                  preferred_batch_size=32)
    return {"files": files, "repo": repo}


@pytest.fixture(scope="module")
def emj_server(tmp_path_factory, inputs):
    proc = ServerProcess(["--model-repository", inputs["repo"], "--http-port", "0",
                          "--grpc-port", "0", "--http-address", "127.0.0.1",
                          "--grpc-address", "127.0.0.1"],
                         tmp_path_factory.mktemp("log") / "quiver-serve.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        rc = proc.stop(signal.SIGTERM)
        assert rc == 0, f"quiver serve exited with {rc}; log:\n{proc.log()}"


def grpc_url(server):
    return f"grpc://127.0.0.1:{server.grpc_port}"


def http_url(server):
    return f"http://127.0.0.1:{server.http_port}"


def dead_url():
    """A grpc:// URL on a loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"grpc://127.0.0.1:{port}"


def shm_regions(server) -> set:
    """Names of the system shared-memory regions registered with the server."""
    tc = pytest.importorskip("tritonclient.http")
    client = tc.InferenceServerClient(server.http_url)
    try:
        return {r["name"] for r in client.get_system_shared_memory_status()}
    finally:
        client.close()


@pytest.fixture(scope="module")
def lead_jets(inputs):
    """The 4 leading selected jets (with tracks) of the events passing the HT cut."""
    from coffea.nanoevents import NanoEventsFactory

    path = str(inputs["files"]["qcd"][0])
    events = NanoEventsFactory.from_root({path: "Events"}, schemaclass=cp.EmjSchema,
                                         mode="eager").events()
    jets = ak.with_field(events.Jet, events.Jet.constituents.pf, "tracks")
    jets = jets[(jets.pt > 50) & (abs(jets.eta) < 2.0)]
    jets = jets[(ak.num(jets) >= 4) & (ak.sum(jets.pt, axis=1) > 500)]
    return jets


@pytest.fixture(scope="module")
def reference(inputs, lead_jets):
    """Scores of the stand-in models run with torch in this process."""
    lead = lead_jets[:, :4]
    feats, mask = emj_inputs.track_features(lead)
    tracks = ak.to_numpy(feats).reshape(-1, 64, 8)
    n = len(lead)
    return {
        "dnn": synthetic.local_scores(inputs["repo"], "emj_dnn", {
            "jet": ak.to_numpy(emj_inputs.jet_features(lead, 4)).reshape(-1, 6)}).reshape(n, 4),
        "gnn": synthetic.local_scores(inputs["repo"], "emj_gnn", {
            "tracks": tracks, "mask": ak.to_numpy(mask).reshape(-1, 64)}).reshape(n, 4),
        "event": synthetic.local_scores(inputs["repo"], "emj_event", {
            "jets": ak.to_numpy(emj_inputs.jet_features(lead_jets, 8)),
            "mask": ak.to_numpy(emj_inputs.jet_mask(lead_jets, 8))})[:, 0],
    }


def test_inputs_follow_the_contract(lead_jets):
    """Track features of one jet by hand: order, wrap of dphi, truncation at 64, mask."""
    lead = lead_jets[:, :4]
    feats, mask = (ak.to_numpy(a) for a in emj_inputs.track_features(lead))
    assert feats.shape == (len(lead), 4, 64, 8) and mask.shape == (len(lead), 4, 64)
    n_track = ak.to_numpy(lead.nTrack)
    np.testing.assert_array_equal(mask.sum(axis=2), np.minimum(n_track, 64))
    assert (n_track > 64).any(), "the synthetic data should exercise truncation"
    e, j = np.argwhere(n_track > 0)[0]
    trk = lead.tracks[e, j]
    k = min(64, len(trk))
    expected = np.stack([
        np.log(trk.pt), trk.eta - lead.eta[e, j],
        (trk.phi - lead.phi[e, j] + np.pi) % (2 * np.pi) - np.pi, trk.charge, trk.d0,
        trk.d0 / trk.d0Err, trk.dz, np.sqrt(trk.d0 ** 2 + trk.dz ** 2)], axis=1)[:k]
    np.testing.assert_allclose(feats[e, j, :k], expected, rtol=1e-5, atol=1e-5)
    assert (feats[e, j, k:] == 0).all()
    assert np.all(np.diff(feats[e, j, :k, 0]) <= 0), "tracks in pt order"
    assert ((feats[..., 2] >= -np.pi) & (feats[..., 2] < np.pi)).all()


def test_column_inputs_equal_stacked_inputs(lead_jets):
    """quiver_wrapper's column path (None padding, stacked in numpy) == awkward stacking,
    also with whole jets of padding (3 jets padded to 4)."""
    from quiver_testbed.ml_wrapper import _stack_columns

    few = lead_jets[:, :3]
    cols, mask = emj_inputs.track_features(few, 4, as_columns=True)
    stacked, stacked_mask = emj_inputs.track_features(few, 4)
    got = _stack_columns([ak.to_numpy(c) for c in cols], np.float32)
    np.testing.assert_array_equal(got, ak.to_numpy(stacked))
    mask = ak.to_numpy(mask)
    mask = mask.filled(0) if isinstance(mask, np.ma.MaskedArray) else mask
    np.testing.assert_array_equal(mask, ak.to_numpy(stacked_mask))
    assert (mask[:, 3] == 0).all() and (got[:, 3] == 0).all() and mask[:, :3].sum() > 0
    jets = _stack_columns([ak.to_numpy(c) for c in
                           emj_inputs.jet_features(few, 8, as_columns=True)], np.float32)
    np.testing.assert_array_equal(jets, ak.to_numpy(emj_inputs.jet_features(few, 8)))


@pytest.mark.parametrize("transport", ["grpc", "http", "local"])
def test_wrapper_matches_torch_over_each_transport(emj_server, inputs, lead_jets, reference,
                                                   transport):
    url = {"grpc": grpc_url(emj_server), "http": http_url(emj_server),
           "local": f"local://{inputs['repo']}"}[transport]
    lead = lead_jets[:, :4]
    dnn = cp.QuiverDnn("emj_dnn", url)
    gnn = cp.QuiverGnn("emj_gnn", url)
    event = cp.QuiverEvent("emj_event", url)
    regions_before = shm_regions(emj_server)
    got_dnn, got_gnn, got_event = dnn(lead), gnn(lead), event(lead_jets)
    if transport != "local":
        # the GNN's requests (128 x 64 x 8 floats) went through shared memory: the server
        # holds regions this client registered
        assert shm_regions(emj_server) - regions_before
    assert dnn.batch_size == MAX_BATCH  # read from the model config over this transport
    np.testing.assert_allclose(ak.to_numpy(got_dnn), reference["dnn"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ak.to_numpy(got_gnn), reference["gnn"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ak.to_numpy(got_event), reference["event"], rtol=1e-5,
                               atol=1e-6)
    assert len(lead) * 4 > 2 * MAX_BATCH  # several requests per call
    # a wrapper travels (to Dask workers) without its client, and works after the trip
    assert dnn._client is not None
    copy = pickle.loads(pickle.dumps(dnn))
    assert copy._client is None
    np.testing.assert_array_equal(ak.to_numpy(copy(lead)), ak.to_numpy(got_dnn))


def test_wrapper_splits_by_max_batch_size(emj_server, lead_jets):
    """The server counts one request per max_batch_size rows (ceil), all successful."""
    tc = pytest.importorskip("tritonclient.http")
    lead = lead_jets[:, :4]
    stats = tc.InferenceServerClient(emj_server.http_url)

    def successes():
        s = stats.get_inference_statistics("emj_dnn")["model_stats"][0]
        return s["inference_stats"]["success"]["count"]

    before = successes()
    cp.QuiverDnn("emj_dnn", http_url(emj_server), max_in_flight=4)(lead)
    assert successes() - before == math.ceil(len(lead) * 4 / MAX_BATCH)
    before = successes()
    cp.QuiverDnn("emj_dnn", http_url(emj_server), max_batch_size=50)(lead)
    assert successes() - before == math.ceil(len(lead) * 4 / 50)


def test_wrapper_without_a_readable_config_lets_the_client_split(
        emj_server, lead_jets, reference, monkeypatch):
    """No config over any URL: a warning, then Client.infer_batched splits by it."""
    from quiver_testbed import ml_wrapper

    def unreadable(*args, **kwargs):
        raise OSError("no config here")

    monkeypatch.setattr(ml_wrapper, "model_max_batch_size", unreadable)
    dnn = cp.QuiverDnn("emj_dnn", grpc_url(emj_server))
    with pytest.warns(UserWarning, match="no model config"):
        got = dnn(lead_jets[:, :4])
    assert dnn.batch_size == -1
    np.testing.assert_allclose(ak.to_numpy(got), reference["dnn"], rtol=1e-5, atol=1e-6)


def test_wrapper_fails_over_and_falls_back(emj_server, inputs, lead_jets, reference):
    lead = lead_jets[:, :4]
    over = cp.QuiverDnn("emj_dnn", [dead_url(), grpc_url(emj_server)], timeout=30)
    np.testing.assert_allclose(ak.to_numpy(over(lead)), reference["dnn"], rtol=1e-5,
                               atol=1e-6)
    assert over.batch_size == MAX_BATCH  # the config came from the second URL
    back = cp.QuiverDnn("emj_dnn", [dead_url()], fallback=f"local://{inputs['repo']}",
                        timeout=30)
    np.testing.assert_allclose(ak.to_numpy(back(lead)), reference["dnn"], rtol=1e-5,
                               atol=1e-6)
    assert back.client.stats()["fallback_calls"] > 0
    dead = cp.QuiverDnn("emj_dnn", [dead_url()], timeout=5, max_batch_size=MAX_BATCH)
    with pytest.raises(quiver.Error):
        dead(lead)


@pytest.fixture(scope="module")
def emj_gateway(tmp_path_factory, emj_server):
    """`quiver gateway` in front of emj_server (issue 11: coffea's wrapper works through it)."""
    proc = ServerProcess(["--upstream", f"grpc://{emj_server.grpc_url}", "--http-port", "0",
                          "--grpc-port", "0"],
                         tmp_path_factory.mktemp("log") / "quiver-gateway.log", command="gateway")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("via", ["server", "gateway"])
@pytest.mark.parametrize("protocol", [
    "grpc",
    pytest.param("http", marks=pytest.mark.xfail(
        raises=TypeError, strict=True,
        reason="coffea 2026.9's triton_wrapper calls tritonclient.http's get_model_metadata "
               "with as_json=, which only the gRPC client has: it fails before any request, "
               "whatever the server (Triton too)")),
])
def test_coffea_triton_wrapper_against_quiver_serve(request, lead_jets, reference, protocol,
                                                    via):
    """coffea.ml_tools.triton_wrapper, unchanged, talks to quiver serve, directly and through
    quiver gateway."""
    pytest.importorskip("tritonclient.grpc")
    from coffea.ml_tools.triton_wrapper import triton_wrapper

    class TritonDnn(emj_inputs.flat_dnn_inputs, triton_wrapper):
        pass

    class TritonGnn(emj_inputs.flat_gnn_inputs, triton_wrapper):
        pass

    target = request.getfixturevalue("emj_server" if via == "server" else "emj_gateway")
    port = target.grpc_port if protocol == "grpc" else target.http_port
    # quiver serve has no TLS, as a default Triton: gRPC needs ssl=False
    args = {"ssl": False} if protocol == "grpc" else None
    flat = ak.flatten(lead_jets[:, :4])  # triton_wrapper takes the model's rank only
    dnn = TritonDnn(f"triton+{protocol}://127.0.0.1:{port}/emj_dnn/1", client_args=args)
    gnn = TritonGnn(f"triton+{protocol}://127.0.0.1:{port}/emj_gnn/1", client_args=args)
    got_dnn, got_gnn = dnn(flat), gnn(flat)
    assert dnn.batch_size == 32  # the config's preferred_batch_size[0], as coffea reads it
    np.testing.assert_allclose(ak.to_numpy(got_dnn), reference["dnn"].ravel(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(ak.to_numpy(got_gnn), reference["gnn"].ravel(), rtol=1e-5,
                               atol=1e-6)


def _assert_same_results(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name]["cutflow"] == b[name]["cutflow"], name
        assert a[name]["selected"] == b[name]["selected"], name
        for h, ha in a[name]["histograms"].items():
            hb = b[name]["histograms"][h]
            assert ha["edges"] == hb["edges"], (name, h)
            np.testing.assert_allclose(ha["counts"], hb["counts"], rtol=1e-9, err_msg=h)


@pytest.fixture(scope="module")
def eager_result(emj_server, inputs):
    fileset = [f"{name}={p}" for name, paths in inputs["files"].items() for p in paths]
    return cp.run(fileset, [grpc_url(emj_server)], mode="eager", chunksize=120)


def test_eager_result_is_consistent(eager_result, inputs):
    samples = eager_result["samples"]
    assert set(samples) == {"qcd", "emj"}
    for name, s in samples.items():
        cf = s["cutflow"]
        assert cf[0] == {"qcd": 550, "emj": 300}[name]
        assert cf[0] >= cf[1] >= cf[2] >= cf[3] > 0, cf
        h = s["histograms"]
        assert sum(h["ht"]["counts"]) == cf[1]
        assert sum(h["n_tagged"]["counts"]) == cf[2]
        assert sum(h["n_tagged"]["counts"][2:]) == cf[3]
        assert sum(h["event_score"]["counts"]) == cf[2]
        assert sum(h["gnn_score"]["counts"]) + 0 <= 4 * cf[2]
        assert sum(h["jet_pt"]["counts"]) == 4 * cf[2]
        assert len(h["ht"]["edges"]) == 41 and h["ht"]["edges"][-1] == 4000.0
        assert len(s["selected"]) == cf[3]
        assert len({tuple(x) for x in s["selected"]}) == cf[3]
    assert {r for r, _, _ in samples["emj"]["selected"]} == {2}


def test_eager_equals_dask(emj_server, inputs, eager_result):
    distributed = pytest.importorskip("distributed")
    fileset = [f"{name}={p}" for name, paths in inputs["files"].items() for p in paths]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        # several partitions per file (coffea's preprocess), over HTTP this time
        lazy = cp.run(fileset, [http_url(emj_server)], mode="dask", scheduler=client,
                      step_size=100)
        workers = client.run(lambda: os.getpid())
    assert len(workers) == 2
    _assert_same_results(eager_result["samples"], lazy["samples"])


def test_taggers_differ_and_no_ml_skips_inference(emj_server, inputs):
    files = [str(p) for p in inputs["files"]["emj"]]
    dnn = cp.run(files, [grpc_url(emj_server)], tagger="dnn")["samples"]["emj_0"]
    cut = cp.run(files, None, ml=False)["samples"]["emj_0"]
    assert dnn["cutflow"][:3] == cut["cutflow"][:3]
    assert sum(cut["histograms"]["gnn_score"]["counts"]) == 0
    assert sum(dnn["histograms"]["dnn_score"]["counts"]) == 4 * dnn["cutflow"][2]
    # the cut-based and the DNN stand-in taggers select differently on this data
    assert dnn["selected"] != cut["selected"]


def test_cli_writes_the_contract_json(emj_server, inputs, tmp_path, eager_result):
    out = tmp_path / "out.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "python")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    args = [sys.executable, "-m", "quiver_testbed.coffea_processor", "--input"]
    args += [f"{name}={p}" for name, paths in inputs["files"].items() for p in paths]
    args += ["--url", dead_url(), "--url", grpc_url(emj_server), "--mode", "eager",
             "--output", str(out)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result) == {"samples", "timing"}
    _assert_same_results(eager_result["samples"], result["samples"])
    s = result["samples"]["qcd"]
    assert set(s) == {"cutflow", "histograms", "selected"}
    assert set(s["histograms"]) == set(cp.HISTOGRAMS)
    assert all(set(h) == {"edges", "counts"} for h in s["histograms"].values())


def test_cli_serves_the_models_itself(inputs, tmp_path):
    """--serve MODELS: the CLI runs its own quiver serve (QUIVER_BINARY) and stops it."""
    out = tmp_path / "out.json"
    env = dict(os.environ, QUIVER_BINARY=str(QUIVER), PYTHONPATH=os.pathsep.join(
        [str(ROOT / "python")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    path = inputs["files"]["emj"][0]
    done = subprocess.run(
        [sys.executable, "-m", "quiver_testbed.coffea_processor", "--input", str(path),
         "--serve", str(inputs["repo"]), "--tagger", "dnn", "--output", str(out)],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    s = result["samples"]["emj_0"]
    assert sum(s["histograms"]["gnn_score"]["counts"]) == 4 * s["cutflow"][2] > 0
    assert result["timing"]["urls"][0].startswith("grpc://127.0.0.1:")


def test_wrapper_on_a_model_without_batching():
    """max_batch_size 0 (the shipped identity_fp32, local://): one request, shapes as given."""
    from quiver_testbed.ml_wrapper import quiver_wrapper

    wrapper = quiver_wrapper("identity_fp32", f"local://{ROOT / 'models'}")
    x = np.arange(5000, dtype=np.float64)  # converted to the model's FP32
    out = wrapper.numpy_call(["OUTPUT0"], {"INPUT0": x})
    assert wrapper.batch_size == 0
    assert out["OUTPUT0"].dtype == np.float32
    np.testing.assert_array_equal(out["OUTPUT0"], x.astype(np.float32))
