"""The CKA null's closed-form moments against a large Monte Carlo null, and what they cost, on the main job's data.

    python benchmarks/bench_cka_moments.py [--draws 10000] [--layers all] [--limit 2000]

The main job's sample (HGNC, 2,000 protein-coding genes, seed 0), its three pairs, every layer, preprocessed as
``lexprobe align`` does (standardize). Per pair and layer: the exact mean and sd of linear and debiased CKA over
all pairings (``lexprobe.align.cka_null_moments``) against the mean and sd of ``--draws`` random pairings (the
same code path as a run's null), each difference in units of its Monte Carlo standard error (mean: sd / sqrt(N);
sd: relative, 1 / sqrt(2 (N - 1))); and the seconds of the moments against those of the default run's 100
permutations, measured in the same process. The embeddings must be cached or are computed first (not timed).
Results: ``benchmarks/results_cka_moments.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--layers", default="all", help="all, or indices like 0,15,30")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_cka_moments.json")
    parser.add_argument(
        "--whole", type=int, default=43_837, help="Items of the whole-ontology timing (0 skips it; whole HGNC)."
    )
    parser.add_argument("--whole-only", action="store_true", help="Only the whole-ontology timing (no model).")
    args = parser.parse_args()
    whole = _whole_ontology_timing(args.whole) if args.whole else None
    if args.whole_only:
        record = {"date": datetime.date.today().isoformat(), "load_before": os.getloadavg(), "whole_ontology": whole}
        record["load_after"] = os.getloadavg()
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record, indent=1))
        return

    import lexprobe
    from lexprobe.align import cka_null_moments, evaluate_metrics, preprocess
    from lexprobe.align._null import Side
    from lexprobe.embed import ExtractionConfig, extract_hidden_states
    from lexprobe.models import load_model
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import field_values, sample_terms

    fields, pairs = ("name", "symbol", "id"), (("name", "symbol"), ("name", "id"), ("symbol", "id"))
    ontology = load_ontology("hgnc")
    terms = sample_terms(ontology, args.limit, seed=0, fields=fields, categories=None)
    n = len(terms)
    model = load_model("smollm2-135m", dtype="auto")
    states = {
        f: extract_hidden_states(field_values(terms, f), keys=list(terms["id"]), model=model, config=ExtractionConfig())
        for f in fields
    }
    layers = states["name"].layers if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    rng = np.random.default_rng(0)
    perms = np.array([rng.permutation(n) for _ in range(args.draws)])
    no_boots = np.zeros((0, n), dtype=np.int64)
    rows, seconds = [], {"moments": 0.0, "permutations_100": 0.0, "permutations_all": 0.0}
    load_before = os.getloadavg()
    for layer in layers:
        sides = {f: Side(preprocess(states[f].layer(layer)), f) for f in fields}
        for a, b in pairs:
            for side in (sides[a], sides[b]):
                _ = side.centred, side.sq_norms  # shared by both, as in a run
            start = time.perf_counter()
            moments = cka_null_moments(sides[a], sides[b])
            seconds["moments"] += time.perf_counter() - start
            start = time.perf_counter()
            evaluate_metrics(("cka", "dcka"), sides[a], sides[b], perms[:100], no_boots)
            seconds["permutations_100"] += time.perf_counter() - start
            start = time.perf_counter()
            outcomes = evaluate_metrics(("cka", "dcka"), sides[a], sides[b], perms, no_boots)
            seconds["permutations_all"] += time.perf_counter() - start
            for metric, outcome in outcomes.items():
                mean, sd = moments[metric]
                mc_mean, mc_sd = float(outcome.null.mean()), float(outcome.null.std(ddof=1))
                rows.append(
                    {
                        "layer": int(layer),
                        "pair": f"{a}:{b}",
                        "metric": metric,
                        "value": outcome.value,
                        "exact_mean": mean,
                        "exact_sd": sd,
                        "mc_mean": mc_mean,
                        "mc_sd": mc_sd,
                        "mean_error_in_se": (mc_mean - mean) / (sd / np.sqrt(args.draws)),
                        "sd_error_in_se": (mc_sd / sd - 1) / (1 / np.sqrt(2 * (args.draws - 1))),
                        "z_exact": (outcome.value - mean) / sd,
                    }
                )
        print(layer, {k: round(v, 1) for k, v in seconds.items()}, flush=True)
    mean_err = np.array([r["mean_error_in_se"] for r in rows])
    sd_err = np.array([r["sd_error_in_se"] for r in rows])
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    report = {
        "date": datetime.date.today().isoformat(),
        "commit": commit.strip(),
        "lexprobe": lexprobe.__version__,
        "numpy": np.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": model.describe(),
        "ontology": ontology.describe(),
        "n_items": n,
        "draws": args.draws,
        "layers": [int(x) for x in layers],
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "seconds": seconds,
        "speedup_over_100_permutations": seconds["permutations_100"] / seconds["moments"],
        "cells": len(rows),
        "mean_error_in_se": {"max_abs": float(np.abs(mean_err).max()), "rms": float(np.sqrt(np.mean(mean_err**2)))},
        "sd_error_in_se": {"max_abs": float(np.abs(sd_err).max()), "rms": float(np.sqrt(np.mean(sd_err**2)))},
        "whole_ontology": whole,
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rows" and k not in ("model", "ontology")}, indent=1))


def _whole_ontology_timing(n: int, d: int = 576, permutations: int = 3) -> dict:
    """Seconds of one pair-layer's CKA null at whole-ontology size, on standard-normal states of the model's
    width (the cost does not depend on the values): the sums the metric's value needs anyway (both CKAs), the
    exact moments given those sums, and the permuted cross term c2(p) = ||X^T P Y||^2 of the GEMM form a run
    uses above 8,192 items, per permutation (timed on ``permutations``, scaled to a run's 100)."""
    from lexprobe.align._null import Side, _accumulate_sides, _cka_moments, _null_scales, permuted_cross

    rng = np.random.default_rng(0)
    sx = Side(rng.standard_normal((n, d)).astype(np.float32), "X")
    sy = Side(rng.standard_normal((n, d)).astype(np.float32), "Y")
    _ = sx.centred, sy.centred, sx.sq_norms, sy.sq_norms
    start = time.perf_counter()
    acc = _accumulate_sides(sx, sy)
    sums = time.perf_counter() - start
    start = time.perf_counter()
    _cka_moments(sx, sy, **_null_scales(acc))
    moments = time.perf_counter() - start
    perms = np.array([rng.permutation(n) for _ in range(permutations)])
    start = time.perf_counter()
    permuted_cross(sx, sy, perms, form="feature", device="numpy")
    per_permutation = (time.perf_counter() - start) / permutations
    return {
        "n_items": n,
        "dim": d,
        "seconds_value_sums": sums,
        "seconds_moments_given_sums": moments,
        "seconds_per_permutation": per_permutation,
        "permutations_timed": permutations,
        "seconds_100_permutations": per_permutation * 100,
        "null_seconds_100_permutations_over_moments": per_permutation * 100 / moments,
    }


if __name__ == "__main__":
    main()
