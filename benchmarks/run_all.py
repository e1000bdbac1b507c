"""Run the benchmarks that need nothing but this checkout, one after another, each in its own process.

    python benchmarks/run_all.py [--list] [--only align,embed] [--skip precision]     # or: make bench

Each benchmark runs with its own defaults and writes its own ``benchmarks/results_*.json``; docs/benchmarks.md
quotes them by hand, with the machine named. One that fails does not stop the others; the exit status is 1 if
any failed. A benchmark that needs the optional second model (``make setup-gemma``) runs on the default model
alone where it can, and is skipped, with the reason, where it cannot. The scripts that need more than the checkout
(an earlier commit to compare with, a GPU, two given runs) are listed by ``--list`` with what they need, and
never run from here. Most take minutes; ``bench_align`` and ``bench_precision`` want an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECOND_MODEL = "gemma3-270m"


@dataclass(frozen=True)
class Benchmark:
    script: str
    what: str
    env: dict[str, str] = field(default_factory=dict)
    models_option: bool = False  # takes --models: run on the installed named models only
    needs_second_model: bool = False  # times both models, with no option to leave one out


#: What ``make bench`` runs, in this order (the cheaper first).
BENCHMARKS = {
    "coverage": Benchmark(
        "coverage_intervals.py", "coverage of the alignment intervals by simulation", {"OMP_NUM_THREADS": "1"}
    ),
    "embed": Benchmark("bench_embed.py", "embedding extraction against a plain transformers loop"),
    "generation": Benchmark(
        "bench_generation.py", "ways to stop a reply after its first line", {"OMP_NUM_THREADS": "1"}, True
    ),
    "cka_moments": Benchmark("bench_cka_moments.py", "the CKA null's closed-form moments against 10,000 pairings"),
    "align": Benchmark("bench_align.py", "alignment metrics at n = 40,000 against the Gram form and scikit-learn"),
    "precision": Benchmark("bench_precision.py", "training and extraction in bfloat16 against float32"),
    "train_logits": Benchmark(
        "bench_train_logits.py", "the output layer at labelled positions only, against every position", {}, False, True
    ),
}

#: The scripts here that ``make bench`` does not run, and why.
NOT_RUN = {
    "bench_main_job.py": "the main job against an earlier commit: needs --base (a checkout of that commit)",
    "bench_whole_hgnc.py": "the whole of HGNC against an earlier commit: needs --base and its embeddings cached",
    "bench_generation_head.py": "needs a study run with its fine-tuned adapter (--study; adapters are not in git)",
    "precision_effect.py": "compares two given runs, one per precision (not a timing)",
    "gpu_check.py": "`make gpu-check`, on a CUDA GPU",
    "gpu_carry.py": "packs wheels for a GPU machine without a package index (not a benchmark)",
    "run_all.py": "this script",
}


def installed_models() -> list[str]:
    """The named models whose packages are installed (without loading either)."""
    from lexprobe.models import NAMED_MODELS

    return [name for name, named in NAMED_MODELS.items() if importlib.util.find_spec(named.module) is not None]


def command(bench: Benchmark, models: Sequence[str]) -> list[str] | str:
    """The command line of one benchmark, or why it cannot run here."""
    if bench.needs_second_model and SECOND_MODEL not in models:
        return f"needs {SECOND_MODEL} (`make setup-gemma`)"
    extra = ["--models", ",".join(models)] if bench.models_option else []
    return [sys.executable, str(HERE / bench.script), *extra]


def _names(text: str | None) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"run_all: unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="say what would run, and what is never run from here")
    parser.add_argument("--only", help="comma-separated names (see --list)")
    parser.add_argument("--skip", help="comma-separated names (see --list)")
    args = parser.parse_args(argv)
    chosen = _names(args.only) or list(BENCHMARKS)
    chosen = [n for n in chosen if n not in _names(args.skip)]
    models = installed_models()
    if args.list:
        for name in BENCHMARKS:
            line = command(BENCHMARKS[name], models)
            state = "skipped: " + line if isinstance(line, str) else "runs" if name in chosen else "left out"
            print(f"{name:13} {BENCHMARKS[name].script:24} {BENCHMARKS[name].what} [{state}]")
        for script, why in NOT_RUN.items():
            print(f"{'-':13} {script:24} not run from here: {why}")
        return 0
    failed = []
    for name in chosen:
        bench = BENCHMARKS[name]
        line = command(bench, models)
        if isinstance(line, str):
            print(f"run_all: {name} skipped: {line}", flush=True)
            continue
        print(f"run_all: {name}: {' '.join(line[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(line, env=os.environ | bench.env, cwd=HERE.parent)
        print(f"run_all: {name} {'done' if code == 0 else f'FAILED ({code})'} in {time.perf_counter() - start:.0f} s")
        if code:
            failed.append(name)
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
