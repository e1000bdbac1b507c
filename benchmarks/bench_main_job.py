"""The main job side by side with an earlier commit: the same command, the same cached embeddings, one run.

    git worktree add /tmp/lexprobe-base <commit>
    python benchmarks/bench_main_job.py --base /tmp/lexprobe-base [--repeats 2]

1. ``lexprobe align --ontology hgnc`` (2,000 genes, 3 pairs x 31 layers, mknn + CKA + debiased CKA, 100
   permutations, intervals, both figures), run as its own process from each source tree in turn, with the
   embeddings already cached (one untimed warm-up run each fills the cache and compiles what is compiled
   once), then ``--repeats`` timed runs each, alternating trees. Wall time of the whole process.
2. The numbers: ``run_alignment`` of the same configuration in each tree, compared column by column at full
   precision (the CSVs keep six digits).
3. The CKA null per (pair, layer): linear and debiased CKA with 100 permutations on the same preprocessed
   arrays (three layers x three pairs of the run), in each tree, timed in its own process.

The load average is recorded before and after: the ratios mean something only on an otherwise idle machine.
Results: ``benchmarks/results_main_job.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Imports lexprobe (and its CLI, which the package maps from cli/) from one source tree, before anything else
# is imported, so the process starts as the installed command would.
BOOT = """
import importlib.util, sys
tree = sys.argv[1]
sys.path.insert(0, tree)
import lexprobe
spec = importlib.util.spec_from_file_location(
    "lexprobe.cli", f"{tree}/cli/__init__.py", submodule_search_locations=[f"{tree}/cli"]
)
module = importlib.util.module_from_spec(spec)
sys.modules["lexprobe.cli"] = module
spec.loader.exec_module(module)
"""

COMMAND = ["align", "--ontology", "hgnc", "--overwrite", "-q"]

VALUES = """
import pickle
from lexprobe.align import AlignmentConfig, run_alignment
result = run_alignment(AlignmentConfig(ontology="hgnc"))
with open(sys.argv[2], "wb") as handle:
    pickle.dump({"table": result.table, "summary": result.summary}, handle)
"""

CKA_NULL = """
import json, time
import numpy as np
from lexprobe.align import debiased_cka, evaluate_metrics, linear_cka
arrays = np.load(sys.argv[2])
rng = np.random.default_rng(0)
perms = np.array([rng.permutation(2000) for _ in range(100)])
times = {}
for key in sorted({k.rsplit("|", 1)[0] for k in arrays.files}):
    X, Y = arrays[key + "|X"], arrays[key + "|Y"]
    warm = np.array([rng.permutation(50) for _ in range(2)])
    evaluate_metrics(["cka", "dcka"], X[:50], Y[:50], warm, np.empty((0, 50), int))  # compile, if any
    start = time.perf_counter()
    out = evaluate_metrics(["cka", "dcka"], X, Y, perms, np.empty((0, 2000), int))
    seconds = time.perf_counter() - start
    # error against CKA recomputed from scratch in float64 on the shuffled pairing, first 5 permutations
    error = max(
        float(np.max(np.abs(out[m].null[:5] - np.array([f(X, Y[p]) for p in perms[:5]]))))
        for m, f in (("cka", linear_cka), ("dcka", debiased_cka))
    )
    times[key] = {"seconds": seconds, "error": error, "null": {m: o.null.tolist() for m, o in out.items()}}
