"""Smoke test of the client benchmark program (python/bench/client_bench.py): it runs on a
short setting and writes its tables and JSON. No timing is asserted, only that every
measurement produced a number and the report names each part."""

import json
import os
import pathlib
import subprocess
import sys

from conftest import QUIVER, ROOT

BENCH = ROOT / "python" / "bench" / "client_bench.py"
DEBIAN_PYTHON = "/usr/bin/python3"  # sees numpy; the quiver module is found via PYTHONPATH


def run_bench(tmp_path, *args):
    cpus = sorted(os.sched_getaffinity(0))
    server, client = str(cpus[0]), str(cpus[-1])
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    return subprocess.run(
        [DEBIAN_PYTHON, str(BENCH), "--quick", "--quiver", str(QUIVER), "--out", str(tmp_path),
         "--server-cpus", server, "--client-cpus", client, *args],
        capture_output=True, text=True, timeout=300, env=env)


def test_remote_vs_local_and_python_parts(tmp_path):
    r = run_bench(tmp_path, "--parts", "1,2", "--concurrency", "2", "--py-concurrency", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "client_bench.json").read_text())
    [row] = doc["remote_vs_local"]
    for key in ("local", "grpc", "http"):
        assert isinstance(row[key], float) and row[key] > 0, (key, row)
    assert {r["transport"] for r in doc["python_vs_cpp"]} == {"gRPC", "HTTP", "local://"}
    for r in doc["python_vs_cpp"]:
        for key in ("cpp", "async", "threads"):
            assert isinstance(r[key], float) and r[key] > 0, (key, r)
    md = (tmp_path / "client_bench.md").read_text()
    assert "remote vs local://" in md and "Python module vs C++ client" in md


def test_pyload_rejects_an_unknown_model_repository(tmp_path):
    r = subprocess.run([DEBIAN_PYTHON, str(BENCH), "pyload", "--url", "local:///no/such/repo",
                        "--window-ms", "100"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT / "python")))
    assert r.returncode != 0
    assert "/no/such/repo" in r.stderr
