"""A simple detector: tracker (efficiency, pT and impact-parameter smearing), calorimeter
(energy smearing), beam spot and reconstructed primary vertex. Vectorised over all
particles of a chunk (flat numpy arrays).

Input: particles as events * var * {px, py, pz, e, x, y, z, charge, pid, fromDark}, with
production vertices in mm in the detector frame (primary vertex already added).
Output: PF candidates as events * var * {px, py, pz, e, pt, eta, phi, charge, d0, d0Err, dz,
dzErr, fromDark}: the event's tracks first (charge != 0), then calorimeter candidates.

Simplifications (docs/physics.md): straight-line tracks (no magnetic-field curvature in the
impact parameters), a production-radius dependent efficiency instead of hit patterns,
calorimeter candidates are the true particles with smeared energy (no clustering), charged
particles that are not reconstructed as tracks end up in the calorimeter (muons do not).
"""

import numpy as np
import awkward as ak

PION_MASS = 0.13957


def ideal_detector(base):
    """A copy of the detector settings with no smearing, full efficiency, no beam spot."""
    det = dict(base)
    for key in ("beamspot_sigma_xy", "beamspot_sigma_z", "pv_resolution_xy", "pv_resolution_z",
                "track_pt_res_const", "track_pt_res_slope", "track_angle_res",
                "ecal_stoch", "ecal_const", "hcal_stoch", "hcal_const"):
        det[key] = 0.0
    det["track_eff_prompt"] = 1.0
    det["ip_smear"] = 0.0  # the per-track errors stay (significances stay meaningful)
    return det


def beamspot(n, det, rng):
    """True primary vertices (n, 3) in mm: the luminous region is a Gaussian."""
    sig = np.array([det["beamspot_sigma_xy"], det["beamspot_sigma_xy"], det["beamspot_sigma_z"]])
    return rng.normal(size=(n, 3)) * sig


def track_efficiency(r, z, det):
    """Tracking efficiency vs production radius r and z (mm): flat, then falling linearly
    to zero at the outer radius (fewer layers for displaced tracks); zero outside."""
    eff0, r_full, r_max = det["track_eff_prompt"], det["track_r_full"], det["track_r_max"]
    slope = np.clip((r_max - r) / (r_max - r_full), 0.0, 1.0)
    eff = np.where(r <= r_full, eff0, eff0 * slope)
    return np.where(np.abs(z) < det["track_z_max"], eff, 0.0)


def impact_parameters(x, y, z, px, py, pz, pv):
    """(d0, dz) in mm of straight lines from (x, y, z) along p, w.r.t. the vertices pv (n, 3).

    d0 = (-dx py + dy px) / pt (CMS dxy sign convention), dz = dz at the transverse point of
    closest approach."""
    dx, dy, dz0 = x - pv[:, 0], y - pv[:, 1], z - pv[:, 2]
    pt = np.hypot(px, py)
    d0 = (-dx * py + dy * px) / pt
    dz = dz0 - (dx * px + dy * py) / pt * (pz / pt)
    return d0, dz


def _gauss(rng, n, sigma):
    return rng.normal(size=n) * sigma


