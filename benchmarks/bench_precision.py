"""Precision: training and extraction in bfloat16 against float32, side by side in one run.

    python benchmarks/bench_precision.py [--train-steps 40] [--n 1000] [--plain-n 100]

Measured on an otherwise idle machine, each step in its own process (its own peak memory, no warm caches
shared):

- torch.matmul 1024 x 1024 in float32 and in bfloat16 (GFLOP/s): the machine's ceilings;
- ``train_lora`` on hpo name -> id (100 train pairs, 1 template, batch 8, LoRA r 16 on all linear layers):
  examples/s of the training loop in bfloat16 (autocast, float32 LoRA weights) and in float32, and the
  useful rate as a fraction of the bfloat16 matmul rate (LoRA costs about 4 x non-embedding parameters FLOPs
  per token: forward, and backward through the activations only);
- the recorded study runs' rate (seconds per example, from ``docs/results/study-smollm2`` manifests): what a
  training run cost before this change;
- greedy generation (``generate_replies``, as ``lexprobe evaluate``) of 64 hpo name -> id replies in bfloat16
  and float32 (items/s, and how many replies are identical);
- ``extract_hidden_states`` of HGNC gene names (every layer, mean-pooled) in bfloat16 and float32 (tokens/s), and
  the plain per-item loop (AutoModelForCausalLM, output_hidden_states, float32) on the first ``plain-n`` names.

Writes ``benchmarks/results_precision.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def matmul(dtype: str, size: int = 1024, repeats: int = 30) -> dict:
    import torch

    kind = getattr(torch, dtype)
    a, b = torch.randn(size, size, dtype=kind), torch.randn(size, size, dtype=kind)
    for _ in range(3):
        torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    seconds = time.perf_counter() - start
    return {"dtype": dtype, "gflops": 2 * size**3 * repeats / seconds / 1e9}


def train(dtype: str, steps: int) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    from lexprobe.train import TrainConfig, train_lora

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(
            ontology="hpo",
            task="name-to-id",
            bins=20,
            per_bin=5,
            templates=1,
            max_steps=steps,
            batch_size=8,
            lr=1e-3,
            lora_dropout=0.0,
            lr_scheduler="constant_with_warmup",
            save_steps=10_000,
            dtype=dtype,
            seed=0,
        )
        result = train_lora(Path(tmp) / "run", config)
        from lexprobe.models import load_model
        from lexprobe.tasks import prompt_templates
        from lexprobe.train._data import build_examples

        lm = load_model()
        pairs = __import__("pandas").read_csv(Path(tmp) / "run" / "split" / "train.csv", dtype=str)
        examples = build_examples(pairs, prompt_templates("hpo", "name-to-id", 1), lm.tokenizer)
    params = sum(p.numel() for name, p in lm.model.named_parameters() if "embed_tokens" not in name)
    tokens = sum(len(e["input_ids"]) for e in examples) / len(examples)
    return {
        "dtype": dtype,
        "compute_dtype": result.compute_dtype,
        "steps": result.n_steps,
        "examples_per_second": result.examples_per_second,
        "tokens_per_example": tokens,
        "non_embedding_params": params,
        "useful_gflops": 4 * params * tokens * result.examples_per_second / 1e9,
        "final_loss": result.final_loss,
    }


def extract(dtype: str, n: int) -> dict:
    from lexprobe.embed import ExtractionConfig, extract_hidden_states
    from lexprobe.models import load_model

    lm = load_model(dtype=dtype)
    texts = _names(n)
    n_tokens = sum(len(lm.tokenizer(t)["input_ids"]) for t in texts)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        extract_hidden_states(texts, model=lm, config=ExtractionConfig(layers="all"), cache_dir=cache, use_cache=False)
        seconds = time.perf_counter() - start
    return {"dtype": dtype, "items": n, "tokens": n_tokens, "seconds": seconds, "tokens_per_second": n_tokens / seconds}


def plain(n: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lexprobe.models import _converted_gguf, load_model

    directory, _ = _converted_gguf(Path(load_model().source))
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    texts = _names(n)
    n_tokens = 0
    start = time.perf_counter()
    with torch.no_grad():
        for text in texts:
            inputs = tokenizer(text, return_tensors="pt")
            n_tokens += inputs["input_ids"].shape[1]
            states = model(**inputs, output_hidden_states=True).hidden_states
            _ = torch.stack([h[0].mean(0) for h in states]).numpy()
    seconds = time.perf_counter() - start
    return {
        "dtype": "float32",
        "items": n,
        "tokens": n_tokens,
        "seconds": seconds,
        "tokens_per_second": n_tokens / seconds,
    }


def generate(dtype: str) -> dict:
    """Greedy replies to 64 hpo name -> id prompts (template 0, zero-shot), batch 32, 24 new tokens."""
    import pandas as pd

    from lexprobe.models import load_model
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import make_split, prompt_templates
    from lexprobe.train import generate_replies

    lm = load_model(dtype=dtype, head=True)
    split = make_split(load_ontology("hpo"), "name-to-id", bins=2, per_bin=16, seed=0)
    sources = pd.concat([split.train, split.withheld])["source"].astype(str)
    template = prompt_templates("hpo", "name-to-id", 1)[0]
    prompts = [template.render(x) for x in sources]
    generate_replies(lm.model, lm.tokenizer, prompts[:4], max_new_tokens=24)  # warm-up
    start = time.perf_counter()
    replies = generate_replies(lm.model, lm.tokenizer, prompts, max_new_tokens=24, batch_size=32)
    seconds = time.perf_counter() - start
    return {
        "dtype": dtype,
        "items": len(prompts),
        "seconds": seconds,
        "items_per_second": len(prompts) / seconds,
        "replies": replies,
    }


def _names(n: int) -> list[str]:
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import field_values, sample_terms

    return field_values(sample_terms(load_ontology("hgnc"), max(n, 1000), seed=0, fields=("name",)), "name")[:n]


def recorded_study_rate() -> dict:
    """Seconds per processed training example (pairs x templates x epochs) of the recorded study runs of the
    default model, from their manifests (one thread each, two runs at a time, model loading included)."""
    rates = []
    for path in sorted(glob.glob(str(HERE.parent / "docs/results/study-smollm2/*/*/manifest.json"))):
        manifest = json.loads(Path(path).read_text())
        if manifest.get("stage") != "train":
            continue
        out = manifest["outputs"]
        if out.get("resumed_from") is None and out.get("n_examples"):  # a resumed run's time covers a part
            rates.append(out["seconds"] / (out["n_examples"] * manifest["config"]["epochs"]))
    return {"runs": len(rates), "seconds_per_example_min": min(rates), "seconds_per_example_max": max(rates)}


def _child(step: str, arg: str, threads: int | None = None) -> dict:
    env = dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    out = subprocess.run(
        [sys.executable, __file__, "--child", step, arg], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--plain-n", type=int, default=100)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        step, arg = args.child
        record = {"matmul": lambda: matmul(arg), "train": lambda: train(arg, args.train_steps)}
        record |= {"extract": lambda: extract(arg, args.n), "plain": lambda: plain(int(arg))}
        record["generate"] = lambda: generate(arg)
        result = record[step]()
        result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    load_before = os.getloadavg()
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": load_before},
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "matmul": [_child("matmul", d) for d in ("float32", "bfloat16")],
        "train": [_child("train", d) for d in ("bfloat16", "float32")],
        # the recorded study runs used one thread each (two runs at a time): the like-for-like comparison
        "train_one_thread": [_child("train", d, threads=1) for d in ("bfloat16", "float32")],
        "recorded_study": recorded_study_rate(),
        "extract": [_child("extract", d) for d in ("bfloat16", "float32")],
        "plain": _child("plain", str(args.plain_n)),
        "generate": [_child("generate", d) for d in ("bfloat16", "float32")],
    }
    bf16_replies, fp32_replies = (g.pop("replies") for g in results["generate"])
    results["generate_same_replies"] = sum(a == b for a, b in zip(bf16_replies, fp32_replies))
    results["machine"]["load_after"] = os.getloadavg()
    bf16_matmul = results["matmul"][1]["gflops"]
    bf16, fp32 = results["train"]
    results["ratios"] = {
        "matmul_bf16_over_fp32": bf16_matmul / results["matmul"][0]["gflops"],
        "train_bf16_over_fp32": bf16["examples_per_second"] / fp32["examples_per_second"],
        "train_bf16_over_recorded_fastest": bf16["examples_per_second"]
        * results["recorded_study"]["seconds_per_example_min"],
        "train_bf16_over_recorded_slowest": bf16["examples_per_second"]
        * results["recorded_study"]["seconds_per_example_max"],
        "train_bf16_one_thread_over_recorded_fastest": results["train_one_thread"][0]["examples_per_second"]
        * results["recorded_study"]["seconds_per_example_min"],
        "train_one_thread_bf16_over_fp32": results["train_one_thread"][0]["examples_per_second"]
        / results["train_one_thread"][1]["examples_per_second"],
        "train_bf16_fraction_of_bf16_matmul": bf16["useful_gflops"] / bf16_matmul,
        "extract_bf16_over_fp32": results["extract"][0]["tokens_per_second"]
        / results["extract"][1]["tokens_per_second"],
        "extract_bf16_over_plain": results["extract"][0]["tokens_per_second"] / results["plain"]["tokens_per_second"],
        "generate_bf16_over_fp32": results["generate"][0]["items_per_second"]
        / results["generate"][1]["items_per_second"],
    }
    (HERE / "results_precision.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["ratios"], indent=2))


if __name__ == "__main__":
    main()
