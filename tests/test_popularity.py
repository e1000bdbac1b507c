"""The popularity test on baselines: per task, within tasks, and pooled, with cluster intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lexprobe.exceptions import PredictionError
from lexprobe.predict import popularity_baselines, write_popularity


def _run(root: Path, ontology: str, task: str, model: str, popularity: np.ndarray, correct: np.ndarray) -> Path:
    run = root / f"{model}-{ontology}-{task}"
    (run / "shots-5").mkdir(parents=True)
    config = {"ontology": ontology, "task": task, "model": model}
    (run / "train_config.json").write_text(json.dumps({"config": config}))
    frame = pd.DataFrame(
        {
            "split": "train",
            "id": [f"X:{i}" for i in range(len(popularity))],
            "popularity": popularity,
            "baseline_correct": correct,
        }
    )
    frame.to_csv(run / "shots-5" / "outcomes.csv", index=False)
    return run


def test_a_difference_between_tasks_is_not_a_popularity_effect_within_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # task A: popular items, all answered; task B: rare items, none answered. Pooled, popularity "predicts"
    # correctness perfectly; within each task there is nothing to rank
    a = _run(tmp_path, "hgnc", "name-to-symbol", "m", rng.uniform(100, 1000, 50), np.ones(50, bool))
    b = _run(tmp_path, "hpo", "name-to-id", "m", rng.uniform(0, 10, 50), np.zeros(50, bool))
    result = popularity_baselines([a, b], shots=5, n_boot=200)
    summary = result.summary.set_index(["model", "scope"])
    assert summary.loc[("m", "pooled over tasks"), "rho"] > 0.8
    assert np.isnan(summary.loc[("m", "within tasks"), "rho"])
    assert summary.loc[("m", "within tasks"), "n_tasks_ranked"] == 0
    assert (result.tasks["note"] == "y constant").all()


def test_a_popularity_effect_inside_tasks_is_found_with_a_cluster_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    runs = []
    tasks = [("hgnc", "name-to-symbol"), ("hgnc", "symbol-to-name"), ("hpo", "name-to-id"), ("go", "name-to-id")]
    for ontology, task in tasks:
        pop = rng.lognormal(3, 1.5, 80)
        p = 1 / (1 + np.exp(-(np.log1p(pop) - 3)))  # more popular, more often right
        runs.append(_run(tmp_path, ontology, task, "m", pop, rng.random(80) < p))
    result = popularity_baselines(runs, shots=5, n_boot=300, seed=0)
    within = result.summary.set_index(["model", "scope"]).loc[("m", "within tasks")]
    assert within["rho"] > 0.2 and within["ci_low"] > 0 and within["n_clusters_ranked"] == 3
    # a task and its reverse share their items: they are one cluster, so 4 tasks make 3 clusters
    assert within["n_clusters"] == 3 and within["n_tasks"] == 4
    assert (result.tasks["accuracy_more_popular"] > result.tasks["accuracy_less_popular"]).mean() >= 0.75
    again = popularity_baselines(runs, shots=5, n_boot=300, seed=0)
    pd.testing.assert_frame_equal(result.summary, again.summary)
    out = write_popularity(result, tmp_path / "out", runs=[str(r) for r in runs])
    assert json.loads((out / "manifest.json").read_text())["stage"] == "popularity"
    assert len(pd.read_csv(out / "popularity_tasks.csv")) == 4 and (out / "popularity_halves.png").is_file()


def test_a_run_without_that_baseline_says_how_to_make_it(tmp_path: Path) -> None:
    run = _run(tmp_path, "hpo", "name-to-id", "m", np.arange(10.0), np.zeros(10, bool))
    with pytest.raises(PredictionError, match=r"no 3-shot baseline .* --baseline --shots 3"):
        popularity_baselines([run], shots=3)
    with pytest.raises(PredictionError, match="not a `lexprobe train` run directory"):
        popularity_baselines([tmp_path / "nothing"], shots=5)


def test_a_task_with_nothing_to_rank_does_not_dilute_the_within_task_correlation() -> None:
    from lexprobe.stats import within_spearman

    x = np.arange(10.0)
    ranked = (x, (x > 4).astype(float))
    alone = within_spearman([ranked])
    # a task where every answer is wrong has no ranking of correctness: adding it must leave the value alone
    assert within_spearman([ranked, (np.arange(50.0), np.zeros(50))]) == pytest.approx(alone)
    assert np.isnan(within_spearman([(np.ones(5), np.arange(5.0))]))  # a constant side alone: nothing to rank


def test_one_field_pair_with_a_ranking_gets_no_cluster_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pop = rng.lognormal(3, 1.5, 60)
    ranked = _run(tmp_path, "hgnc", "name-to-symbol", "m", pop, rng.random(60) < 0.3)
    flat = _run(tmp_path, "hpo", "name-to-id", "m", rng.lognormal(3, 1, 60), np.zeros(60, bool))
    within = popularity_baselines([ranked, flat], n_boot=100).summary.set_index("scope").loc["within tasks"].iloc[0]
    assert np.isfinite(within["rho"]) and np.isnan(within["ci_low"]) and np.isnan(within["ci_high"])
    assert "no cluster interval" in within["note"]