print(json.dumps(times))
"""


def run_tree(tree: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BOOT + code, str(tree), *args], capture_output=True, text=True, check=True
    )


def timed_command(tree: Path, out: Path) -> float:
    code = f"sys.argv = ['lexprobe', *{COMMAND!r}, '--out', {str(out)!r}]\nfrom lexprobe.cli.main import main\nmain()"
    start = time.perf_counter()
    run_tree(tree, code)
    return time.perf_counter() - start


def cka_arrays(path: Path) -> None:
    """The preprocessed arrays of three layers x three pairs of the main job, from the embedding cache."""
    import numpy as np

    from lexprobe.align import preprocess
    from lexprobe.embed import ExtractionConfig, extract_hidden_states
    from lexprobe.models import load_model
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import field_values, sample_terms

    terms = sample_terms(load_ontology("hgnc"), 2000, seed=0, fields=("name", "symbol", "id"))
    model = load_model("smollm2-135m", dtype="auto")
    config = ExtractionConfig(layers="all")
    states = {
        f: extract_hidden_states(field_values(terms, f), keys=list(terms["id"]), model=model, config=config)
        for f in ("name", "symbol", "id")
    }
    arrays = {}
    for layer in (3, 15, 30):
        for a, b in (("name", "symbol"), ("name", "id"), ("symbol", "id")):
            arrays[f"{a}:{b}@{layer}|X"] = preprocess(states[a].layer(layer))
            arrays[f"{a}:{b}@{layer}|Y"] = preprocess(states[b].layer(layer))
    np.savez(path, **arrays)


def compare(base: dict, new: dict) -> dict:
    import numpy as np

    out = {}
    for name in ("table", "summary"):
        a, b = base[name], new[name]
        assert list(a.columns) == list(b.columns) and len(a) == len(b), name
        assert (a.select_dtypes(exclude="number") == b.select_dtypes(exclude="number")).all().all(), name
        for column in a.select_dtypes("number").columns:
            for metric in sorted(set(a["metric"])):
                rows = a["metric"] == metric
                diff = np.abs(a.loc[rows, column].to_numpy(float) - b.loc[rows, column].to_numpy(float))
                out[f"{name}.{column}.{metric}"] = float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
    return out


def _commit(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="A checkout of the commit to compare with.")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_main_job.json")
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "current": ROOT}
    commits = {
        name: subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        for name, tree in trees.items()
    }
    report: dict = {
        "date": datetime.date.today().isoformat(),
        "commits": commits,
        "command": "lexprobe " + " ".join(COMMAND),
        "load_before": os.getloadavg(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_THREAD_TIMEOUT", "LEXPROBE_CACHE")},
    }
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for name, tree in trees.items():  # warm-up: cache filled, compiled code cached
            timed_command(tree, scratch / f"warm-{name}")
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, tree in trees.items():
                times[name].append(timed_command(tree, scratch / name))
                print(name, f"{times[name][-1]:.1f} s", flush=True)
        report["main_job_seconds"] = times
        report["main_job_ratio"] = min(times["base"]) / min(times["current"])
        report["timings_current"] = json.loads((scratch / "current" / "manifest.json").read_text()).get("timings")

        import pickle

        values = {}
        for name, tree in trees.items():
            run_tree(tree, VALUES, str(scratch / f"{name}.pkl"))
            values[name] = pickle.loads((scratch / f"{name}.pkl").read_bytes())
        report["max_abs_difference"] = compare(values["base"], values["current"])

        cka_arrays(scratch / "arrays.npz")
        cka = {
            name: json.loads(run_tree(tree, CKA_NULL, str(scratch / "arrays.npz")).stdout)
            for name, tree in trees.items()
        }
        import numpy as np

        report["cka_null"] = {
            key: {
                "base_s": cka["base"][key]["seconds"],
                "current_s": cka["current"][key]["seconds"],
                "ratio": cka["base"][key]["seconds"] / cka["current"][key]["seconds"],
                "base_error_vs_float64": cka["base"][key]["error"],
                "current_error_vs_float64": cka["current"][key]["error"],
                "max_abs_difference": max(
                    float(
                        np.max(np.abs(np.array(cka["base"][key]["null"][m]) - np.array(cka["current"][key]["null"][m])))
                    )
                    for m in ("cka", "dcka")
                ),
            }
            for key in cka["current"]
        }
    report["load_after"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "cka_null"}, indent=2))


if __name__ == "__main__":
    main()
