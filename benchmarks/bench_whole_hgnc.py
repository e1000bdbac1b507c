"""Measuring alignment on the whole of HGNC, side by side with an earlier commit, on the same cached states.

    git worktree add /tmp/lexprobe-base <commit>
    python benchmarks/bench_whole_hgnc.py --base /tmp/lexprobe-base [--layers 0,15,30]

Every approved HGNC gene (every locus type, about 44,000) and its three fields, embedded once by
``lexprobe align --ontology hgnc --limit all --category all`` (the embeddings must be cached). In each source
tree, in its own process: the three pairs at the given layers with the default metrics (mutual kNN, linear
and debiased CKA), 100 permutations and 100 bootstrap rows (mknn half-sample intervals; CKA intervals are
computed at the best layer only in a run, so not here), as ``run_alignment`` computes them in that tree (the
current one shares each field's search and sums between its pairs). Wall time per layer, and the values:
mutual kNN from approximate neighbour lists (HNSW) in the current tree against exact search in the earlier
one, CKA from the same sums.

The earlier tree runs the whole run's 31 layers in about 70 minutes by this measure; timing 3 layers of it
keeps the comparison to minutes. Results: ``benchmarks/results_whole_hgnc.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import importlib.util, json, sys, time
tree, layers = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
sys.path.insert(0, tree)
import numpy as np
from lexprobe.align import evaluate_metrics, preprocess
import lexprobe.align._null as null
from lexprobe.embed import ExtractionConfig, extract_hidden_states
from lexprobe.models import load_model
from lexprobe.ontology import load_ontology
from lexprobe.tasks import field_values, sample_terms

fields = ("name", "symbol", "id")
pairs = (("name", "symbol"), ("name", "id"), ("symbol", "id"))
terms = sample_terms(load_ontology("hgnc"), None, seed=0, fields=fields, categories=())
n = len(terms)
model = load_model("smollm2-135m", dtype="auto")
states = {
    f: extract_hidden_states(field_values(terms, f), keys=list(terms["id"]), model=model, config=ExtractionConfig())
    for f in fields
}
rng = np.random.default_rng(0)
perms = np.array([rng.permutation(n) for _ in range(100)])
boots = rng.integers(0, n, size=(100, n))
shared = hasattr(null, "Side")
out = {"n_items": n, "shared_sides": shared, "layers": {}}
for layer in layers:
    start = time.perf_counter()
    arrays = {f: preprocess(states[f].layer(layer)) for f in fields}
    sides = {f: null.Side(arrays[f], f) for f in fields} if shared else arrays
    values = {}
    for a, b in pairs:
        outcomes = evaluate_metrics(["mknn", "cka", "dcka"], sides[a], sides[b], perms, boots, cka_boots=boots[:0])
        values[f"{a}:{b}"] = {m: {"value": o.value, "null_mean": float(o.null.mean()), "null_sd": float(o.null.std())}
                              for m, o in outcomes.items()}
    seconds = time.perf_counter() - start
    recall = {f: s.recall for f, s in sides.items()} if shared else {}
    out["layers"][str(layer)] = {"seconds": seconds, "values": values, "recall": recall}
    print(layer, round(seconds, 1), file=sys.stderr, flush=True)
print(json.dumps(out))
"""


def _commit(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="A checkout of the commit to compare with.")
    parser.add_argument("--layers", default="0,15,30")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_whole_hgnc.json")
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "current": ROOT}
    report: dict = {
        "date": datetime.date.today().isoformat(),
        "commits": {
            name: subprocess.run(
                ["git", "-C", str(t), "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            for name, t in trees.items()
        },
        "layers": args.layers,
        "load_before": os.getloadavg(),
    }
    for name, tree in trees.items():
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(tree), args.layers], capture_output=True, text=True, check=True
        )
        report[name] = json.loads(done.stdout)
        print(name, {k: round(v["seconds"], 1) for k, v in report[name]["layers"].items()}, flush=True)
    base, current = report["base"]["layers"], report["current"]["layers"]
    report["seconds"] = {
        "base": sum(v["seconds"] for v in base.values()),
        "current": sum(v["seconds"] for v in current.values()),
    }
    report["ratio"] = report["seconds"]["base"] / report["seconds"]["current"]
    report["differences"] = {
        f"{layer}|{pair}|{metric}|{stat}": current[layer]["values"][pair][metric][stat]
        - base[layer]["values"][pair][metric][stat]
        for layer in base
        for pair in base[layer]["values"]
        for metric in base[layer]["values"][pair]
        for stat in ("value", "null_mean", "null_sd")
    }
    report["load_after"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("seconds", "ratio", "load_before", "load_after")}, indent=2))


if __name__ == "__main__":
    main()
