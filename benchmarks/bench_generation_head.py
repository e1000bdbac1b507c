"""Evaluation's generation with and without a contiguous input to the output layer (issue 19's study v2).

    python benchmarks/bench_generation_head.py [--models smollm2-135m,gemma3-270m] [--study docs/results/study-v2]

64 HPO name -> id prompts of a study's run (its train split, template 0, zero-shot), bfloat16, batch 32, at most
24 new tokens, stop after the first line, as `lexprobe evaluate` generates: the base model, then the run's
fine-tuned adapter (PEFT, unmerged). ``strided``: the output layer gets what the model hands it (the prefill's
last position of each prompt, a strided view); ``contiguous``: lexprobe's forward pre-hook copies it to a
contiguous tensor first. Reports seconds, items/s, the ratio and whether the replies are identical. The
adapter is the study's ``<study>-<model>/hpo/name-to-id/adapter`` (not in git: run the study first); without
it only the base model is timed. Results go to ``benchmarks/results_generation_head.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(model, tokenizer, prompts, contiguous: bool) -> tuple[float, list[str]]:
    from lexprobe.train import _evaluate

    keep = _evaluate._contiguous_input
    if not contiguous:
        _evaluate._contiguous_input = lambda module, args: args
    try:
        began = time.perf_counter()
        replies = _evaluate.generate_replies(model, tokenizer, prompts, max_new_tokens=24)
        return time.perf_counter() - began, replies
    finally:
        _evaluate._contiguous_input = keep


def main() -> None:
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--study", default=str(ROOT / "docs" / "results" / "study-v2"))
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_generation_head.json")))
    args = parser.parse_args()

    import pandas as pd
    import torch

    from lexprobe.models import load_model
    from lexprobe.tasks import prompt_templates
    from lexprobe.train import format_prompt
    from lexprobe.train._evaluate import _with_adapter

    results = []
    for name in args.models.split(","):
        run = Path(f"{args.study}-{name.split('-')[0]}") / "hpo" / "name-to-id"
        lm = load_model(name, dtype="bfloat16", head=True)
        pairs = pd.read_csv(run / "split" / "train.csv", dtype=str)
        template = prompt_templates("hpo", "name-to-id", 1)[0]
        prompts = [format_prompt(lm.tokenizer, template.render(s)) for s in pairs["source"][:64]]
        models = [("base", lm.model)]
        if (run / "adapter" / "adapter_config.json").is_file():
            models.append(("fine-tuned", _with_adapter(lm.model, run / "adapter")))
        for which, model in models:
            seconds = {}
            replies = {}
            for contiguous in (False, True):
                key = "contiguous" if contiguous else "strided"
                seconds[key], replies[key] = timed(model, lm.tokenizer, prompts, contiguous)
            row = {
                "model": name,
                "weights": which,
                "items": len(prompts),
                "seconds_strided": round(seconds["strided"], 2),
                "seconds_contiguous": round(seconds["contiguous"], 2),
                "items_per_second_contiguous": round(len(prompts) / seconds["contiguous"], 2),
                "speedup": round(seconds["strided"] / seconds["contiguous"], 2),
                "identical_replies": replies["strided"] == replies["contiguous"],
            }
            print(row, flush=True)
            results.append(row)
    record = {
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "dtype": "bfloat16",
        "results": results,
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
