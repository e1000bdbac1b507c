"""Training with the output layer at the labelled positions only, against every position, side by side.

    python benchmarks/bench_train_logits.py [--steps 40] [--task hgnc:name-to-id]

``train_lora`` (bfloat16 autocast on a CPU with AVX512-BF16, batch 8, LoRA r 16 on all linear layers, the
study's ``small`` optimiser settings) for ``--steps`` steps on each model, once with the collator lexprobe uses
(``logits_to_keep`` and ``shift_labels``: the vocabulary projection only where a label is scored) and once
with the plain collator (the projection at every position, lexprobe before this change). Each training runs in
its own process, the two modes alternating, on an otherwise idle machine. Reports the training loop's
examples per second, their ratio, the share of positions projected, and whether the two adapters are equal
bit for bit.

Writes ``benchmarks/results_train_logits.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("smollm2-135m", "gemma3-270m")


def train(model: str, mode: str, steps: int, task: str, out: str) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    from lexprobe.study import SIZES
    from lexprobe.train import TrainConfig, _data, train_lora

    if mode == "every position":
        _data.scores_labelled_positions_only = lambda model: False
    ontology, name = task.split(":")
    # the study's optimiser settings (``--size small``), shortened to ``steps``
    spec = SIZES["small"]
    small = ("bins", "per_bin", "templates", "batch_size", "lr", "lr_scheduler", "warmup_ratio", "lora_dropout")
    config = TrainConfig(
        ontology=ontology,
        task=name,
        model=model,
        max_steps=steps,
        save_steps=10_000,
        dtype="bfloat16",
        seed=0,
        **{field: getattr(spec, field) for field in small},
    )
    result = train_lora(Path(out), config)
    import torch

    from lexprobe.models import load_model
    from lexprobe.tasks import prompt_templates
    from lexprobe.train._data import build_examples, completion_collator

    lm = load_model(model)
    pairs = __import__("pandas").read_csv(Path(out) / "split" / "train.csv", dtype=str)
    examples = build_examples(pairs, prompt_templates(ontology, name, 1), lm.tokenizer)
    collate = completion_collator(lm.tokenizer)
    kept = total = 0
    for start in range(0, len(examples), 8):
        labels = collate(examples[start : start + 8])["labels"]
        shift = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
        kept += int((shift != -100).any(dim=0).sum()) * len(labels)
        total += labels.numel()
    return {
        "model": model,
        "mode": mode,
        "logits_at": result.logits_at,
        "steps": result.n_steps,
        "examples_per_second": result.examples_per_second,
        "final_loss": result.final_loss,
        "positions_projected_share": kept / total if mode == "labelled positions" else 1.0,
        "vocabulary": len(lm.tokenizer),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--task", default="hgnc:name-to-id")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, mode, out = args.child
        print(json.dumps(train(model, mode, args.steps, args.task, out)))
        return
    from safetensors.torch import load_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            for mode in ("every position", "labelled positions"):
                out = os.path.join(tmp, f"{model}-{mode.split()[0]}")
                line = (
                    subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--steps",
                            str(args.steps),
                            "--task",
                            args.task,
                            "--child",
                            model,
                            mode,
                            out,
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                rows.append(json.loads(line))
                print(rows[-1], flush=True)
            a, b = (
                load_file(os.path.join(tmp, f"{model}-{m}", "adapter", "adapter_model.safetensors"))
                for m in ("every", "labelled")
            )
            same = a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
            for row in rows[-2:]:
                row["adapters_identical"] = same
    ratios = {}
    for model in MODELS:
        plain, kept = (
            next(r for r in rows if r["model"] == model and r["mode"] == m)
            for m in ("every position", "labelled positions")
        )
        ratios[model] = kept["examples_per_second"] / plain["examples_per_second"]
    import torch
    import transformers

    import lexprobe

    record = {
        "benchmark": "bench_train_logits",
        "command": "python benchmarks/bench_train_logits.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "versions": {
            "lexprobe": lexprobe.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "steps": args.steps,
        "task": args.task,
        "runs": rows,
        "speedup": ratios,
    }
    (HERE / "results_train_logits.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
