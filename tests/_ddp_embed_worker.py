"""Run under `torchrun --nproc_per_node 2`: each process extracts its share; rank 0 writes the result."""

from __future__ import annotations

import sys

import numpy as np

from lexprobe.embed import ExtractionConfig, extract_hidden_states
from lexprobe.models import load_model

texts = sys.argv[3].split("|")
result = extract_hidden_states(
    texts,
    model=load_model("smollm2-135m", dtype="float32"),  # as the single-process result it is compared with
    config=ExtractionConfig(layers=(0, 5, -1), batch_size=2),
    cache_dir=sys.argv[1],
)
if int(__import__("os").environ["RANK"]) == 0:
    np.save(sys.argv[2], np.asarray(result.array))
