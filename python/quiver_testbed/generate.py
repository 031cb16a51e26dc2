"""Sample generation: chunks of events generated in worker processes (Pythia -> detector ->
reconstruction), merged in chunk order and written as HDF5 + ROOT into a folder named after
the settings hash; a COMPLETE marker makes a rerun with the same settings instant.
"""

import concurrent.futures
import json
import multiprocessing
import os
import pathlib
import shutil
import sys
import time

import awkward as ak
import numpy as np

from . import detector, pythia_gen, reco, samples  # pythia8mc itself is imported lazily
from .h5io import write_h5
from .rootio import write_root

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPLETE = "COMPLETE"


def default_out():
    """data/ at the repository root."""
    return REPO_ROOT / "data"


def default_workers():
    return max(1, min(2, os.cpu_count() or 1))


def sample_dir(out, settings):
    return pathlib.Path(out) / f"{settings['sample']}-{samples.settings_hash(settings)}"


def file_stem(settings):
    """Self-explaining file name: sample, events, seed (+ pileup, non-default pT-hat)."""
    stem = f"{settings['sample']}_{settings['n_events']}ev_seed{settings['seed']}"
    mu = settings["detector"]["pileup_mu"]
    if mu > 0:
        stem += f"_pu{mu:g}"
    pthat = settings["generator"].get("pthat_min")
    if pthat is not None and pthat != samples.SAMPLES["qcd"]["pthat_min"]:
        stem += f"_pthat{pthat:g}"
    return stem.replace(".", "p")


