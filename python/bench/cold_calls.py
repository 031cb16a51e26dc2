#!/usr/bin/env python3
"""What one Python call costs when the caches are cold (issue 9, item 9): a program, not a
test. Run with Debian's interpreter after scripts/setup:

    taskset -c 0 /usr/bin/python3 python/bench/cold_calls.py [--rounds 2] [--seconds 1]

A 64-row simple_mlp execution evicts L1/L2 (1 MiB of weights), so the Python work around
each call runs cold, at about ten times its warm cost; on a core shared with the model
(local://) that is throughput lost. This measures it directly: each iteration first
streams through a 3 MiB numpy array (--thrash-mib), then makes one call of identity_fp32
(16 floats, no batching: it runs inline on this thread) over local://. Printed per round:
the time per iteration minus that of the thrash alone, for
  future  concurrent.futures.Future(): set_running, set_result, result (pure Python),
  infer   quiver.Client.infer,
  async   quiver.Client.infer_async(...).result(),
and with --warm the same without the thrash. Noisy on a shared VM: compare runs made
side by side.
"""

import argparse
import concurrent.futures
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    p.add_argument("--thrash-mib", type=float, default=3.0)
    p.add_argument("--warm", action="store_true", help="also measure without the thrash")
    a = p.parse_args()
    sys.path.insert(0, str(ROOT / "python"))
    import numpy as np
    import quiver

    with tempfile.TemporaryDirectory(prefix="quiver-cold-calls-") as tmp:
        model = pathlib.Path(tmp) / "identity_fp32"
        (model / "1").mkdir(parents=True)
        shutil.copy(ROOT / "models" / "identity_fp32" / "config.pbtxt", model / "config.pbtxt")
        client = quiver.Client(f"local://{tmp}", retries=0)
        x = np.zeros(16, np.float32)
        client.infer("identity_fp32", {"INPUT0": x})  # loads the engine
        big = np.ones(int(a.thrash_mib * (1 << 20)) // 4, np.float32)

        def future():
            f = concurrent.futures.Future()
            f.set_running_or_notify_cancel()
            f.set_result(1)
            f.result()

        calls = {
            "future": future,
            "infer": lambda: client.infer("identity_fp32", {"INPUT0": x}),
            "async": lambda: client.infer_async("identity_fp32", {"INPUT0": x}).result(),
        }

        def per_iteration_us(fn, thrash: bool) -> float:
            n, end = 0, time.perf_counter() + a.seconds
            while time.perf_counter() < end:
                if thrash:
                    np.add(big, 1.0, out=big)
                if fn is not None:
                    fn()
                n += 1
            return a.seconds / n * 1e6

        modes = [("cold", True)] + ([("warm", False)] if a.warm else [])
        for r in range(a.rounds):
            for label, thrash in modes:
                base = per_iteration_us(None, thrash)
                cost = {name: per_iteration_us(fn, thrash) - base for name, fn in calls.items()}
                print(f"round {r} {label}: " + ", ".join(f"{k} {v:.1f} us" for k, v in cost.items())
                      + f" (loop alone {base:.1f} us)")
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
