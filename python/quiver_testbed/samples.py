"""Sample definitions: the Pythia 8 settings of each physics process, the detector settings,
and the presets (named samples and named sets of samples).

Everything that changes the generated events lives in one JSON-able dict (`sample_settings`);
its hash names the output folder, so a cached sample is reused only for identical settings.
"""

import copy
import importlib.metadata
import re
import hashlib
import json

# Bump when the output changes for the same settings (detector code, file layout).
FORMAT = "quiver-emj/1"
CODE_VERSION = 2  # 2: seeds depend on the sample name

# Events per chunk: the unit of parallelism and of seeding (chunk c uses a seed derived from
# (seed, c)), so the output does not depend on the number of workers.
CHUNK_EVENTS = 500

BEAM = [
    "Beams:eCM = 13600.",
    # Decay everything that may decay, but only inside the detector volume (mm): dark pions
    # with a long lifetime leave the cylinder undecayed and are invisible (Pythia would
    # otherwise decay them regardless of their lifetime).
    "ParticleDecays:limitCylinder = on",
    "ParticleDecays:xyMax = 1500.",
    "ParticleDecays:zMax = 3000.",
]

QCD = ["HardQCD:all = on", "PhaseSpace:pTHatMin = {pthat_min}"]

# Hidden Valley: q qbar -> Z' (4900023) -> dark quarks, dark shower (SU(3), one flavour),
# dark hadronisation into dark pions (4900111) and rhos (4900113 -> 2 dark pions); the dark
# pion decays to d dbar after c*tau (mm), and that pair showers and hadronises (meMode 91).
SIGNAL = [
    "HiddenValley:ffbar2Zv = on",
    "4900023:m0 = {mzprime}",
    "4900023:mWidth = {zprime_width}",
    # The default mMin = 100 leaves a low-mass tail: keep the Z' near its pole.
    "4900023:mMin = {zprime_mmin}",
    "4900023:mMax = {zprime_mmax}",
    # Only to dark quarks (by default the Zv also decays to SM fermions).
    "4900023:onMode = off",
    "4900023:onIfAny = 4900101",
    "HiddenValley:Ngauge = 3",
    "HiddenValley:nFlav = 1",
    "HiddenValley:spinFv = 0",  # must be set even when only the Zv is produced
    "HiddenValley:FSR = on",
    "HiddenValley:fragment = on",
    "HiddenValley:alphaOrder = 1",
    "HiddenValley:setLambda = on",  # otherwise HiddenValley:Lambda is ignored
    "HiddenValley:Lambda = {lambda_dark}",
    "HiddenValley:pTminFSR = {ptmin_fsr}",  # must be >= 1.1 x Lambda
    "4900101:m0 = {mqdark}",
    "4900111:m0 = {mpidark}",
    "4900113:m0 = {mrhodark}",
    "4900111:tau0 = {ctau_mm}",
    "4900111:oneChannel = 1 1.0 91 1 -1",
    "4900113:oneChannel = 1 1.0 0 4900111 4900111",
]

# Detector layer (see docs/physics.md). Lengths in mm, energies in GeV.
DETECTOR = {
    "beamspot_sigma_xy": 0.010,
    "beamspot_sigma_z": 35.0,
    "pv_resolution_xy": 0.005,  # reconstructed primary vertex = true one smeared by this
    "pv_resolution_z": 0.010,
    "track_eta_max": 2.5,
    "track_pt_min": 1.0,
    "track_eff_prompt": 0.95,  # production radius below track_r_full
    "track_r_full": 10.0,  # efficiency falls linearly from here ...
    "track_r_max": 500.0,  # ... to zero here (no track beyond the tracker)
    "track_z_max": 1200.0,
    "track_pt_res_const": 0.01,  # sigma(pT)/pT = const (+) slope * pT
    "track_pt_res_slope": 0.00015,
    "track_angle_res": 0.001,  # eta and phi
    "d0_res_const": 0.010,  # sigma(d0) = const (+) msc / pT, times (1 + r / ip_res_r)
    "d0_res_msc": 0.090,
    "dz_res_const": 0.025,
    "dz_res_msc": 0.120,
    "ip_res_r": 100.0,
    "calo_eta_max": 3.0,
    "calo_e_min": 1.0,
    "ecal_stoch": 0.03,  # photons: sigma(E)/E = stoch / sqrt(E) (+) const
    "ecal_const": 0.01,
    "hcal_stoch": 1.0,  # hadrons
    "hcal_const": 0.05,
    "pileup_mu": 0.0,  # mean number of pileup interactions (off by default)
}

# Pileup interactions (each at its own beam-spot vertex).
PILEUP = ["SoftQCD:nonDiffractive = on"]

# Packages whose version changes the events for the same seed (part of the cache key).
VERSIONED = ("pythia8mc", "fastjet", "numpy")

RECO = {"jet_r": 0.4, "jet_pt_min": 20.0, "jet_eta_max": 2.5, "prompt_ip3d_sig": 4.0}

SIGNAL_DEFAULTS = {
    "mzprime": 1000.0,
    "zprime_width": 10.0,
    "zprime_mmin": 900.0,
    "zprime_mmax": 1100.0,
    "lambda_dark": 10.0,
    "ptmin_fsr": 11.0,
    "mqdark": 10.0,
    "mpidark": 10.0,
    "mrhodark": 25.0,
}

