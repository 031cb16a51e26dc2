"""quiver.Client on a Dask distributed.LocalCluster (issue 4, item 5).

Runs python/examples/dask_inference.py's `run`: a Dask array of feature rows, scored
partition by partition with the shipped simple_mlp model on 2 workers, through a client
shipped to the workers inside the task graph (pickled by configuration, reconnecting in
each worker). The scores must equal the same model run in this process (local://models).
Worker processes (processes=True) are the real case; threads (processes=False) are also
checked.
"""

import os
import sys

import numpy as np
import pytest

from conftest import ROOT

# This checkout's package and the example; spawned workers inherit sys.path.
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "python" / "examples")]
import dask_inference  # noqa: E402
import quiver  # noqa: E402

pytest.importorskip("distributed")
# Debian's distributed 2022.12 with its tornado: harmless deprecation noise.
pytestmark = pytest.mark.filterwarnings("ignore:make_current is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def reference():
    """Scores of the example's rows computed in this process."""
    client = quiver.Client(f"local://{ROOT / 'models'}")
    rng = np.random.default_rng(0)
    features = rng.standard_normal((4_000, dask_inference.FEATURES), np.float32)
    return features, client.infer_batched(dask_inference.MODEL,
                                          {dask_inference.INPUT: features})[dask_inference.OUTPUT]


@pytest.mark.parametrize("processes", [True, False], ids=["processes", "threads"])
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_local_cluster_scores_match_local_computation(server, reference, processes, transport):
    url = (f"grpc://127.0.0.1:{server.grpc_port}" if transport == "grpc"
           else f"http://127.0.0.1:{server.http_port}")
    features, scores, _, calls = dask_inference.run(url, workers=2, processes=processes,
                                                    rows=4_000, chunk=500, seed=0)
    expected_features, expected = reference
    np.testing.assert_array_equal(features, expected_features)
    assert scores.shape == (4_000, dask_inference.SCORES)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    assert len(calls) == 2
    if processes:
        # Every partition ran through a client the workers rebuilt from the pickle.
        assert sum(calls.values()) == 16, calls  # 8 partitions x 2 requests (max 256 rows)


def test_local_cluster_local_url_in_workers():
    """local:// in the workers: each worker process loads the repository itself."""
    url = f"local://{ROOT / 'models'}"
    features, scores, _, _ = dask_inference.run(url, workers=2, processes=True, rows=600,
                                                chunk=300, seed=1)
    reference = quiver.Client(url).infer_batched(
        dask_inference.MODEL, {dask_inference.INPUT: features})[dask_inference.OUTPUT]
    np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-6)


def test_example_runs_as_a_script(server):
    """The example's command line, with Debian's /usr/bin/python3 (what README shows)."""
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT / "python")  # this checkout, whatever quiver.pth names
    result = subprocess.run(
        ["/usr/bin/python3", str(ROOT / "python" / "examples" / "dask_inference.py"),
         "--url", f"grpc://127.0.0.1:{server.grpc_port}", "--rows", "2000", "--chunk", "500"],
        capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scores match local://models" in result.stdout
