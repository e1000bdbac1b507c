"""Embedding extraction: lexprobe vs the plain approach a user would write, in one run.

    python benchmarks/bench_embed.py [--n 2000] [--plain-n 200]

Both approaches embed the same HGNC gene names (a popularity-balanced sample of the bundled table) with the
default model. The plain approach runs one item at a time through AutoModelForCausalLM (LM head included)
with output_hidden_states=True and mean-pools every layer. Each approach runs in its own process so its peak
memory (max RSS) is its own. The machine's float32 matmul rate is measured in the same run, and the
extraction's useful rate is 2 x non-embedding parameters x tokens / time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time


def names(n: int) -> list[str]:
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import field_values, sample_terms

    return field_values(sample_terms(load_ontology("hgnc"), n, seed=0, fields=("name",)), "name")


def run_lexprobe(n: int) -> dict:
    from lexprobe.embed import ExtractionConfig, extract_hidden_states
    from lexprobe.models import load_model

    lm = load_model()
    texts = names(n)
    n_tokens = sum(len(lm.tokenizer(t)["input_ids"]) for t in texts)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        extract_hidden_states(texts, model=lm, config=ExtractionConfig(layers="all"), cache_dir=cache, use_cache=False)
        elapsed = time.perf_counter() - start
    params = sum(p.numel() for name, p in lm.model.named_parameters() if "embed_tokens" not in name)
    return {"items": n, "tokens": n_tokens, "seconds": elapsed, "non_embedding_params": params}


def run_plain(n: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lexprobe.models import load_model

    location = load_model().source  # make sure the converted model is cached, then load it the plain way
    from pathlib import Path

    from lexprobe.models import _converted_gguf

    directory, _ = _converted_gguf(Path(location))
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    texts = names(2000)[:n]
    n_tokens = 0
    start = time.perf_counter()
    with torch.no_grad():
        for text in texts:
            inputs = tokenizer(text, return_tensors="pt")
            n_tokens += inputs["input_ids"].shape[1]
            states = model(**inputs, output_hidden_states=True).hidden_states
            _ = torch.stack([h[0].mean(0) for h in states]).numpy()
    return {"items": n, "tokens": n_tokens, "seconds": time.perf_counter() - start}


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def child(which: str, n: int) -> None:
    result = run_lexprobe(n) if which == "lexprobe" else run_plain(n)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--plain-n", type=int, default=200)
    parser.add_argument("--child", choices=["lexprobe", "plain"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n)
        return
    load_before = os.getloadavg()
    gflops = matmul_gflops()
    results = {}
    for which, n in (("lexprobe", args.n), ("plain", args.plain_n)):
        out = subprocess.run(
            [sys.executable, __file__, "--child", which, "--n", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
    lp, plain = results["lexprobe"], results["plain"]
    lp_rate, plain_rate = lp["items"] / lp["seconds"], plain["items"] / plain["seconds"]
    useful = 2 * lp["non_embedding_params"] * lp["tokens"] / lp["seconds"] / 1e9
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "matmul_gflops_fp32": gflops,
        "lexprobe": lp | {"items_per_s": lp_rate, "tokens_per_s": lp["tokens"] / lp["seconds"], "gflops": useful},
        "plain": plain | {"items_per_s": plain_rate, "tokens_per_s": plain["tokens"] / plain["seconds"]},
        "speedup_items_per_s": lp_rate / plain_rate,
        "fraction_of_matmul_rate": useful / gflops,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
