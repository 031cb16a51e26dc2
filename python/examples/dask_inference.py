#!/usr/bin/env python3
"""Inference on every partition of a Dask array through a quiver.Client.

    # a server: build/quiver serve --model-repository models
    python/examples/dask_inference.py --url grpc://127.0.0.1:8001
    python/examples/dask_inference.py --url local://$PWD/models --threads

Starts a distributed.LocalCluster (2 worker processes by default), builds a Dask array of
rows of 32 features, and scores each partition with the shipped `simple_mlp` model
(Linear 32 -> 8): `map_blocks` ships the quiver.Client to the workers inside the task
graph. The client pickles by configuration only (URLs, fallback, timeouts, retries), so
each worker process connects on its first call and reuses that connection for its later
tasks. Partitions larger than the model's max_batch_size are split by infer_batched.
The result is compared with the same model run in this process (local://models).

Run it with Debian's /usr/bin/python3 or the project venv (.venv/bin/python), after
scripts/setup (which makes `import quiver` work without PYTHONPATH).
"""

import argparse
import pathlib
import sys
import time

import dask.array as da
import distributed
import numpy as np

import quiver

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL, INPUT, OUTPUT, FEATURES, SCORES = "simple_mlp", "INPUT__0", "OUTPUT__0", 32, 8


def score_partition(rows, client):
    """Runs on a worker: one partition [n, 32] -> scores [n, 8]."""
    if rows.shape[0] == 0:
        return np.zeros((0, SCORES), np.float32)
    return client.infer_batched(MODEL, {INPUT: np.ascontiguousarray(rows, np.float32)})[OUTPUT]


def run(url, workers=2, processes=True, rows=20_000, chunk=2_500, seed=0):
    """Scores `rows` random rows on a LocalCluster; returns (features, scores, seconds)."""
    client = quiver.Client(url, timeout=60.0)
    features = np.random.default_rng(seed).standard_normal((rows, FEATURES), np.float32)
    x = da.from_array(features, chunks=(chunk, FEATURES))
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                  processes=processes, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as dask_client:
        scores = x.map_blocks(score_partition, client=client, dtype=np.float32,
                              chunks=(x.chunks[0], (SCORES,)))
        start = time.perf_counter()
        result = scores.compute()
        seconds = time.perf_counter() - start
        # Each worker (process) made its own connection from the pickled configuration.
        calls = dask_client.run(lambda: quiver_calls(client))
    return features, result, seconds, calls


def quiver_calls(client):
    """On a worker: the calls its copy of the client made so far."""
    return client.stats()["calls"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="grpc://..., http://... or local://...")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", action="store_true",
                        help="threads instead of worker processes (processes=False)")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=2_500)
    args = parser.parse_args()

    features, scores, seconds, calls = run(args.url, args.workers, not args.threads,
                                           args.rows, args.chunk)
    reference = quiver.Client(f"local://{ROOT / 'models'}").infer_batched(
        MODEL, {INPUT: features})[OUTPUT]
    np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-6)
    print(f"{args.rows} rows in {len(range(0, args.rows, args.chunk))} partitions on "
          f"{args.workers} workers: {seconds:.2f} s ({args.rows / seconds:.0f} rows/s); "
          f"quiver calls counted in each worker's process {sorted(calls.values())}; "
          "scores match local://models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
