"""Generation with Pythia: reproducible by seed, independent of the number of workers,
cached, and the CLI works from the repository root (pythia8mc import pitfall)."""

import json
import pathlib
import re
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest

import quiver_testbed
from quiver_testbed import generate, samples

ROOT = pathlib.Path(__file__).resolve().parents[3]


def small(seed, name="emj_ctau25", n=30):
    s = samples.sample_settings(name, n, seed)
    s["chunk_events"] = 10  # three chunks: exercises the chunk seeding and merging
    return s


def gen(settings, out, workers=1):
    return generate.generate_sample(settings, out, workers, progress=False,
                                    write_root_file=False)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    out = tmp_path_factory.mktemp("a")
    return gen(small(3), out, workers=2)


def test_same_seed_same_bytes_any_worker_count(first, tmp_path):
    again = gen(small(3), tmp_path, workers=1)
    assert not again["cached"]
    assert pathlib.Path(first["h5"]).read_bytes() == pathlib.Path(again["h5"]).read_bytes()


def test_different_seed_different_events(first, tmp_path):
    other = gen(small(4), tmp_path)
    a, b = quiver_testbed.read_h5(first["h5"]), quiver_testbed.read_h5(other["h5"])
    assert pathlib.Path(other["dir"]).name != pathlib.Path(first["dir"]).name
    assert ak.to_list(a.jets.pt) != ak.to_list(b.jets.pt)


def test_contents_and_cache(first):
    ev = quiver_testbed.read_h5(first["h5"])
    assert len(ev) == 30
    assert ev.event.to_list() == list(range(1, 31))  # unique, chunk-independent
    assert set(ev.luminosityBlock.to_list()) == {1, 2, 3}
    attrs = quiver_testbed.file_attrs(first["h5"])
    assert attrs["sample"] == "emj_ctau25" and attrs["ctau_mm"] == 25.0
    assert attrs["settings"]["generator"]["mpidark"] == 10.0
    # Signal: most jets are dark and their tracks displaced.
    assert ak.mean(ev.jets.isDark) > 0.5
    assert ak.mean(ev.jets.medianLogIp2d[ev.jets.nTrack > 0]) > -1.0
    again = gen(small(3), pathlib.Path(first["dir"]).parent)
    assert again["cached"] and again["h5"] == first["h5"]


def test_incomplete_folder_is_redone(tmp_path):
    s = small(5, n=10)
    folder = generate.sample_dir(tmp_path, s)
    folder.mkdir(parents=True)
    (folder / (generate.file_stem(s) + ".h5")).write_bytes(b"half a file")  # no COMPLETE
    r = gen(s, tmp_path)
    assert not r["cached"] and len(quiver_testbed.read_h5(r["h5"])) == 10
    assert (folder / generate.COMPLETE).exists()


def test_cli_from_repo_root_prints_files(tmp_path):
    # The repository root has a python/ folder that pythia8mc's import would execute.
    cmd = [sys.executable, "-m", "quiver_testbed", "generate", "--sample", "qcd", "--events",
           "20", "--seed", "2", "--out", str(tmp_path), "--no-progress", "--json"]
    env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)  # stdout is only the JSON (FastJet's banner goes to stderr)
    assert pathlib.Path(out[0]["h5"]).exists() and pathlib.Path(out[0]["root"]).exists()
    ev = quiver_testbed.read_h5(out[0]["h5"])
    assert len(ev) == 20 and ak.mean(ev.jets.isDark) == 0
    res2 = subprocess.run(cmd[:-1], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert "cached" in res2.stderr and out[0]["h5"] in res2.stdout


def test_bad_settings_are_refused():
    with pytest.raises(samples.SettingsError, match="unknown sample"):
        samples.sample_settings("nope", 10, 1)
    with pytest.raises(samples.SettingsError, match="--seed must be >= 0"):
        samples.sample_settings("qcd", 10, -1)
    with pytest.raises(samples.SettingsError, match="c\\*tau must be in"):
        samples.sample_settings("emj_ctau0", 10, 1)
    s = samples.sample_settings("emj_ctau0p5", 10, 1)
    assert s["generator"]["ctau_mm"] == 0.5 and s["process"] == "signal"
    assert samples.signal_name(0.5) == "emj_ctau0p5"
    assert samples.pythia_lines(s)[-3] == "4900111:tau0 = 0.5"


def _chunk1_raises(job):
    if job[1] == 1:
        raise ValueError("broken detector")
    return generate.__dict__["_real_chunk_worker"](job)


def test_failed_chunk_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(generate.__dict__, "_real_chunk_worker", generate._chunk_worker)
    monkeypatch.setattr(generate, "_chunk_worker", _chunk1_raises)
    with pytest.raises(generate.pythia_gen.GenerationError,
                       match=r"chunk 1 \(events 11-20\) failed: ValueError: broken detector"):
        gen(small(6, n=20), tmp_path, workers=2)
    assert not (generate.sample_dir(tmp_path, small(6, n=20)) / generate.COMPLETE).exists()


CRASH = """
import os, sys
from quiver_testbed import generate, samples
real = generate._chunk_worker
def crash(job):
    if job[1] == 1:
        os._exit(3)  # a worker killed mid-chunk (segfault, out of memory)
    return real(job)
generate._chunk_worker = crash
s = samples.sample_settings("qcd", 40, 1)
s["chunk_events"] = 10  # four chunks, two workers: some are still queued
try:
    generate.generate_sample(s, sys.argv[1], 2, progress=False, write_root_file=False)
except generate.pythia_gen.GenerationError as err:
    print(err)
    sys.exit(1)
"""


def test_dead_worker_is_reported_not_waited_for(tmp_path):
    # A multiprocessing.Pool waits forever for the chunk of a worker that died.
    res = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=90)
    assert res.returncode == 1, res.stderr
    assert re.search(r"worker process died .* chunk\(s\) (0, )?1(, 2)?(, 3)? of 4 were "
                     r"unfinished", res.stdout), res.stdout


