"""Issue 10 item 7: one answer everywhere.

The C++ analysis (`quiver analyze`, columnar and event-loop) and the Coffea processor
(eager and on a Dask LocalCluster), each over local://, grpc:// and http://, select the
identical list of events and fill equal histograms (float tolerance) on the same generated
sample (`--preset ci`, cached under data/). The reference is C++ columnar over local://.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
QUIVER = pathlib.Path(os.environ.get("QUIVER_BINARY", ROOT / "build" / "quiver"))
PYTHON = sys.executable
RUN_TIMEOUT_S = 600
# Scores travel as float32 through different code paths (libtorch in-process vs over the
# wire is bit-identical; awkward vs C++ feature arithmetic may differ in the last bit).
COUNT_TOLERANCE = 0  # bin counts are integers of events/jets: must agree exactly


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(cmd, what):
    res = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=RUN_TIMEOUT_S)
    assert res.returncode == 0, f"{what} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def sample():
    """The CI sample (qcd + emj_ctau25, 200 events each), generated once and cached."""
    res = _run([PYTHON, "-m", "quiver_testbed", "generate", "--preset", "ci", "--json",
                "--no-progress", "--out", ROOT / "data"], "generate --preset ci")
    entries = json.loads(res.stdout)
    assert {e["sample"] for e in entries} == {"qcd", "emj_ctau25"}
    return entries


@pytest.fixture(scope="module")
def urls(server):
    return {
        "local": f"local://{ROOT / 'models'}",
        "grpc": f"grpc://{server.grpc_url}",
        "http": f"http://{server.http_url}",
    }


def run_cpp(sample, url, mode, out):
    cmd = [QUIVER, "analyze", "--url", url, "--mode", mode, "--output", out]
    for e in sample:
        cmd += ["--input", e["h5"]]
    _run(cmd, f"quiver analyze --mode {mode} --url {url}")
    return json.loads(pathlib.Path(out).read_text())


def run_coffea(sample, url, mode, out):
    cmd = [PYTHON, "-m", "quiver_testbed.coffea_processor", "--url", url, "--mode", mode,
           "--output", out, "--input", *[e["root"] for e in sample]]
    _run(cmd, f"coffea processor --mode {mode} --url {url}")
    return json.loads(pathlib.Path(out).read_text())


def normalised(result):
    """sample -> (cutflow, sorted selected ids, histograms) of an analysis JSON."""
    out = {}
    for name, s in result["samples"].items():
        out[name] = (list(s["cutflow"]), sorted(tuple(x) for x in s["selected"]),
                     s["histograms"])
    return out


@pytest.fixture(scope="module")
def reference(sample, urls, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "cpp-columnar-local.json"
    ref = normalised(run_cpp(sample, urls["local"], "columnar", out))
    assert set(ref) == {"qcd", "emj_ctau25"}
    cutflow, selected, _ = ref["emj_ctau25"]
    # The comparison means something only if events survive every step in the signal.
    assert cutflow[0] == 200 and len(selected) > 0 and cutflow[-1] == len(selected)
    return ref


def assert_same(ref, got, what):
    assert set(got) == set(ref), what
    for name in ref:
        rc, rsel, rh = ref[name]
        gc, gsel, gh = got[name]
        assert gc == rc, f"{what}: cutflow of {name}: {gc} != {rc}"
        assert gsel == rsel, f"{what}: selected events of {name} differ"
        assert set(gh) == set(rh), f"{what}: histogram names of {name}"
        for h in rh:
            assert gh[h]["edges"] == pytest.approx(rh[h]["edges"]), f"{what}: {name}/{h} edges"
            diff = [abs(a - b) for a, b in zip(gh[h]["counts"], rh[h]["counts"])]
            assert len(gh[h]["counts"]) == len(rh[h]["counts"]), f"{what}: {name}/{h} bins"
            assert max(diff, default=0) <= COUNT_TOLERANCE, (
                f"{what}: {name}/{h} counts {gh[h]['counts']} != {rh[h]['counts']}")


@pytest.mark.parametrize("transport", ["local", "grpc", "http"])
@pytest.mark.parametrize("runner,mode", [("cpp", "columnar"), ("cpp", "eventloop"),
                                         ("coffea", "eager"), ("coffea", "dask")])
def test_same_answer(runner, mode, transport, sample, urls, reference, tmp_path):
    out = tmp_path / f"{runner}-{mode}-{transport}.json"
    run = run_cpp if runner == "cpp" else run_coffea
    got = normalised(run(sample, urls[transport], mode, out))
    assert_same(reference, got, f"{runner} {mode} over {transport}")
