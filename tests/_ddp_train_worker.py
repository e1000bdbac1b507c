"""Run under `torchrun --nproc_per_node 2`: two CPU processes (gloo) train one adapter; rank 0 writes it."""

from __future__ import annotations

import sys

from lexprobe.train import TrainConfig, train_lora

config = TrainConfig(
    ontology="hgnc",
    task="name-to-symbol",
    bins=2,
    per_bin=2,
    templates=1,
    batch_size=2,
    lr=1e-3,
    max_steps=2,
    save_steps=2,
)
result = train_lora(sys.argv[1], config)
assert result.world_size == 2, result
