"""How far bfloat16 moves the published alignment numbers: two `lexprobe align` runs of the same settings,
one per precision, compared value by value.

    python benchmarks/precision_effect.py FLOAT32_RUN BFLOAT16_RUN --out docs/results/precision/align-hgnc.csv

Writes one row per pair, metric and layer (both values and their difference) and prints, per pair and metric,
the largest and median absolute difference over layers, the best layer and best-layer value in each precision,
and the best-layer interval of the float32 run.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("float32", type=Path)
    parser.add_argument("bfloat16", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    layers, summary = compare(args.float32, args.bfloat16)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    layers.to_csv(args.out, index=False)
    summary.to_csv(args.out.with_name(args.out.stem + "_summary.csv"), index=False)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