def _chunk_worker(job):
    """Generate one chunk in a worker process: (chunk index, events array, failed count,
    timings). The worker first moves to the output folder: Pythia is imported there (see
    pythia_gen's docstring)."""
    settings, chunk, n, workdir = job
    os.chdir(workdir)
    # FastJet's banner and Pythia's messages go to a log in the output folder, not to the
    # terminal (stdout lists the files; the progress bar is on stderr).
    log = os.open("generator.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)

    t0 = time.perf_counter()
    name, seed = settings["sample"], settings["seed"]
    det = settings["detector"]
    pythia = pythia_gen.make_pythia(settings["pythia"], samples.chunk_seed(name, seed, chunk))
    prt, failed = pythia_gen.next_events(pythia, n)
    lookup = pythia_gen.ParticleLookup(pythia)
    parts = pythia_gen.visible_particles(prt, lookup)
    rng = np.random.default_rng(samples.detector_seed(name, seed, chunk))
    pv = detector.beamspot(n, det, rng)
    if det["pileup_mu"] > 0:
        parts = _add_pileup(parts, settings, chunk, rng)
    t1 = time.perf_counter()
    parts = _shift_vertices(parts, pv)
    pf, _ = detector.simulate(parts, pv, det, rng)
    ev = reco.reconstruct(pf, settings["reco"])
    t2 = time.perf_counter()
    first = chunk * settings["chunk_events"]
    ids = {"run": np.full(n, settings["run"], np.uint32),
           "luminosityBlock": np.full(n, chunk + 1, np.uint32),
           "event": np.arange(first + 1, first + n + 1, dtype=np.uint64),
           "MET_pt": ev.MET_pt, "MET_phi": ev.MET_phi,
           "weight": np.ones(n, np.float32), "jets": ev.jets}
    return chunk, ak.zip(ids, depth_limit=1), failed, (t1 - t0, t2 - t1)


def _shift_vertices(parts, pv):
    """Add each event's primary vertex to the production vertices of its particles
    (pileup particles, flagged by the field 'pu', carry absolute vertices already)."""
    counts = ak.num(parts, axis=1).to_numpy()
    ev = np.repeat(np.arange(len(parts)), counts)
    flat = ak.flatten(parts, axis=1)
    is_pu = ak.to_numpy(flat.pu) if "pu" in parts.fields else np.zeros(len(ev), bool)
    cols = {f: ak.to_numpy(flat[f]) for f in flat.fields if f != "pu"}
    for k, axis in (("x", 0), ("y", 1), ("z", 2)):
        cols[k] = cols[k] + np.where(is_pu, 0.0, pv[ev, axis])
    return ak.unflatten(ak.zip(cols, depth_limit=1), counts)


def _add_pileup(parts, settings, chunk, rng):
    """Merge Poisson(mu) soft-QCD interactions into each event, each at its own vertex from
    the beam spot (particles flagged 'pu': their vertices are absolute)."""

    det = settings["detector"]
    n = len(parts)
    n_pu = rng.poisson(det["pileup_mu"], size=n)
    total = int(n_pu.sum())
    hard = ak.with_field(parts, ak.zeros_like(parts.px, dtype=bool), "pu")
    if total == 0:
        return hard
    pythia = pythia_gen.make_pythia(
        settings["pythia_pileup"],
        samples.chunk_seed(settings["sample"], settings["seed"], chunk, stream=1))
    prt, _ = pythia_gen.next_events(pythia, total)
    pu = pythia_gen.visible_particles(prt, pythia_gen.ParticleLookup(pythia))
    vtx = detector.beamspot(total, det, rng)
    counts = ak.num(pu, axis=1).to_numpy()
    which = np.repeat(np.arange(total), counts)
    flat = ak.flatten(pu, axis=1)
    cols = {f: ak.to_numpy(flat[f]) for f in flat.fields}
    for k, axis in (("x", 0), ("y", 1), ("z", 2)):
        cols[k] = cols[k] + vtx[which, axis]
    cols["pu"] = np.ones(len(which), bool)
    # pileup interactions -> hard events: group interaction lists, then flatten per event
    pu_ev = ak.unflatten(ak.unflatten(ak.zip(cols, depth_limit=1), counts), n_pu)
    return ak.concatenate([hard, ak.flatten(pu_ev, axis=2)], axis=1)


def generate_sample(settings, out, workers, progress=True, write_root_file=True, log=None):
    """Generate (or reuse) one sample. Returns a dict: dir, h5, root, cached, timings."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    # The workers run settings["pythia"] (hashed with the rest): it must match the parameters.
    if settings["pythia"] != samples.pythia_lines(settings) or (
            settings["detector"]["pileup_mu"] > 0) != ("pythia_pileup" in settings):
        raise samples.SettingsError("settings edited after sample_settings(): the Pythia lines "
                                    "do not match the generator or pileup parameters")
    folder = sample_dir(out, settings)
    stem = file_stem(settings)
    h5_path, root_path = folder / f"{stem}.h5", folder / f"{stem}.root"
    result = {"sample": settings["sample"], "dir": str(folder), "h5": str(h5_path),
              "root": str(root_path) if write_root_file else None}
    if (folder / COMPLETE).exists() and h5_path.exists() and (
            not write_root_file or root_path.exists()):
        result["cached"] = True
        return result
    if folder.exists():
        shutil.rmtree(folder)  # an incomplete earlier attempt
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")

    n, per = settings["n_events"], settings["chunk_events"]
    # Absolute: a worker process chdirs there for every chunk it runs (a relative --out would
    # be taken relative to the folder itself from its second chunk on).
    workdir = str(folder.resolve())
    jobs = [(settings, c, min(per, n - c * per), workdir) for c in range((n + per - 1) // per)]
    chunks, failed, gen_s, reco_s = {}, 0, 0.0, 0.0
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415
        bar = tqdm(total=n, unit="ev", desc=settings["sample"], file=sys.stderr)
    # A ProcessPoolExecutor, not a Pool: a worker that dies (crash, out of memory) makes the
    # executor raise instead of waiting forever for its chunk.
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                                mp_context=ctx) as pool:
        futures = {pool.submit(_chunk_worker, job): job for job in jobs}
        for fut in concurrent.futures.as_completed(futures):
            try:
                chunk, arr, nf, (tg, tr) = fut.result()
            except Exception as err:  # noqa: BLE001 (any failure: name the chunk, stop)
                if isinstance(err, concurrent.futures.process.BrokenProcessPool):
                    lost = sorted(j[1] for f, j in futures.items() if f.cancelled()
                                  or not f.done() or f.exception() is not None)
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise pythia_gen.GenerationError(
                        f"a worker process died (crash or out of memory) while chunk(s) "
                        f"{', '.join(map(str, lost))} of {len(jobs)} were unfinished") from err
                pool.shutdown(wait=False, cancel_futures=True)
                c = futures[fut][1]
                raise pythia_gen.GenerationError(
                    f"chunk {c} (events {c * per + 1}-{c * per + futures[fut][2]}) failed: "
                    f"{type(err).__name__}: {err}") from err
            chunks[chunk] = arr
            failed += nf
            gen_s += tg
            reco_s += tr
            if bar:
                bar.update(len(arr))
    if bar:
        bar.close()
    wall = time.perf_counter() - t0
    events = ak.concatenate([chunks[c] for c in range(len(jobs))])
    if len(events) != n:
        raise pythia_gen.GenerationError(f"got {len(events)} events, expected {n}")
    attrs = {"sample": settings["sample"], "process": settings["process"],
             "ctau_mm": float(settings["generator"].get("ctau_mm", -1.0)),
             "seed": settings["seed"],
             "settings": json.dumps(settings, sort_keys=True),
             "n_failed_pythia": failed}
    write_h5(h5_path, events, attrs)
    if write_root_file:
        write_root(root_path, events)
    timings = {"wall_s": wall, "events_per_s": n / wall, "gen_ms_per_event": 1e3 * gen_s / n,
               "reco_ms_per_event": 1e3 * reco_s / n, "pythia_failed": failed}
    (folder / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    (folder / COMPLETE).write_text("")
    result.update(cached=False, timings=timings)
    return result
