"""How far bfloat16 moves published numbers: two runs of the same settings, one per precision, compared.

    python benchmarks/precision_effect.py FLOAT32_RUN BFLOAT16_RUN --out docs/results/precision/align-hgnc.csv
    python benchmarks/precision_effect.py --train FLOAT32_RUN BFLOAT16_RUN --out docs/results/precision/train-hpo.csv
    python benchmarks/precision_effect.py --lexicalization FLOAT32_RUN BFLOAT16_RUN --out docs/results/precision/lex.csv

Lexicalization (`lexprobe lexicalization` runs): per field, each numeric column of ``lexicalization_fields.csv``
in both precisions and the difference.

Alignment (`lexprobe align` runs): one row per pair, metric and layer (both values and their difference), and a
summary per pair and metric: the largest and median absolute difference over layers, the best layer and
best-layer value in each precision, and the best-layer interval of the float32 run.

Training (`lexprobe train` + `lexprobe evaluate` runs): per precision, tuned accuracy on the train and withheld
pairs with Wilson intervals, the gains with their paired-bootstrap intervals, whether each precision's value
lies inside the other's interval, the bfloat16 - float32 accuracy difference over the same items with a paired
bootstrap interval, the final loss, examples/s; and the loss curves side by side (mean of each
tenth of the steps) in ``*_loss.csv``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def compare(float32: Path, bfloat16: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    for run, expected in ((float32, "float32"), (bfloat16, "bfloat16")):
        dtype = json.loads((run / "manifest.json").read_text())["inputs"]["model"]["dtype"]
        if dtype != expected:
            raise SystemExit(f"{run} was made in {dtype}, not {expected}")
    keys = ["pair", "metric", "layer"]
    layers = pd.read_csv(float32 / "alignment.csv").merge(
        pd.read_csv(bfloat16 / "alignment.csv"), on=keys, suffixes=("_float32", "_bfloat16")
    )
    layers["difference"] = layers["value_bfloat16"] - layers["value_float32"]
    layers = layers[[*keys, "value_float32", "value_bfloat16", "difference"]]
    summary = pd.read_csv(float32 / "alignment_summary.csv").merge(
        pd.read_csv(bfloat16 / "alignment_summary.csv"), on=["pair", "metric"], suffixes=("_float32", "_bfloat16")
    )
    spread = layers.assign(absolute=layers["difference"].abs()).groupby(["pair", "metric"])["absolute"]
    summary = summary.merge(spread.max().rename("max_abs_difference").reset_index(), on=["pair", "metric"])
    summary = summary.merge(spread.median().rename("median_abs_difference").reset_index(), on=["pair", "metric"])
    columns = ["pair", "metric", "best_layer_float32", "best_layer_bfloat16", "value_float32", "value_bfloat16"]
    columns += ["ci_low_float32", "ci_high_float32", "max_abs_difference", "median_abs_difference"]
    return layers, summary[columns]


def _check_dtype(run: Path, expected: str) -> None:
    dtype = json.loads((run / "manifest.json").read_text())["inputs"]["model"]["dtype"]
    train = json.loads((run / "manifest.json").read_text()).get("outputs", {}).get("compute_dtype", dtype)
    if train != expected:
        raise SystemExit(f"{run} was made in {train}, not {expected}")


def compare_training(float32: Path, bfloat16: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, evaluations = [], {}
    for run, dtype in ((float32, "float32"), (bfloat16, "bfloat16")):
        _check_dtype(run, dtype)
        evaluation = json.loads((run / "evaluation.json").read_text())
        evaluations[dtype] = evaluation
        manifest = json.loads((run / "manifest.json").read_text())["outputs"]
        accuracy = {(a["split"], a["model"]): a for a in evaluation["accuracy"]}
        for split in ("train", "withheld"):
            tuned, gain = accuracy[(split, "tuned")], evaluation["gains"][split]
            rows.append(
                {
                    "task": f"{evaluation['ontology']} {evaluation['task']}",
                    "dtype": dtype,
                    "split": split,
                    "tuned": tuned["accuracy"],
                    "tuned_ci_low": tuned["ci_low"],
                    "tuned_ci_high": tuned["ci_high"],
                    "gain": gain["gain"],
                    "gain_ci_low": gain["gain_ci_low"],
                    "gain_ci_high": gain["gain_ci_high"],
                    "final_loss": manifest["final_loss"],
                    "examples_per_second": manifest["examples_per_second"],
                    "exposures": manifest["exposures"],
                }
            )
    table = pd.DataFrame(rows)
    for split in ("train", "withheld"):
        part = table[table["split"] == split].set_index("dtype")
        for dtype, other in (("float32", "bfloat16"), ("bfloat16", "float32")):
            inside = part.loc[other, "tuned_ci_low"] <= part.loc[dtype, "tuned"] <= part.loc[other, "tuned_ci_high"]
            table.loc[(table["split"] == split) & (table["dtype"] == dtype), "inside_other_interval"] = bool(inside)
    # the same items in both runs: the bfloat16 - float32 accuracy difference with a paired bootstrap interval
    from lexprobe.stats import paired_bootstrap_interval

    outcomes = {d: pd.read_csv(r / "outcomes.csv") for r, d in ((float32, "float32"), (bfloat16, "bfloat16"))}
    for split in ("train", "withheld"):
        f32 = outcomes["float32"][outcomes["float32"]["split"] == split].set_index("id")["tuned_correct"]
        b16 = outcomes["bfloat16"][outcomes["bfloat16"]["split"] == split].set_index("id")["tuned_correct"]
        f32, b16 = f32.astype(bool).to_numpy(), b16.loc[f32.index].astype(bool).to_numpy()
        low, high = paired_bootstrap_interval(f32, b16, n_boot=2000, seed=0)
        where = table["split"] == split
        table.loc[where, "bfloat16_minus_float32"] = float(b16.mean() - f32.mean())
        table.loc[where, "difference_ci_low"], table.loc[where, "difference_ci_high"] = low, high
    losses = {d: pd.read_csv(r / "loss.csv") for r, d in ((float32, "float32"), (bfloat16, "bfloat16"))}
    tenth = {d: f.groupby(pd.cut(f["step"], 10, labels=False))["loss"].mean() for d, f in losses.items()}
    curve = pd.DataFrame({"tenth_of_steps": range(1, 11), **{f"loss_{d}": t.to_numpy() for d, t in tenth.items()}})
    curve["difference"] = curve["loss_bfloat16"] - curve["loss_float32"]
    return table, curve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("float32", type=Path)
    parser.add_argument("bfloat16", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", action="store_true", help="Compare two training runs instead of alignments.")
    parser.add_argument("--lexicalization", action="store_true", help="Compare two lexicalization runs.")
    args = parser.parse_args()
    if args.lexicalization:
        for run, expected in ((args.float32, "float32"), (args.bfloat16, "bfloat16")):
            _check_dtype(run, expected)
        f32 = pd.read_csv(args.float32 / "lexicalization_fields.csv").set_index("field")
        b16 = pd.read_csv(args.bfloat16 / "lexicalization_fields.csv").set_index("field")
        numeric = [c for c in f32.columns if f32[c].dtype.kind == "f"]
        rows = [
            {"field": f, "column": c, "float32": f32.loc[f, c], "bfloat16": b16.loc[f, c]}
            for f in f32.index
            for c in numeric
        ]
        table = pd.DataFrame(rows)
        table["difference"] = table["bfloat16"] - table["float32"]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        print(table[table["column"].isin(["agreement", "probe_accuracy", "score"])].to_string(index=False))
        return
    if args.train:
        table, curve = compare_training(args.float32, args.bfloat16)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        curve.to_csv(args.out.with_name(args.out.stem + "_loss.csv"), index=False)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(curve.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return
    layers, summary = compare(args.float32, args.bfloat16)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    layers.to_csv(args.out, index=False)
    summary.to_csv(args.out.with_name(args.out.stem + "_summary.csv"), index=False)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
