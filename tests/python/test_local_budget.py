"""The arithmetic of python/bench/local_budget.py on a made-up event stream (the program
itself needs root and perf uprobes, so it is not run here): how a gap between two
executions is split between the model's worker thread and the others."""

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "python" / "bench"))
import local_budget  # noqa: E402

US = 1e-6
W, P = "10", "20"  # the model's worker thread, the Python thread


def test_gap_split_between_worker_and_other_threads():
    events = [
        (W, 0 * US, "start", None), (W, 800 * US, "end", None),
        (W, 810 * US, "switch", P),   # the worker delivered for 10 us, wakes Python
        (P, 860 * US, "switch", W),   # Python's 50 us, then it waits
        (W, 870 * US, "start", None), (W, 1670 * US, "end", None),
        (W, 1690 * US, "start", None),  # a gap of 20 us on the worker alone
        (W, 2490 * US, "end", None),    # no next start: this gap is not counted
    ]
    b = local_budget.budget(events)
    assert b["batches"] == 2
    assert b["exec"]["median_us"] == pytest.approx(800)
    assert b["gap"]["mean_us"] == pytest.approx((70 + 20) / 2)
    assert b["worker"]["mean_us"] == pytest.approx((20 + 20) / 2)
    assert b["other"]["mean_us"] == pytest.approx((50 + 0) / 2)
    assert b["switches"] == pytest.approx(1.0)


def test_a_start_on_another_thread_does_not_close_the_gap():
    # A second instance's worker starting does not end the first worker's gap.
    events = [
        (W, 0 * US, "start", None), (W, 100 * US, "end", None),
        ("30", 105 * US, "start", None),
        (W, 130 * US, "start", None), (W, 230 * US, "end", None),
    ]
    b = local_budget.budget(events)
    assert b["batches"] == 1 and b["gap"]["median_us"] == pytest.approx(30)


def test_no_complete_batch_is_an_error():
    with pytest.raises(SystemExit, match="no complete batch"):
        local_budget.budget([(W, 0.0, "start", None)])
