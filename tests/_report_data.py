"""Synthetic data in the formats the correlate stage writes, shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lexprobe.figures import (
    plot_accuracy_by_popularity,
    plot_calibration,
    plot_gain_vs_feature,
    plot_task_gains,
)
from lexprobe.runs import write_result_dir


def make_items(labels: tuple[str, ...] = ("hgnc name-to-symbol", "hpo name-to-id"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t, label in enumerate(labels):
        ontology, task = label.split(" ")
        for split in ("train", "withheld"):
            for b in range(5):
                for i in range(8):
                    lexicalization = rng.uniform(0, 1)
                    baseline = bool(rng.random() < 0.1)
                    tuned = bool(rng.random() < (0.8 if split == "train" else 0.4 * lexicalization / (t + 1)))
                    rows.append(
                        {
                            "ontology": ontology,
                            "task": task,
                            "model": "smollm2-135m",
                            "label": label,
                            "split": split,
                            "id": f"{ontology.upper()}:{t}{b}{i}",
                            "source": f"term {b}-{i}",
                            "target": f"T{b}{i}",
                            "popularity": float(10**b + i),
                            "log_popularity": float(np.log1p(10**b + i)),
                            "bin": b,
                            "baseline_correct": baseline,
                            "tuned_correct": tuned,
                            "gained": tuned and not baseline,
                            "lost": baseline and not tuned,
                            "gain": int(tuned) - int(baseline),
                            "alignment": rng.uniform(0, 1),
                            "source_tokens": int(rng.integers(1, 9)),
                            "target_tokens": int(rng.integers(1, 9)),
                            "source_lexicalization": lexicalization,
                            "target_lexicalization": rng.uniform(0, 1),
                            "lexicalization": lexicalization,
                        }
                    )
    return pd.DataFrame(rows)


def make_tasks(items: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for label, group in items.groupby("label", sort=False):
        acc = group.groupby("split")[["baseline_correct", "tuned_correct"]].mean()
        mem = acc.loc["train", "tuned_correct"] - acc.loc["train", "baseline_correct"]
        gen = acc.loc["withheld", "tuned_correct"] - acc.loc["withheld", "baseline_correct"]
        rows.append(
            {
                "ontology": group["ontology"].iloc[0],
                "task": group["task"].iloc[0],
                "model": "smollm2-135m",
                "label": label,
                "n_train": int((group["split"] == "train").sum()),
                "n_withheld": int((group["split"] == "withheld").sum()),
                "layer": 6,
                "alignment": group["alignment"].mean(),
                "alignment_effect": 0.1,
                "alignment_z": 40.0 * len(rows) + 5,
                "alignment_p": 0.0099,
                "source_lexicalization": 0.7,
                "target_lexicalization": 0.4,
                "lexicalization": group["lexicalization"].mean(),
                "popularity_median": group["popularity"].median(),
                "baseline_train": acc.loc["train", "baseline_correct"],
                "baseline_withheld": acc.loc["withheld", "baseline_correct"],
                "tuned_train": acc.loc["train", "tuned_correct"],
                "tuned_withheld": acc.loc["withheld", "tuned_correct"],
                "memorization_gain": mem,
                "memorization_gain_ci_low": mem - 0.08,
                "memorization_gain_ci_high": mem + 0.08,
                "generalization_gain": gen,
                "generalization_gain_ci_low": gen - 0.05,
                "generalization_gain_ci_high": gen + 0.05,
                "memorized": mem > 0.1,
                "generalized": gen > 0.1,
            }
        )
    return pd.DataFrame(rows)


def make_loto(tasks: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for task in tasks.itertuples():
        for split, gain in (("train", task.memorization_gain), ("withheld", task.generalization_gain)):
            rows.append(
                {
                    "label": task.label,
                    "split": split,
                    "predicted_gain": gain + 0.05,
                    "predicted_ci_low": gain - 0.1,
                    "predicted_ci_high": gain + 0.2,
                    "measured_gain": gain,
                    "measured_ci_low": gain - 0.05,
                    "measured_ci_high": gain + 0.05,
                    "verdict": "generalizes" if gain > 0.1 else "memorizes",
                    "measured_verdict": "generalizes" if gain > 0.1 else "memorizes",
                }
            )
    return pd.DataFrame(rows)


def draw_correlate_figures(items: pd.DataFrame, tasks: pd.DataFrame, loto: pd.DataFrame, directory: Path) -> list:
    return [
        *plot_accuracy_by_popularity(items, directory, title="synthetic"),
        *plot_gain_vs_feature(items, "lexicalization", directory=directory),
        *plot_gain_vs_feature(items, "alignment", directory=directory),
        *plot_task_gains(tasks, "alignment_z", directory),
        *plot_calibration(loto, directory),
    ]


def write_correlate_dir(out: Path) -> Path:
    """A "correlate" run directory of two synthetic tasks, written as the correlate stage writes one."""
    items = make_items()
    tasks = make_tasks(items)
    loto = make_loto(tasks)
    correlations = pd.DataFrame(
        {
            "scope": ["all", "hgnc name-to-symbol"],
            "x": ["lexicalization", "alignment"],
            "y": ["gain", "gain"],
            "split": ["withheld", "withheld"],
            "n": [80, 40],
            "rho": [0.31, 0.05],
            "ci_low": [0.1, -0.25],
            "ci_high": [0.5, 0.34],
            "p_value": [0.004, 0.76],
            "note": ["", "<few items> & not significant"],
        }
    )
    auc = pd.DataFrame(
        {
            "model": ["features", "popularity only", "difference"],
            "auc": [0.71, 0.55, 0.16],
            "ci_low": [0.6, 0.44, 0.02],
            "ci_high": [0.8, 0.66, 0.3],
            "n": [80, 80, 80],
            "n_positive": [20, 20, 20],
        }
    )
    write_result_dir(
        out,
        {"items.csv": items, "tasks.csv": tasks, "correlations.csv": correlations, "auc.csv": auc, "loto.csv": loto},
        stage="correlate",
        record={"config": {}, "inputs": {}, "seed": 0},
        figures=lambda directory: draw_correlate_figures(items, tasks, loto, directory),
    )
    return out
