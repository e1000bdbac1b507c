"""The paper's popularity finding, tested on baselines: is a popular pair more often answered right before tuning?

arXiv 2510.19036 found that popularity predicts baseline accuracy. With zero-shot prompts the small models here
score 0 on every identifier task (they do not follow the answer format), so the test needs few-shot baselines
(``lexprobe evaluate --baseline --shots K``). :func:`popularity_baselines` reads the baseline outcomes of
evaluated runs and gives, per task, Spearman's rho of log popularity against baseline correctness (a percentile
bootstrap over the task's items) and, per model and over all, the rho *within tasks* (ranks taken inside each
task, so the contrast between tasks cannot pass for a popularity effect) beside the naive pooled rho, each with
an interval from a bootstrap over clusters. A cluster is a field pair (a task and its reverse share their items
and popularity) with every model's runs of it, so no two clusters share an item.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import PredictionError
from lexprobe.figures import plot_popularity_halves
from lexprobe.runs import atomic_path, make_manifest, write_manifest
from lexprobe.stats import cluster_bootstrap, pooled_spearman, spearman_ci, wilson_interval, within_spearman
from lexprobe.tasks import field_pair_label, run_ontology_name


@dataclasses.dataclass(frozen=True)
class PopularityResult:
    """Popularity against baseline correctness.

    Attributes
    ----------
    tasks : pandas.DataFrame
        One row per run: ``model``, ``label``, ``n``, baseline ``accuracy`` with a Wilson interval, accuracy in
        the less and the more popular half, ``rho`` with its item-bootstrap interval, ``p_value``, ``note``.
    summary : pandas.DataFrame
        Per model and ``"all"``: ``scope`` (within tasks / pooled), ``rho``, ``ci_low``, ``ci_high`` (cluster
        bootstrap over field pairs), ``n``, ``n_tasks``, ``n_clusters``, ``n_tasks_ranked`` (tasks with some
        right and some wrong answers: the only ones that carry a within-task rank correlation).
    items : pandas.DataFrame
        The items used: ``model``, ``label``, ``field_pair``, ``popularity``, ``log_popularity``, ``correct``.
    shots : int

    Examples
    --------
    >>> tasks = pd.DataFrame({"model": "smollm2-135m", "label": ["hgnc name-to-symbol", "go id-to-name"],
    ...                       "accuracy_less_popular": [0.02, 0.0], "accuracy_more_popular": [0.30, 0.01]})
    >>> result = PopularityResult(tasks, summary=pd.DataFrame(), items=pd.DataFrame(), shots=5)
    >>> bool((result.tasks["accuracy_more_popular"] > result.tasks["accuracy_less_popular"]).all())  # easier
    True
    """

    tasks: pd.DataFrame
    summary: pd.DataFrame
    items: pd.DataFrame
    shots: int


def _outcomes_path(run: Path, shots: int) -> Path:
    return run / f"shots-{shots}" / "outcomes.csv" if shots else run / "outcomes.csv"


def read_baselines(run_dirs: Sequence[str | os.PathLike[str]], *, shots: int) -> pd.DataFrame:
    """Every item's baseline outcome of each run (``shots`` as evaluated), with its task and model.

    Raises
    ------
    PredictionError
        A run without a train config or without a ``shots``-shot evaluation.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     read_baselines([run], shots=5)
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: ... is not a `lexprobe train` run directory (no readable train_config.json)
    """
    frames = []
    for run in map(Path, run_dirs):
        try:
            config = json.loads((run / "train_config.json").read_text(encoding="utf-8"))["config"]
        except (OSError, ValueError, KeyError, TypeError):
            raise PredictionError(
                f"{run} is not a `lexprobe train` run directory (no readable train_config.json)"
            ) from None
        path = _outcomes_path(run, shots)
        if not path.is_file():
            how = f"lexprobe evaluate {run} --baseline" + (f" --shots {shots}" if shots else "")
            raise PredictionError(f"{run} has no {shots}-shot baseline ({path} is missing); run `{how}`")
        outcomes = pd.read_csv(path)
        missing = [c for c in ("popularity", "baseline_correct") if c not in outcomes]
        if missing:
            raise PredictionError(f"{path} lacks the columns {missing}; evaluate the run again")
        ontology = run_ontology_name(config)
        frames.append(
            pd.DataFrame(
                {
                    "model": str(config["model"]),
                    "label": f"{ontology} {config['task']}",
                    "field_pair": field_pair_label(ontology, str(config["task"])),
                    "split": outcomes.get("split", pd.Series(["all"] * len(outcomes))).astype(str),
                    "id": outcomes["id"].astype(str),
                    "popularity": outcomes["popularity"].astype(float),
                    "correct": outcomes["baseline_correct"].astype(bool),
                }
            )
        )
    if not frames:
        raise PredictionError("give at least one evaluated run directory")
    items = pd.concat(frames, ignore_index=True)
    items["log_popularity"] = np.log1p(items["popularity"].clip(lower=0))
    return items


def popularity_baselines(
    run_dirs: Sequence[str | os.PathLike[str]], *, shots: int = 5, n_boot: int = 1000, seed: int = 0
) -> PopularityResult:
    """Spearman's rho of log popularity against baseline correctness, per task and within tasks.

    Parameters
    ----------
    run_dirs : sequence of path
        Runs evaluated with ``lexprobe evaluate --baseline --shots K`` (or ``shots=0``: their zero-shot
        evaluation).
    shots : int
    n_boot, seed
        Bootstrap resamples (items within a task; clusters of field pairs for the pooled values) and their seed.

    Raises
    ------
    PredictionError
        No runs, or a run without that evaluation.

    Examples
    --------
    >>> popularity_baselines([])
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: give at least one evaluated run directory
    """
    items = read_baselines(run_dirs, shots=shots)
    rows = []
    for (model, label), g in items.groupby(["model", "label"], sort=True):
        x, y = g["log_popularity"].to_numpy(), g["correct"].to_numpy(float)
        stat = spearman_ci(x, y, n_boot=n_boot, seed=seed)
        k, n = int(y.sum()), len(y)
        low, high = wilson_interval(k, n)
        median = np.median(x)
        rows.append(
            {
                "model": model,
                "label": label,
                "field_pair": g["field_pair"].iloc[0],
                "n": n,
                "n_correct": k,
                "accuracy": k / n,
                "accuracy_ci_low": low,
                "accuracy_ci_high": high,
                "accuracy_less_popular": float(y[x <= median].mean()) if (x <= median).any() else np.nan,
                "accuracy_more_popular": float(y[x > median].mean()) if (x > median).any() else np.nan,
                "rho": stat["rho"],
                "rho_ci_low": stat["ci_low"],
                "rho_ci_high": stat["ci_high"],
                "p_value": stat["p_value"],
                "note": stat["note"],
            }
        )
    tasks = pd.DataFrame(rows)
    summary = []
    for scope_model in [*sorted(items["model"].unique()), "all"]:
        part = items if scope_model == "all" else items[items["model"] == scope_model]
        summary += _pooled_rows(part, scope_model, n_boot=n_boot, seed=seed)
    return PopularityResult(tasks=tasks, summary=pd.DataFrame(summary), items=items, shots=shots)


def _pooled_rows(items: pd.DataFrame, model: str, *, n_boot: int, seed: int) -> list[dict[str, Any]]:
    units = {
        key: (g["log_popularity"].to_numpy(), g["correct"].to_numpy(float))
        for key, g in items.groupby(["field_pair", "model", "label"], sort=True)
    }
    clusters: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for (pair, _, _), part in units.items():
        clusters.setdefault(pair, []).append(part)
    grouped = list(clusters.values())

    def within(drawn: list[list[tuple[np.ndarray, np.ndarray]]]) -> float:
        return within_spearman([p for cluster in drawn for p in cluster])

    def pooled(drawn: list[list[tuple[np.ndarray, np.ndarray]]]) -> float:
        parts = [p for cluster in drawn for p in cluster]
        return pooled_spearman(np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]))

    ranked = sum(1 for _, y in units.values() if np.ptp(y) > 0)
    ranked_clusters = sum(1 for cluster in grouped if any(np.ptp(y) > 0 for _, y in cluster))
    rows = []
    for scope, stat in (("within tasks", within), ("pooled over tasks", pooled)):
        value = stat(grouped)
        # within tasks, only clusters with both right and wrong answers carry the statistic: resampling one such
        # cluster gives its own value every time, which is no interval
        enough = ranked_clusters >= 2 if scope == "within tasks" else len(grouped) >= 2
        low, high = cluster_bootstrap(stat, grouped, n_boot=n_boot, seed=seed) if enough else (np.nan,) * 2
        note = "" if np.isfinite(value) else "no task has both right and wrong answers"
        if np.isfinite(value) and not enough:
            note = f"{ranked_clusters} field pair(s) with both right and wrong answers: no cluster interval"
        rows.append(
            {
                "model": model,
                "scope": scope,
                "rho": value,
                "ci_low": low,
                "ci_high": high,
                "n": len(items),
                "n_tasks": len(units),
                "n_tasks_ranked": ranked,
                "n_clusters": len(grouped),
                "n_clusters_ranked": ranked_clusters,
                "interval": "percentile bootstrap over field pairs (a task, its reverse, every model)",
                "note": note,
            }
        )
    return rows


def write_popularity(result: PopularityResult, out: str | os.PathLike[str], *, runs: Sequence[str]) -> Path:
    """Write ``popularity_tasks.csv``, ``popularity_summary.csv``, ``popularity_items.csv``, a figure of
    accuracy in the less and more popular half of each task, and ``manifest.json`` (stage ``popularity``).

    Examples
    --------
    >>> import tempfile
    >>> tasks = pd.DataFrame({"model": "smollm2-135m", "label": ["hgnc name-to-symbol", "go id-to-name"],
    ...                       "accuracy_less_popular": [0.02, 0.0], "accuracy_more_popular": [0.30, 0.01]})
    >>> result = PopularityResult(tasks, summary=pd.DataFrame(), items=pd.DataFrame(), shots=5)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_popularity(result, tmp, runs=["runs/hgnc-name-to-symbol", "runs/go-id-to-name"])
    ...     print(sorted(p.name for p in Path(tmp).iterdir()))
    ['manifest.json', 'popularity_halves.png', 'popularity_halves.svg', 'popularity_items.csv',
     'popularity_summary.csv', 'popularity_tasks.csv']
    """
    out = Path(out)
    for name, frame in (
        ("popularity_tasks.csv", result.tasks),
        ("popularity_summary.csv", result.summary),
        ("popularity_items.csv", result.items),
    ):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    _plot_halves(result, out)
    write_manifest(
        out,
        make_manifest(
            stage="popularity",
            config={"shots": result.shots, "popularity": "log(1 + count), the ontology's default popularity column"},
            inputs={"runs": list(runs)},
            outputs={"popularity_tasks.csv": True, "popularity_summary.csv": True, "popularity_items.csv": True},
            seed=0,
        ),
    )
    return out


def _plot_halves(result: PopularityResult, out: Path) -> None:
    plot_popularity_halves(result.tasks, out, shots=result.shots)
