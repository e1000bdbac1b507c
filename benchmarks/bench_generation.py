"""Evaluation's greedy generation: how to stop a reply after its first line, and what it is worth.

    OMP_NUM_THREADS=1 python benchmarks/bench_generation.py [--models smollm2-135m,gemma3-270m] [--shots 0,3]

64 HPO name-to-id prompts (a popularity-balanced split, 2 bins x 16 pairs, train and withheld), template 0,
float32, one thread, batch 32, 24 new tokens, each prompt formatted as `lexprobe evaluate` does (zero-shot, or
K shots drawn from the train pairs). Four ways to end a reply are timed on the same prompts:

- ``none``: EOS only (the code before stop-at-newline);
- ``criteria``: EOS, or lexprobe's stopping criterion (a line break after some non-blank text);
- ``stop_strings``: transformers' ``stop_strings=["\\n"]`` (stops at any newline, a leading one too);
- ``eos_list``: every token whose text holds a line break passed as an extra EOS id (the same).

For each it reports items/s, the mean reply length in tokens and whether the parsed answers (ids, and the first
line for names) equal those of ``none``. Results go to ``benchmarks/results_generation.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

VARIANTS = ("none", "criteria", "stop_strings", "eos_list")


def prompts_for(lm, shots: int, task: str = "name-to-id") -> tuple[list[list[int]], str]:
    import pandas as pd

    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import make_split, prompt_templates
    from lexprobe.train import draw_shots, encode_formatted, few_shot_prompt, shots_for

    split = make_split(load_ontology("hpo"), task, bins=2, per_bin=16, seed=0)
    frame = pd.concat([split.train, split.withheld], ignore_index=True)
    template = prompt_templates("hpo", task, 1)[0]
    drawn = draw_shots(split.train, shots, 0)
    encoded = []
    for source, term_id in zip(frame["source"], frame["id"]):
        rows = shots_for(drawn, shots, source, term_id) if shots else []
        examples = [(drawn["source"][j], drawn["target"][j]) for j in rows]
        encoded.append(encode_formatted(lm.tokenizer, few_shot_prompt(lm.tokenizer, template, examples, source)))
    return encoded, task.split("-to-")[1]


def generate(lm, encoded: list[list[int]], variant: str, budget: int, batch_size: int = 32) -> list[str]:
    import numpy as np
    import torch
    from transformers import GenerationConfig

    from lexprobe.train._evaluate import _generate, _line_tables

    if variant in ("none", "criteria"):
        return _generate(
            lm.model,
            lm.tokenizer,
            encoded,
            max_new_tokens=budget,
            batch_size=batch_size,
            stop_at_newline=variant == "criteria",
            progress=None,
        )
    tok = lm.tokenizer
    newline_ids = np.flatnonzero(_line_tables(tok).breaks).tolist()
    order = np.argsort([len(e) for e in encoded], kind="stable")
    replies = [""] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in chunk)
        ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        extra = {}
        if variant == "eos_list":
            eos = [tok.eos_token_id, *newline_ids]
            config = GenerationConfig(
                max_new_tokens=budget, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=eos
            )
        else:
            config = GenerationConfig(
                max_new_tokens=budget,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                stop_strings=["\n"],
            )
            extra["tokenizer"] = tok
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = lm.model.generate(input_ids=ids, attention_mask=mask, generation_config=config, **extra)
        for row, i in enumerate(chunk):
            replies[i] = tok.decode(out[row, width:], skip_special_tokens=True)
    return replies


def main() -> None:
    import numpy as np
    import torch

    from lexprobe.models import load_model
    from lexprobe.train import parse_reply

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--shots", default="0,3")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_generation.json")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for model in args.models.split(","):
        lm = load_model(model, head=True, dtype="float32", device="cpu")
        for shots in (int(k) for k in args.shots.split(",")):
            encoded, field = prompts_for(lm, shots)
            parsed_none = None
            for variant in VARIANTS:
                start = time.perf_counter()
                replies = generate(lm, encoded, variant, budget=24)
                seconds = time.perf_counter() - start
                parsed = [parse_reply(r, field, prefix="HP") for r in replies]
                parsed_none = parsed if variant == "none" else parsed_none
                lengths = [len(lm.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies]
                row = {
                    "model": model,
                    "shots": shots,
                    "variant": variant,
                    "items": len(encoded),
                    "seconds": round(seconds, 2),
                    "items_per_second": round(len(encoded) / seconds, 2),
                    "mean_reply_tokens": round(float(np.mean(lengths)), 1),
                    "empty_replies": sum(not r.strip() for r in replies),
                    "same_answers_as_none": sum(a == b for a, b in zip(parsed_none, parsed)),
                }
                results.append(row)
                print(json.dumps(row), flush=True)
    record = {"platform": platform.platform(), "torch_threads": 1, "dtype": "float32", "results": results}
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
