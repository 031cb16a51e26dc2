#!/usr/bin/python3
"""Builds the shipped models/simple_mlp model and its reference test vector.

Run with Debian's interpreter (it has torch):  /usr/bin/python3 python/models/make_simple_mlp.py

Writes
  models/simple_mlp/1/model.pt
      TorchScript (torch.jit.script) of Linear(32,512)-ReLU-Linear(512,512)-ReLU-Linear(512,8),
      weights from a fixed seed (no training: the values only need to be reproducible).
  src/engine/backends/testdata/simple_mlp_reference.bin
      A reference input and the output Python computes for it, read by torch_backend_test.cc.
      Format (all little-endian):
        char[8]  magic "QVREF001"
        int32    rank_in, then rank_in x int64 dims of the input
        int32    rank_out, then rank_out x int64 dims of the output
        float32  input values (row-major), then float32 output values (row-major)
"""

import argparse
import pathlib
import struct

import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
IN_FEATURES, HIDDEN, OUT_FEATURES = 32, 512, 8
REFERENCE_BATCH = 5


def build_model() -> torch.nn.Module:
    torch.manual_seed(20261127)
    return torch.nn.Sequential(
        torch.nn.Linear(IN_FEATURES, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, OUT_FEATURES),
    ).eval()


def write_reference(path: pathlib.Path, x: torch.Tensor, y: torch.Tensor) -> None:
    with open(path, "wb") as f:
        f.write(b"QVREF001")
        for t in (x, y):
            f.write(struct.pack("<i", t.dim()))
            f.write(struct.pack("<%dq" % t.dim(), *t.shape))
        for t in (x, y):
            f.write(t.contiguous().to(torch.float32).numpy().astype("<f4").tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=pathlib.Path, default=REPO / "models" / "simple_mlp" / "1")
    parser.add_argument("--reference", type=pathlib.Path,
                        default=REPO / "src" / "engine" / "backends" / "testdata" / "simple_mlp_reference.bin")
    args = parser.parse_args()

    model = build_model()
    scripted = torch.jit.script(model)
    args.model_dir.mkdir(parents=True, exist_ok=True)
    scripted.save(str(args.model_dir / "model.pt"))

    # A deterministic input independent of the model's seed: a smooth ramp with both signs.
    n = REFERENCE_BATCH * IN_FEATURES
    x = (torch.arange(n, dtype=torch.float32).reshape(REFERENCE_BATCH, IN_FEATURES) * 0.37).sin() * 2.0
    with torch.inference_mode():
        y = torch.jit.load(str(args.model_dir / "model.pt"))(x)
    args.reference.parent.mkdir(parents=True, exist_ok=True)
    write_reference(args.reference, x, y)
    print(f"wrote {args.model_dir / 'model.pt'} and {args.reference} (output {list(y.shape)})")


if __name__ == "__main__":
    main()