def test_cli_refuses_zero_events(tmp_path, monkeypatch, capsys):
    # --events 0 must be an error, not silently the default event count.
    from quiver_testbed import cli
    calls = []
    monkeypatch.setattr(cli, "generate_sample", lambda *a, **k: calls.append(a))
    for extra in (["--sample", "qcd"], ["--preset", "ci"]):
        rc = cli.main(["generate", *extra, "--events", "0", "--out", str(tmp_path)])
        assert rc == 2 and not calls
        assert "--events must be positive" in capsys.readouterr().err


def test_cache_key_covers_pythia_lines_and_versions(monkeypatch):
    # Every Pythia line (not only the formatted parameters) and the generator's version
    # change the events, so they must change the settings hash (the cache folder).
    base = samples.sample_settings("emj_ctau25", 10, 1)
    assert base["versions"]["pythia8mc"] and "Beams:eCM = 13600." in base["pythia"]
    monkeypatch.setattr(samples, "BEAM", [*samples.BEAM[:-1], "ParticleDecays:zMax = 5000."])
    changed = samples.sample_settings("emj_ctau25", 10, 1)
    assert samples.settings_hash(changed) != samples.settings_hash(base)
    monkeypatch.undo()
    pu = samples.sample_settings("qcd", 10, 1, pileup_mu=5)
    assert "SoftQCD:nonDiffractive = on" in pu["pythia_pileup"]
    assert "pythia_pileup" not in samples.sample_settings("qcd", 10, 1)
    edited = samples.sample_settings("emj_ctau25", 10, 1)
    edited["generator"]["ctau_mm"] = 3.0  # the stored Pythia lines still say 25
    with pytest.raises(samples.SettingsError, match="edited after sample_settings"):
        generate.generate_sample(edited, "/nonexistent", 1, progress=False)


def test_samples_with_the_same_seed_are_independent(tmp_path):
    # Same --seed, two c*tau points: the Z' events, dark showers and detector random numbers
    # must not be shared (they were: leading jets agreed event by event).
    lead = {}
    for name in ("emj_ctau1", "emj_ctau5"):
        s = samples.sample_settings(name, 10, 1)
        s["chunk_events"] = 10
        ev = quiver_testbed.read_h5(gen(s, tmp_path)["h5"])
        lead[name] = ak.to_numpy(ak.fill_none(ak.firsts(ev.jets.pt), 0.0))
    a, b = lead["emj_ctau1"], lead["emj_ctau5"]
    same = abs(a - b) < 0.01 * np.maximum(a, b)
    assert same.sum() <= 1, (a, b)
    assert samples.chunk_seed("emj_ctau1", 1, 0) != samples.chunk_seed("emj_ctau5", 1, 0)
    assert samples.detector_seed("qcd", 1, 0) != samples.detector_seed("emj_ctau25", 1, 0)


def test_pileup_adds_displaced_in_z_tracks(tmp_path):
    # Pileup vertices spread along the beam (sigma_z 35 mm): their tracks have large dz
    # w.r.t. the hard vertex. Same hard events (same sample name and seed) without pileup.
    frac = {}
    for mu in (None, 8.0):
        s = samples.sample_settings("qcd", 8, 2, pileup_mu=mu)
        s["chunk_events"] = 4
        r = gen(s, tmp_path, workers=2)
        assert ("_pu8" in r["h5"]) == (mu is not None)
        ev = quiver_testbed.read_h5(r["h5"])
        assert len(ev) == 8 and ev.event.to_list() == list(range(1, 9))
        dz = ak.to_numpy(ak.flatten(ev.jets.tracks.dz, axis=None))
        frac[mu] = np.mean(np.abs(dz) > 5.0)
    assert frac[8.0] > frac[None] + 0.01, frac


def test_relative_out_with_more_chunks_than_workers(tmp_path, monkeypatch):
    # `generate --out data` from the repository root: one worker runs all three chunks.
    monkeypatch.chdir(tmp_path)
    r = gen(small(8, name="qcd"), "data", workers=1)
    assert len(quiver_testbed.read_h5(tmp_path / r["h5"])) == 30
