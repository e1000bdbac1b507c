"""Run as a script: ``python _train_worker.py RUN_DIR MODEL_DIR [SECONDS_PER_STEP]`` trains the tiny model as
``lexprobe train`` would, optionally slowed down per step so that a test can kill it mid-training."""

from __future__ import annotations

import sys
import time

from transformers import TrainerCallback

from lexprobe.train import TrainConfig, train_lora


class Slow(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)


config = TrainConfig(
    ontology="hgnc", task="name-to-symbol", model=sys.argv[2], dtype="float32", device="cpu", bins=2, per_bin=3,
    templates=1, batch_size=2, lr=1e-2, lr_scheduler="linear", lora_dropout=0.1, max_steps=8, save_steps=2, seed=3,
)  # fmt: skip
result = train_lora(sys.argv[1], config, callbacks=[Slow()])
print(f"steps={result.n_steps} resumed_from={result.resumed_from}", flush=True)
