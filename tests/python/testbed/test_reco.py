"""Detector layer and reconstruction on hand-built particle lists (no Pythia)."""

import awkward as ak
import numpy as np
import pytest

from quiver_testbed import detector, reco, samples

IDEAL = detector.ideal_detector(samples.DETECTOR)


def particle(px, py, pz, charge=1, x=0.0, y=0.0, z=0.0, pid=211, dark=0, m=0.13957):
    e = float(np.sqrt(px * px + py * py + pz * pz + m * m))
    return {"px": px, "py": py, "pz": pz, "e": e, "x": x, "y": y, "z": z, "charge": charge,
            "pid": pid, "fromDark": dark}


def to_array(events):
    arr = ak.Array(events)
    fields = {"px": np.float64, "py": np.float64, "pz": np.float64, "e": np.float64,
              "x": np.float64, "y": np.float64, "z": np.float64, "charge": np.int8,
              "pid": np.int32, "fromDark": np.int8}
    return ak.zip({f: ak.values_astype(arr[f], t) for f, t in fields.items()})


def run(events, det=IDEAL, seed=0):
    parts = to_array(events)
    rng = np.random.default_rng(seed)
    pv = np.zeros((len(parts), 3))
    pf, _ = detector.simulate(parts, pv, det, rng)
    return pf, reco.reconstruct(pf, samples.RECO)


def dijet(pt, phi0=0.0, dark=0, x=0.0):
    """Two back-to-back sprays of 2 charged + 1 neutral particle, total pt each side."""
    out = []
    for side in (0.0, np.pi):
        for frac, q, dphi in ((0.5, 1, 0.02), (0.3, -1, -0.03), (0.2, 0, 0.01)):
            phi = phi0 + side + dphi
            out.append(particle(frac * pt * np.cos(phi), frac * pt * np.sin(phi), 0.1 * pt,
                                charge=q, pid=211 * q if q else 22, dark=dark, x=x))
    return out


def test_two_back_to_back_jets_balance():
    pf, ev = run([dijet(100.0), dijet(300.0, phi0=1.0)])
    njets = ak.num(ev.jets).to_list()
    assert njets == [2, 2]
    pts = ev.jets.pt.to_list()
    assert pts[0] == pytest.approx([100.0, 100.0], rel=0.01)
    assert pts[1] == pytest.approx([300.0, 300.0], rel=0.01)
    # Balanced events: no missing pT; jets back to back.
    assert ev.MET_pt.to_list() == pytest.approx([0.0, 0.0], abs=1e-3)
    dphi = abs(ev.jets.phi[1, 0] - ev.jets.phi[1, 1])
    assert dphi == pytest.approx(np.pi, abs=0.05)
    # Two tracks per jet (the photons are calorimeter candidates), sorted by pt.
    assert ak.to_list(ev.jets.nTrack) == [[2, 2], [2, 2]]
    tpt = ev.jets.tracks.pt[1, 0].to_list()
    assert tpt == sorted(tpt, reverse=True) and tpt[0] == pytest.approx(150.0, rel=1e-3)


def test_met_from_a_lost_particle_and_jet_cuts():
    # One jet of 100 GeV, its partner outside |eta| < 2.5 (and outside the calorimeter):
    # MET = 100 GeV opposite... the visible one; a 15 GeV spray is below the jet threshold.
    ev_parts = [particle(60.0, 0.0, 5.0), particle(40.0, 1.0, 3.0, charge=0, pid=22),
                particle(-1.0, 0.0, 500.0),  # |eta| > 3: neither tracked nor in the calorimeter
                particle(0.0, 15.0, 0.0)]
    _, ev = run([ev_parts])
    assert ak.num(ev.jets).to_list() == [1]
    assert ev.jets.pt[0, 0] == pytest.approx(np.hypot(100.0, 1.0), rel=1e-3)
    # MET balances the visible candidates (the 15 GeV one included, the forward one not).
    assert ev.MET_pt[0] == pytest.approx(np.hypot(100.0, 16.0), rel=1e-3)
    # MET = -(sum of the visible pT): it points away from the visible jet.
    assert ev.MET_phi[0] == pytest.approx(np.arctan2(-16.0, -100.0), abs=1e-4)


