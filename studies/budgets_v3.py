"""Calibration v3, part 2 (issue 30): learning curves of study v2's tasks at 5, 10 and 20 exposures.

Each task of a study v2 folder is trained again on the same split with the same settings, saving adapter
snapshots at 5, 10 and 20 exposures, then scored at each (``evaluate --checkpoints all``) and evaluated as
study v2 was (zero-shot baseline and tuned), so the 20-exposure outcome can be checked against study v2's.
Resumable: a finished part is skipped, an interrupted training resumes from its last checkpoint.

    python studies/budgets_v3.py docs/results/study-v2-smollm2 docs/results/study-v3-smollm2 [TASK ...]
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

ORDER = [  # tasks that generalize partly, identifiers (how memorization moves with the budget), then categories
    "hgnc/name-to-symbol",
    "hgnc/symbol-to-name",
    "hgnc/previous_symbol-to-symbol",
    "hgnc/alias_symbol-to-symbol",
    "go/synonym-to-name",
    "hpo/synonym-to-name",
    "hgnc/name-to-id",  # identifiers: memorization is where the budget should matter most
    "go/name-to-id",
    "hpo/name-to-id",
    "hgnc/name-to-locus_type",
    "hgnc/symbol-to-locus_type",
    "go/name-to-namespace",
    "go/id-to-namespace",
    "hpo/name-to-category",
]
DTYPE = "auto"
SNAPSHOTS = (5.0, 10.0)  # and the finished adapter at 20, which the curve scores too


def main(source: str, out: str, only: list[str]) -> None:
    from lexprobe.train import TrainConfig, evaluate_curve, evaluate_run, is_complete, train_lora

    src = Path(source)
    tasks = sorted(str(p.parent.relative_to(src)) for p in src.glob("*/*/train_config.json"))
    tasks = [t for t in ORDER if t in tasks] + [t for t in tasks if t not in ORDER]
    if only:
        tasks = [t for t in tasks if t in only]
    for task in tasks:
        run = Path(out) / task
        recorded = json.loads((src / task / "train_config.json").read_text())["config"]
        if float(recorded["epochs"]) * int(recorded["templates"]) != 20.0:
            print(f"skip {task}: not trained at 20 exposures", flush=True)
            continue
        # "auto": study v2 trained in bfloat16 on a CPU that computes it natively; on one that does not,
        # bfloat16 runs ~100x slower than float32, so the precision follows the machine (recorded in the run)
        config = dataclasses.replace(TrainConfig(**recorded), snapshots=SNAPSHOTS, dtype=DTYPE)
        scored = all((run / f).is_file() for f in ("learning_curve_manifest.json", "evaluation_manifest.json"))
        if scored:  # finished and committed (its adapter is not: a fresh clone has none to check)
            print(f"done {task}", flush=True)
            continue
        if not is_complete(run):
            print(f"train {task}", flush=True)
            train_lora(run, config, split_dir=src / task / "split", progress=True)
        if not (run / "learning_curve_manifest.json").is_file():
            print(f"curve {task}", flush=True)
            evaluate_curve(run)
        if not (run / "evaluation_manifest.json").is_file():
            print(f"evaluate {task}", flush=True)
            evaluate_run(run)
        print(f"done {task}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
