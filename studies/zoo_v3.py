"""Calibration v3, part 1 (issue 30): the eight new field pairs (``--tasks zoo-v3``) trained as learning curves.

Each task is trained as ``lexprobe study --size small`` trains it (same split, settings and seed), saving adapter
snapshots at 5 and 10 exposures beside the finished adapter at 20, then scored at each budget
(``evaluate --checkpoints all``). The study's own stages then evaluate each task (zero-shot baseline and
tuned), score its 5-shot baseline and correlate, so the folder is a study folder like study v2's.
Resumable: a finished part is skipped, an interrupted training resumes from its last checkpoint.

    python studies/zoo_v3.py OUT [--model smollm2-135m] [ONTOLOGY/TASK ...]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

ORDER = [  # the pairs most likely to generalize partly first, the identifier controls last
    "hpo/name-to-parent",
    "go/name-to-parent",
    "hpo/definition-to-name",
    "hgnc/enzyme_id-to-name",
    "hgnc/name-to-enzyme_id",
    "hgnc/symbol-to-rgd",
    "hpo/name-to-umls",
    "hpo/name-to-snomed",
]
SNAPSHOTS = (5.0, 10.0)  # and the finished adapter at 20, which the curve scores too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("only", nargs="*")
    args = parser.parse_args()

    from lexprobe.models import resolved_dtype
    from lexprobe.plan import SIZES, train_config
    from lexprobe.study import run_study
    from lexprobe.train import evaluate_curve, is_complete, train_lora

    spec, dtype = SIZES["small"], resolved_dtype("auto")
    tasks = [t for t in ORDER if not args.only or t in args.only]
    for name in tasks:
        ontology, task = name.split("/")
        run = args.out / ontology / task
        config = train_config(ontology, task, args.model, spec, args.seed, None, dtype)
        if not is_complete(run) and not (run / "evaluation_manifest.json").is_file():
            print(f"train {name}", flush=True)
            train_lora(run, dataclasses.replace(config, snapshots=SNAPSHOTS), progress=True)
        # the study evaluates it (baseline and tuned) and scores its 5-shot baseline, recording both
        run_study(
            [ontology],
            args.out,
            model=args.model,
            size="small",
            tasks=[task],
            dtype=dtype,
            seed=args.seed,
            stages=["train", "evaluate", "fewshot"],
            log=print,
        )
        if not (run / "learning_curve_manifest.json").is_file():
            print(f"curve {name}", flush=True)
            evaluate_curve(run)
        print(f"done {name}", flush=True)
    if len(tasks) == len(ORDER):
        run_study(
            ["hgnc", "hpo", "go"],
            args.out,
            model=args.model,
            size="small",
            tasks=["zoo-v3"],
            dtype=dtype,
            seed=args.seed,
            stages=["train", "evaluate", "fewshot", "correlate"],
            log=print,
        )


if __name__ == "__main__":
    main()
