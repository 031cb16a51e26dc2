#!/usr/bin/python3
"""Builds the small TorchScript models that torch_backend_test.cc uses for the binding
conventions. Run with Debian's interpreter: /usr/bin/python3 python/models/make_test_models.py

Writes into src/engine/backends/testdata/:
  add_mul.pt      forward(self, x, y) -> (x + y, x * y)      name binding, tuple outputs
  int64_scale.pt  forward(self, x) -> x * 3 (int64 in, int64 out)
  to_double.pt    forward(self, x) -> x.to(float64)          dtype-mismatch tests
  matmul4.pt      forward(self, x) -> x @ ones(4, 2)         wrong-shape inputs make it throw
  list_out.pt     forward(self, a, b) -> [a - b, b - a]      list outputs
  passthrough.pt  forward(self, x, scale: float = 2.0) -> (x, x * scale)
                                                             outputs aliasing inputs, defaults
"""

import pathlib
from typing import List, Tuple

import torch

OUT = pathlib.Path(__file__).resolve().parents[2] / "src" / "engine" / "backends" / "testdata"


class AddMul(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return x + y, x * y


class Int64Scale(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 3


class ToDouble(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float64)


class MatMul4(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", torch.ones(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.w)


class ListOut(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> List[torch.Tensor]:
        return [a - b, b - a]


class Passthrough(torch.nn.Module):
    def forward(self, x: torch.Tensor, scale: float = 2.0) -> Tuple[torch.Tensor, torch.Tensor]:
        return x, x * scale


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    models = {
        "add_mul.pt": AddMul(),
        "int64_scale.pt": Int64Scale(),
        "to_double.pt": ToDouble(),
        "matmul4.pt": MatMul4(),
        "list_out.pt": ListOut(),
        "passthrough.pt": Passthrough(),
    }
    for name, module in models.items():
        torch.jit.script(module.eval()).save(str(OUT / name))
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
