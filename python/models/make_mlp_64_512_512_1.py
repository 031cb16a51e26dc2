#!/usr/bin/env python3
"""Writes the TorchScript MLP Linear(64,512)-ReLU-Linear(512,512)-ReLU-Linear(512,1) with fixed
random weights (seed 0) and its Triton config into DEST/mlp_64_512_512_1/: the model of the
server-CPU-per-request comparison with Triton in issue 9 (scripts/bench-cpu). Run with
Debian's /usr/bin/python3 (torch 1.13). Usage: make_mlp_64_512_512_1.py DEST"""

import pathlib
import sys

import torch

CONFIG = """name: "mlp_64_512_512_1"
platform: "pytorch_libtorch"
max_batch_size: 256
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 200 }
parameters { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "1" } }
"""


def main() -> int:
    dest = pathlib.Path(sys.argv[1]) / "mlp_64_512_512_1"
    (dest / "1").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 1)).eval()
    torch.jit.script(model).save(str(dest / "1" / "model.pt"))
    (dest / "config.pbtxt").write_text(CONFIG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