def simulate(particles, pv_true, det, rng):
    """PF candidates (tracks then calorimeter candidates) and the reconstructed PV (n, 3)."""
    n_ev = len(particles)
    counts = ak.num(particles, axis=1).to_numpy()
    flat = {f: ak.to_numpy(ak.flatten(particles[f], axis=1)) for f in particles.fields}
    event_of = np.repeat(np.arange(n_ev), counts)
    pv_reco = pv_true + rng.normal(size=(n_ev, 3)) * np.array(
        [det["pv_resolution_xy"], det["pv_resolution_xy"], det["pv_resolution_z"]])

    px, py, pz, e = flat["px"], flat["py"], flat["pz"], flat["e"]
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.sign(pz) * 99.0)
    phi = np.arctan2(py, px)
    charge = flat["charge"].astype(np.int8)
    r_prod = np.hypot(flat["x"], flat["y"])  # w.r.t. the nominal beam line

    # Tracker. One uniform number per particle decides efficiency (drawn for all particles, so
    # the random stream does not depend on the cuts).
    u_eff = rng.random(len(pt))
    in_acc = (charge != 0) & (np.abs(eta) < det["track_eta_max"]) & (pt > det["track_pt_min"])
    tracked = in_acc & (u_eff < track_efficiency(r_prod, flat["z"], det))
    t = np.flatnonzero(tracked)
    ev_t = event_of[t]
    n_t = len(t)
    d0, dz = impact_parameters(flat["x"][t], flat["y"][t], flat["z"][t], px[t], py[t], pz[t],
                               pv_reco[ev_t])
    pt_t = pt[t]
    degrade = 1.0 + r_prod[t] / det["ip_res_r"]
    d0_err = np.hypot(det["d0_res_const"], det["d0_res_msc"] / pt_t) * degrade
    dz_err = np.hypot(det["dz_res_const"], det["dz_res_msc"] / pt_t) * degrade
    ip_smear = det.get("ip_smear", 1.0)
    pt_res = np.hypot(det["track_pt_res_const"], det["track_pt_res_slope"] * pt_t)
    trk = {
        "pt": pt_t * np.maximum(1.0 + _gauss(rng, n_t, pt_res), 0.05),
        "eta": eta[t] + _gauss(rng, n_t, det["track_angle_res"]),
        "phi": phi[t] + _gauss(rng, n_t, det["track_angle_res"]),
        "d0": d0 + _gauss(rng, n_t, d0_err * ip_smear), "d0Err": d0_err,
        "dz": dz + _gauss(rng, n_t, dz_err * ip_smear), "dzErr": dz_err,
        "charge": charge[t], "fromDark": flat["fromDark"][t].astype(np.int8),
    }
    trk["phi"] = (trk["phi"] + np.pi) % (2 * np.pi) - np.pi
    trk["px"] = trk["pt"] * np.cos(trk["phi"])
    trk["py"] = trk["pt"] * np.sin(trk["phi"])
    trk["pz"] = trk["pt"] * np.sinh(trk["eta"])
    trk["e"] = np.sqrt(trk["px"] ** 2 + trk["py"] ** 2 + trk["pz"] ** 2 + PION_MASS**2)

    # Calorimeter: neutral particles and charged ones without a track (not muons: MIPs).
    pid = np.abs(flat["pid"])
    calo = ~tracked & (np.abs(eta) < det["calo_eta_max"]) & ((charge == 0) | (pid != 13))
    c = np.flatnonzero(calo)
    em = np.isin(pid[c], (11, 22))
    e_c = e[c]
    stoch = np.where(em, det["ecal_stoch"], det["hcal_stoch"])
    const = np.where(em, det["ecal_const"], det["hcal_const"])
    sig = np.hypot(stoch / np.sqrt(np.maximum(e_c, 1e-6)), const)
    scale = 1.0 + _gauss(rng, len(c), sig)
    keep = e_c * scale > det["calo_e_min"]
    c, scale, ev_c = c[keep], scale[keep], event_of[c][keep]
    n_c = len(c)
    cal = {"px": px[c] * scale, "py": py[c] * scale, "pz": pz[c] * scale, "e": e[c] * scale,
           "pt": pt[c] * scale, "eta": eta[c], "phi": phi[c],
           "d0": np.zeros(n_c), "d0Err": np.zeros(n_c), "dz": np.zeros(n_c),
           "dzErr": np.zeros(n_c), "charge": np.zeros(n_c, np.int8),
           "fromDark": flat["fromDark"][c].astype(np.int8)}

    # Per event: tracks first, then calorimeter candidates (stable sort keeps input order).
    order = np.argsort(np.concatenate([ev_t, ev_c]), kind="stable")
    fields = ("px", "py", "pz", "e", "pt", "eta", "phi", "charge", "d0", "d0Err", "dz",
              "dzErr", "fromDark")
    cols = {f: np.concatenate([np.asarray(trk[f]), np.asarray(cal[f])])[order] for f in fields}
    n_per = np.bincount(np.concatenate([ev_t, ev_c]), minlength=n_ev)
    return ak.unflatten(ak.zip(cols, depth_limit=1), n_per), pv_reco