# Named samples: process + parameters. run numbers differ per sample (event ids are unique
# within (sample, run)).
SAMPLES = {
    "qcd": {"process": "qcd", "pthat_min": 200.0, "run": 1},
    "emj_ctau1": {"process": "signal", "ctau_mm": 1.0, "run": 101},
    "emj_ctau5": {"process": "signal", "ctau_mm": 5.0, "run": 105},
    "emj_ctau25": {"process": "signal", "ctau_mm": 25.0, "run": 125},
    "emj_ctau100": {"process": "signal", "ctau_mm": 100.0, "run": 200},
    "emj_ctau500": {"process": "signal", "ctau_mm": 500.0, "run": 600},
}

# Named sets of samples: name -> [(sample, events)].
PRESETS = {
    "demo": [("qcd", 1000), ("emj_ctau25", 1000)],
    "testbed": [("qcd", 4000), ("emj_ctau25", 2000), ("emj_ctau1", 500),
                ("emj_ctau100", 500), ("emj_ctau500", 500)],
    "ci": [("qcd", 200), ("emj_ctau25", 200)],
}


class SettingsError(ValueError):
    """An unknown sample or an invalid setting (raised before anything runs)."""


SIGNAL_NAME = re.compile(r"^emj_ctau(\d+(?:p\d+)?)$")


def signal_name(ctau_mm):
    """Sample name of a signal point: emj_ctau25, emj_ctau0p5."""
    return "emj_ctau" + f"{ctau_mm:g}".replace(".", "p")


def _lookup(name):
    """(process, base parameters) of a named sample; any emj_ctau<X> is a signal point with
    c*tau = X mm (p for the decimal point)."""
    if name in SAMPLES:
        return copy.deepcopy(SAMPLES[name])
    m = SIGNAL_NAME.match(name)
    if m:
        ctau = float(m.group(1).replace("p", "."))
        return {"process": "signal", "ctau_mm": ctau, "run": 100000 + round(ctau * 100)}
    raise SettingsError(f"unknown sample {name!r}; known: {', '.join(SAMPLES)}, or "
                        f"emj_ctau<X> for c*tau = X mm (e.g. emj_ctau40, emj_ctau0p5)")


def sample_settings(name, n_events, seed, pileup_mu=None, pthat_min=None):
    """All settings of one sample as a JSON-able dict (the cache key)."""
    base = _lookup(name)
    if n_events <= 0:
        raise SettingsError(f"--events must be positive, got {n_events}")
    if seed < 0:  # numpy's SeedSequence (the detector's random numbers) needs seed >= 0
        raise SettingsError(f"--seed must be >= 0, got {seed}")
    process = base["process"]
    gen = {}
    if process == "qcd":
        gen["pthat_min"] = float(pthat_min if pthat_min is not None else base["pthat_min"])
        if gen["pthat_min"] < 0:
            raise SettingsError(f"--pthat-min must be >= 0, got {pthat_min}")
    else:
        gen.update(SIGNAL_DEFAULTS)
        ctau = float(base["ctau_mm"])
        if not 0.0 < ctau <= 10000.0:
            raise SettingsError(f"c*tau must be in (0, 10000] mm, got {ctau}")
        gen["ctau_mm"] = ctau
    det = dict(DETECTOR)
    if pileup_mu is not None:
        if pileup_mu < 0:
            raise SettingsError(f"--pileup must be >= 0, got {pileup_mu}")
        det["pileup_mu"] = float(pileup_mu)
    settings = {
        "format": FORMAT,
        "code_version": CODE_VERSION,
        "sample": name,
        "process": process,
        "run": base["run"],
        "n_events": int(n_events),
        "seed": int(seed),
        "chunk_events": CHUNK_EVENTS,
        "generator": gen,
        "detector": det,
        "reco": dict(RECO),
        "versions": {pkg: importlib.metadata.version(pkg) for pkg in VERSIONED},
    }
    # The Pythia lines themselves (beam, decays, process) are part of the cache key: editing
    # one of the tables above must not reuse samples generated with the old lines.
    settings["pythia"] = pythia_lines(settings)
    if det["pileup_mu"] > 0:
        settings["pythia_pileup"] = BEAM + PILEUP
    return settings


def pythia_lines(settings):
    """The Pythia readString lines of a sample (without the seed)."""
    gen = settings["generator"]
    body = QCD if settings["process"] == "qcd" else SIGNAL
    return BEAM + [line.format(**gen) for line in body]


def settings_hash(settings):
    """Short stable hash of the settings (names the cache folder)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def chunk_seed(sample, seed, chunk, stream=0):
    """Pythia seed (1..900000000) of one chunk, derived from the sample name and seed (the
    name too: samples generated with the same --seed must not share random numbers, or
    emj_ctau1 and emj_ctau5 would be the same events with rescaled decay lengths)."""
    digest = hashlib.sha256(f"{sample}:{seed}:{chunk}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % 900_000_000 + 1


def detector_seed(sample, seed, chunk):
    """numpy SeedSequence entropy of one chunk's detector random numbers (beam spot,
    pileup counts, smearing, efficiencies)."""
    key = int.from_bytes(hashlib.sha256(sample.encode()).digest()[:8], "little")
    return [seed, chunk, 7, key]