def test_d0_and_dz_of_a_particle_from_a_displaced_vertex():
    # Produced at (5, 0, 3) mm, flying along +y: distance of closest approach 5 mm.
    pf, _ = run([[particle(0.0, 10.0, 10.0, x=5.0, z=3.0)],
                 [particle(10.0, 0.0, 0.0, x=5.0)],  # radial: points back to the beam line
                 [particle(3.0, 4.0, 0.0, x=-4.0, y=3.0, z=-2.0)]])
    assert ak.to_list(pf.charge) == [[1], [1], [1]]
    # CMS sign: d0 = (-dx py + dy px) / pt; here dx = 5, py > 0 -> negative.
    assert pf.d0[0, 0] == pytest.approx(-5.0, rel=1e-6)
    assert pf.dz[0, 0] == pytest.approx(3.0, rel=1e-6)  # closest point is the vertex itself
    assert pf.d0[1, 0] == pytest.approx(0.0, abs=1e-9)
    # (-4, 3) is perpendicular to (3, 4): |d0| = 5 mm, and the point is at the vertex.
    assert pf.d0[2, 0] == pytest.approx(5.0, rel=1e-6)  # (4 * 4 + 3 * 3) / 5
    assert pf.dz[2, 0] == pytest.approx(-2.0, rel=1e-6)
    # Errors grow with the production radius (fewer pixel layers).
    d = samples.DETECTOR
    expected = np.hypot(d["d0_res_const"], d["d0_res_msc"] / 10.0) * (1 + 5.0 / d["ip_res_r"])
    assert pf.d0Err[0, 0] == pytest.approx(expected, rel=1e-6)
    assert pf.d0Err[0, 0] > np.hypot(d["d0_res_const"], d["d0_res_msc"] / 10)
    assert pf.dzErr[0, 0] == pytest.approx(
        np.hypot(d["dz_res_const"], d["dz_res_msc"] / np.hypot(0.0, 10.0)) * 1.05, rel=1e-6)


def test_tracking_acceptance_and_displacement():
    evs = [[particle(0.0, 20.0, 0.0, x=600.0)],  # beyond the tracker: calorimeter only
           [particle(0.5, 0.0, 0.0)],  # below 1 GeV: calorimeter, but under its 1 GeV cut
           [particle(2.0, 0.0, 30.0)],  # |eta| ~ 3.4: nothing
           [particle(2.0, 0.0, 0.0, charge=1, pid=13, x=600.0)]]  # untracked muon: nothing
    pf, _ = run(evs)
    assert ak.to_list(pf.charge) == [[0], [], [], []]
    eff = detector.track_efficiency(np.array([0.0, 10.0, 255.0, 500.0, 800.0]),
                                    np.zeros(5), samples.DETECTOR)
    assert eff.tolist() == pytest.approx([0.95, 0.95, 0.475, 0.0, 0.0])


def test_jet_displacement_features():
    # A 3-track jet: d0 = 0.01, 1, 10 mm (radial displacement produces |d0| when the
    # momentum is perpendicular to the vertex direction).
    parts = [particle(0.0, 50.0, 1.0, x=0.01, dark=0),
             particle(0.0, 30.0, 1.0, x=1.0, dark=1),
             particle(0.0, 20.0, 1.0, x=10.0, dark=1)]
    _, ev = run([parts])
    jet = ev.jets[0, 0]
    assert jet.nTrack == 3
    assert jet.medianLogIp2d == pytest.approx(0.0, abs=1e-5)  # median of -2, 0, 1
    # Prompt (IP3D significance < 4): only the 0.01 mm track -> 50 / 100 of the pt.
    assert jet.alpha3d == pytest.approx(0.5, rel=1e-5)
    assert jet.isDark == 0  # dark tracks carry exactly 50 %: not "most"
    _, ev2 = run([[parts[0] | {"px": 0.0, "py": 10.0}, parts[1], parts[2]]])
    assert ev2.jets.isDark[0, 0] == 1
    # Jets without tracks get the documented defaults.
    _, ev3 = run([[particle(0.0, 50.0, 1.0, charge=0, pid=22)]])
    assert ev3.jets.nTrack[0, 0] == 0
    assert ev3.jets.medianLogIp2d[0, 0] == reco.NO_TRACK_MEDIAN
    assert ev3.jets.alpha3d[0, 0] == reco.NO_TRACK_ALPHA


def test_smearing_is_seeded_and_events_without_particles_survive():
    evs = [dijet(200.0), [], dijet(80.0, x=3.0)]
    pf_a, ev_a = run(evs, det=samples.DETECTOR, seed=5)
    pf_b, ev_b = run(evs, det=samples.DETECTOR, seed=5)
    pf_c, _ = run(evs, det=samples.DETECTOR, seed=6)
    assert ak.to_list(ev_a) == ak.to_list(ev_b)
    assert ak.to_list(pf_a.pt) != ak.to_list(pf_c.pt)
    assert len(ev_a) == 3 and ak.num(ev_a.jets)[1] == 0


def test_dark_ancestry_follows_both_mothers():
    from quiver_testbed.pythia_gen import from_dark_flags
    # Two events of 6 entries. Event 0: 1 = dark pion -> 2, 3 (d dbar) -> string hadrons
    # 4 (mothers 2..3) -> 5 (decay of 4). Event 1: the same shape without a dark pion.
    ids = np.array([90, 4900111, 1, -1, 313, 211, 90, 23, 1, -1, 313, 211])
    m1 = np.array([0, 0, 1, 1, 2, 4, 0, 0, 1, 1, 2, 4])
    m2 = np.array([0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 3, 0])
    starts = np.repeat([0, 6], 6)
    flags = from_dark_flags(ids, m1, m2, starts)
    assert flags.tolist() == [False, False, True, True, True, True] + [False] * 6
