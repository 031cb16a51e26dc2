#!/usr/bin/python3
"""Builds tiny TorchScript stand-ins for emj_gnn, emj_dnn and emj_event (the contract's
inputs and output, docs/testbed-contract.md) for the C++ analysis tests, so that they run
local:// through the real libtorch backend without the trained models. Each score is a
per-row function (a batch cannot change a row's score). Run with Debian's interpreter:
    /usr/bin/python3 python/models/make_emj_standins.py
Writes src/analysis/testdata/models/emj_{gnn,dnn,event}/{config.pbtxt,1/model.pt}.
"""

import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parents[2] / "src" / "analysis" / "testdata" / "models"


class Gnn(torch.nn.Module):
    """Fraction-like count of displaced real tracks (|d0 / d0Err| > 10)."""

    def forward(self, tracks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        displaced = (tracks[:, :, 5].abs() > 10).to(torch.float32) * mask
        return torch.sigmoid(displaced.sum(dim=1, keepdim=True) - 3.0)


class Dnn(torch.nn.Module):
    """Median log IP up, prompt fraction down."""

    def forward(self, jet: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(2.0 * (jet[:, 4:5] + 1.0) - 4.0 * jet[:, 5:6])


class Event(torch.nn.Module):
    """Mean median log IP of the real jets."""

    def forward(self, jets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        mean = (jets[:, :, 4] * mask).sum(dim=1, keepdim=True) / n
        return torch.sigmoid(mean + 1.0)


def tensor(name: str, dims: str) -> str:
    return f'  {{ name: "{name}" data_type: TYPE_FP32 dims: [ {dims} ] }}'


def config(name: str, inputs: list) -> str:
    return (
        f"# Test stand-in made by python/models/make_emj_standins.py (not a trained model).\n"
        f'name: "{name}"\nplatform: "pytorch_libtorch"\nmax_batch_size: 16\n'
        "input [\n" + ",\n".join(inputs) + "\n]\n"
        "output [\n" + tensor("score", "1") + "\n]\n"
        "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
        "dynamic_batching { max_queue_delay_microseconds: 100 }\n"
    )


def main() -> None:
    models = {
        "emj_gnn": (Gnn(), [tensor("tracks", "64, 8"), tensor("mask", "64")]),
        "emj_dnn": (Dnn(), [tensor("jet", "6")]),
        "emj_event": (Event(), [tensor("jets", "8, 6"), tensor("mask", "8")]),
    }
    for name, (module, inputs) in models.items():
        (OUT / name / "1").mkdir(parents=True, exist_ok=True)
        torch.jit.script(module).save(str(OUT / name / "1" / "model.pt"))
        (OUT / name / "config.pbtxt").write_text(config(name, inputs))
        print(OUT / name)


if __name__ == "__main__":
    main()
