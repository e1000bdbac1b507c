"""Correlation and the predictor on synthetic outcomes with a planted relation and with none; calibration I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lexprobe.exceptions import PredictionError
from lexprobe.predict import (
    BASELINES,
    MEASURED_FEATURES,
    MIN_CLASS_PAIRS,
    PREDICTOR_RULE,
    VERDICTS,
    auc_comparison,
    correlation_table,
    family_key,
    field_pair,
    fit_predictor,
    fitted_cut,
    load_calibration,
    spearman_ci,
    task_identity,
    template_share,
    youden_threshold,
)

ROOT = Path(__file__).resolve().parents[1]


def synthetic(
    n_tasks: int = 8,
    n: int = 150,
    *,
    planted: bool = True,
    seed: int = 0,
    mirrored: bool = False,
    levels: np.ndarray | None = None,
    linear: bool = False,
):
    """Items and tasks as `lexprobe correlate` writes them.

    With ``planted``, a task's alignment and lexicalization set how likely a withheld pair is gained (and
    popularity how likely a train pair is); without, every outcome is a coin flip at a fixed rate. Each task
    is its own field pair (``onto<t> a-to-b``); with ``mirrored`` each also has its reverse (``b-to-a``) with the
    same level, as hgnc name-to-symbol and symbol-to-name. With ``linear``, a withheld pair is gained with
    probability 0.05 + 0.5 x the task's level (the truth is a straight line in the task-mean features).
    """
    rng = np.random.default_rng(seed)
    frames, rows = [], []
    for t in range(n_tasks):
        level = levels[t] if levels is not None else t / (n_tasks - 1)  # task-level lexicalization / alignment
        for task in ("a-to-b", "b-to-a") if mirrored else ("a-to-b",):
            label = f"onto{t} {task}" if mirrored else f"onto{t} task"
            items = []
            for split in ("train", "withheld"):
                align = np.clip(rng.normal(0.05 + 0.3 * level, 0.05, n), 0, 1)
                lex = np.clip(rng.normal(0.1 + 0.5 * level, 0.05, n), 0, 1)
                logpop = rng.exponential(1.0, n)
                tokens = rng.integers(2, 10, n)
                if planted:
                    if split == "withheld" and linear:
                        p = np.full(n, 0.05 + 0.5 * level)
                        logit = np.log(p / (1 - p))
                    elif split == "withheld":
                        logit = -6 + 12 * align + 6 * lex
                    else:
                        logit = -3 + 1.5 * logpop + 4 * level
                else:
                    logit = np.full(n, -1.0)
                gained = rng.random(n) < 1 / (1 + np.exp(-logit))
                items.append(
                    pd.DataFrame(
                        {
                            "ontology": f"onto{t}",
                            "task": task if mirrored else "task",
                            "label": label,
                            "model": "m",
                            "split": split,
                            "target": [f"X:{i:05d}" for i in range(n)],
                            "alignment": align,
                            "lexicalization": lex,
                            "log_popularity": logpop,
                            "target_tokens": tokens,
                            "baseline_correct": False,
                            "tuned_correct": gained,
                            "gained": gained,
                            "lost": False,
                            "gain": gained.astype(int),
                        }
                    )
                )
            part = pd.concat(items, ignore_index=True)
            frames.append(part)
            row = {"ontology": f"onto{t}", "task": part["task"].iloc[0], "label": label, "model": "m"}
            row |= {"n_train": n, "n_withheld": n}
            for split, name in (("train", "memorization"), ("withheld", "generalization")):
                g = part[part["split"] == split]["gain"].to_numpy()
                boots = [g[rng.integers(0, n, n)].mean() for _ in range(200)]
                row |= {
                    f"{name}_gain": g.mean(),
                    f"{name}_gain_ci_low": np.quantile(boots, 0.025),
                    f"{name}_gain_ci_high": np.quantile(boots, 0.975),
                }
            # the task's alignment z against its null, as correlate's tasks.csv records it: it follows the level
            row["alignment_z"] = 2.0 + 30.0 * level + rng.normal(0, 1.0)
            row["memorized"] = row["memorization_gain_ci_low"] > 0.05
            row["generalized"] = row["generalization_gain_ci_low"] > 0.05
            rows.append(row)
    return pd.concat(frames, ignore_index=True), pd.DataFrame(rows)


# --- correlation ---------------------------------------------------------------------------------------------


def test_spearman_recovers_a_planted_relation_and_covers_zero_without_one() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    related = spearman_ci(x, x + rng.normal(scale=1.0, size=400), seed=0)
    assert 0.5 < related["rho"] < 0.85 and related["ci_low"] > 0.4 and related["p_value"] < 1e-6
    assert related["ci_low"] <= related["rho"] <= related["ci_high"]
    unrelated = spearman_ci(x, rng.normal(size=400), seed=0)
    assert unrelated["ci_low"] < 0 < unrelated["ci_high"]
    assert spearman_ci(x, x, seed=3) == spearman_ci(x, x, seed=3)  # seeded


def test_spearman_says_when_there_is_nothing_to_rank() -> None:
    out = spearman_ci(np.arange(10.0), np.zeros(10))
    assert np.isnan(out["rho"]) and out["note"] == "y constant"
    assert spearman_ci(np.arange(2.0), np.arange(2.0))["note"] == "fewer than 3 items"


def test_auc_beats_popularity_only_when_alignment_drives_gains() -> None:
    items, _ = synthetic()
    withheld = items[items["split"] == "withheld"]
    auc = auc_comparison(withheld, n_boot=200, seed=0).set_index("model")
    assert auc.loc["features", "auc"] > 0.8
    assert 0.4 < auc.loc["popularity only", "auc"] < 0.6  # popularity plays no part in withheld gains here
    assert auc.loc["difference", "ci_low"] > 0.15


def test_auc_is_near_half_when_nothing_is_planted() -> None:
    items, _ = synthetic(planted=False)
    auc = auc_comparison(items[items["split"] == "withheld"], n_boot=200, seed=0).set_index("model")
    for model in ("features", "popularity only"):
        assert auc.loc[model, "ci_low"] < 0.5 < auc.loc[model, "ci_high"]
    assert auc.loc["difference", "ci_low"] < 0 < auc.loc["difference", "ci_high"]


def test_auc_is_not_computed_without_enough_of_each_class() -> None:
    items, _ = synthetic(n_tasks=2, n=20, planted=False)
    items = items.assign(gained=False)
    auc = auc_comparison(items, n_boot=50)
    assert auc["auc"].isna().all() and "too few" in auc["note"].iloc[0]


# --- thresholds and the predictor -----------------------------------------------------------------------------


def test_youden_threshold_separates_and_names_the_degenerate_cases() -> None:
    cut, note = youden_threshold(np.array([0.01, 0.02, 0.2, 0.3]), np.array([False, False, True, True]))
    assert 0.02 < cut < 0.2 and "J = 1.00" in note
    assert youden_threshold(np.array([0.1, 0.2]), np.array([False, False]))[0] is None
    cut, note = youden_threshold(np.array([0.1, 0.1, 0.1]), np.array([True, False, False]))
    assert cut is None and "all equal" in note  # a constant prediction must not make every task "reach" it
    cut, note = youden_threshold(np.array([0.1, 0.2]), np.array([True, True]))
    assert cut == 0.1 and "every" in note


def test_a_cut_needs_field_pairs_on_both_sides_else_the_majority_side_is_kept() -> None:
    """Calibration v2 had 40 memorized units and 1 that was not: Youden's cut then sits wherever that one
    unit's prediction falls. With fewer than MIN_CLASS_PAIRS field pairs on a side no cut is fitted."""
    scores = np.array([0.05, 0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    reached = np.array([False, True, True, True, True, True, True, True])
    groups = np.array([f"g{i}" for i in range(8)])
    # one pair did not reach it: most did, so it is predicted reached (the predictor's gain floor decides)
    cut, note = fitted_cut(scores, reached, groups, always=0.0)
    assert cut == 0.0 and "1 field pair(s) did not reach it" in note
    assert fitted_cut(scores, reached, groups, always=-np.inf)[0] == -np.inf
    # two field pairs reached it: too few to fit a cut, and the majority did not: never predicted
    cut, note = fitted_cut(scores, np.arange(8) >= 6, groups, always=0.0)
    assert cut is None and "2 field pair(s) reached it" in note
    # units of one field pair count once: three units of one pair are still one pair
    cut, _ = fitted_cut(scores, np.arange(8) >= 5, np.array(["a"] * 5 + ["b"] * 3), always=0.0)
    assert cut is None
    # enough pairs on both sides: Youden's cut between them
    balanced = np.arange(8) >= 4
    cut, note = fitted_cut(scores, balanced, groups, always=0.0)
    assert MIN_CLASS_PAIRS <= 4 and 0.4 < cut < 0.5 and "Youden" in note
    # NaN predictions (a fold with too few units) are left out before counting
    cut, _ = fitted_cut(np.r_[scores, np.nan], np.r_[balanced, False], np.append(groups, "g8"), always=0.0)
    assert 0.4 < cut < 0.5


def field_pairs(holdout: pd.DataFrame) -> pd.DataFrame:
    """The hold-out by field pair, of the three schemes."""
    return holdout[holdout["held_out_by"] == "field pair"]


def test_a_lone_unmemorized_pair_does_not_set_the_memorization_verdict() -> None:
    """Every unit but one memorized: the other units' held-out verdicts are not "unlikely to improve" because
    of the one exception; a measured verdict needs the gain a 150-pair interval can tell from 0."""
    from lexprobe.predict import detection_gain

    items, tasks = synthetic(n_tasks=8, n=150)
    tasks = tasks.assign(memorized=tasks.index != 0, memorization_gain=np.where(tasks.index != 0, 0.6, 0.0))
    predictor = fit_predictor(items, tasks)
    assert (
        predictor.thresholds["train"] == detection_gain(150) and "150 train pairs" in predictor.threshold_notes["train"]
    )
    h = field_pairs(predictor.holdout)
    others = h[h["label"] != tasks["label"].iloc[0]]
    assert (others["verdict"] != VERDICTS[2]).all()


def test_field_pairs_and_task_identity() -> None:
    assert field_pair("name-to-symbol") == field_pair("symbol-to-name") == "name/symbol"
    assert task_identity("hgnc", "name-to-symbol") == task_identity("hgnc", "symbol-to-name") == "hgnc name/symbol"
    assert task_identity("hgnc", "name-to-id") != task_identity("hgnc", "name-to-symbol")


def test_a_path_given_and_a_built_in_ontology_give_the_same_task_identity() -> None:
    """The calibration's labels and `predict` key a task by the ontology as loaded, never by a file name."""
    from lexprobe.ontology import load_ontology

    builtin = load_ontology("hgnc")
    by_path = load_ontology(str(ROOT / "data" / "hgnc.terms.tsv.gz"))
    assert builtin.checksum == by_path.checksum
    assert task_identity(builtin.name, "name-to-symbol") == task_identity(by_path.name, "symbol-to-name")
    # `predict` leaves out the same calibration units for either: the pair on both models, nothing else
    from lexprobe.predict import shipped_calibration_dir
    from lexprobe.predict._predict import leave_out_pair

    items, tasks, _ = load_calibration([shipped_calibration_dir()])
    pair = (tasks["ontology"] == "hgnc") & tasks["task"].isin(["name-to-symbol", "symbol-to-name"])  # every budget
    assert pair.sum() >= 2 and set(tasks.loc[pair, "model"]) == set(tasks["model"])  # on every model
    for ontology in (builtin, by_path):
        rest_items, rest_tasks, left_out, identity = leave_out_pair(items, tasks, ontology, "name-to-symbol")
        assert identity == "hgnc name/symbol" and len(left_out) == pair.sum()
        assert len(rest_tasks) == len(tasks) - pair.sum()
        assert not rest_items["label"].isin(["hgnc name-to-symbol", "hgnc symbol-to-name"]).any()


def test_template_share_counts_the_target_family_among_train_targets() -> None:
    items = pd.DataFrame(
        {
            "label": "hgnc symbol",
            "model": "m",
            "split": ["train", "train", "train", "train", "withheld", "withheld"],
            "target": ["SLC25A1", "SLC2A4", "ZNF10", "ACADL", "SLC9A1", "BRCA1"],
        }
    )
    share = template_share(items)
    assert share[4] == pytest.approx(2 / 4)  # SLC9A1: two SLC of four train targets
    assert share[5] == 0  # BRCA: no family among train targets
    assert share[0] == pytest.approx(1 / 3)  # a train item does not count itself
    ids = items.assign(target=[f"HGNC:{i}" for i in range(6)])
    assert (template_share(ids) == 0).all()  # a namespace prefix is not a template
    assert family_key("zinc finger protein 12") == "zinc finger protein"


def test_seen_target_share_counts_the_item_s_own_answer_among_train_targets() -> None:
    from lexprobe.predict import seen_target_share

    items = pd.DataFrame(
        {
            "label": ["go name-to-namespace"] * 5 + ["hgnc name-to-symbol"] * 3,
            "model": "m",
            "split": ["train", "train", "train", "withheld", "withheld", "train", "train", "withheld"],
            "target": ["biological_process"] * 2
            + ["cellular_component", "Biological_Process", "molecular_function"]
            + ["BRCA1", "TP53", "BRCA2"],
        }
    )
    share = seen_target_share(items)
    assert share[3] == pytest.approx(2 / 3)  # its answer is two of the three train targets (case aside)
    assert share[4] == 0  # an answer training never showed
    assert share[0] == pytest.approx(1 / 2) and share[2] == 0  # a train item does not count itself
    assert (share[5:] == 0).all()  # unique targets: nothing seen; units are counted apart
    # unlike the template share, a target most items hold counts in full (the repeated answer is the point)
    assert template_share(items)[3] == 0


def test_a_mirror_task_is_never_in_the_fit_of_its_pair() -> None:
    """A task and its reverse (same items, same features) are held out together: the held-out prediction of
    onto0 a-to-b is the same whether its mirror onto0 b-to-a is in the table, absent, or has another outcome."""
    items, tasks = synthetic(n_tasks=5, n=60, mirrored=True)
    full = fit_predictor(items, tasks)
    assert full.holdout["group"].nunique() == 5 and len(field_pairs(full.holdout)) == 10
    mirror = tasks["label"] == "onto0 b-to-a"
    alone = fit_predictor(items[items["label"] != "onto0 b-to-a"], tasks[~mirror])
    changed = fit_predictor(
        items,
        tasks.assign(
            generalization_gain=np.where(mirror, 0.9, tasks["generalization_gain"]),
            generalized=np.where(mirror, True, tasks["generalized"]),
        ),
    )
    cols = ["predicted_generalization_gain", "predicted_memorization_gain", "verdict", "stated_verdict"]
    pick = lambda p: field_pairs(p.holdout)[p.holdout["label"] == "onto0 a-to-b"][cols].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(pick(full), pick(alone))
    pd.testing.assert_frame_equal(pick(full), pick(changed))
    # ...while the changed mirror does reach the other pairs' fits
    other = lambda p: field_pairs(p.holdout)[p.holdout["label"] == "onto1 a-to-b"][cols[0]].iloc[0]  # noqa: E731
    assert other(full) != other(changed)


def test_gains_that_follow_a_feature_across_field_pairs_beat_every_baseline() -> None:
    """Truth known: a withheld pair's chance of being gained rises with its alignment and lexicalization,
    across field pairs. Held out by field pair, the predictor's gains beat every baseline's."""
    for seed in (0, 1, 2):
        levels = np.random.default_rng(100 + seed).uniform(0, 1, 10)
        items, _ = synthetic(n_tasks=10, n=200, mirrored=True, levels=levels, seed=seed, linear=True)
        predictor = fit_predictor(items)
        b = predictor.baselines[predictor.baselines["held_out_by"] == "field pair"].set_index("rule")
        own = b.loc[PREDICTOR_RULE]
        assert set(BASELINES) <= set(b.index)
        assert list(predictor.baselines.columns[:6]) == [
            "held_out_by",
            "rule",
            "verdicts_right",
            "n_units",
            "brier",
            "log_loss",
        ]
        others = b.drop(index=PREDICTOR_RULE)
        assert (own["gain_mae_points"] < others["gain_mae_points"]).all(), (seed, b)
        assert own["gain_error_over_kind_mean"] < 1 and own["gain_spearman"] > 0.8
        # gains at the scale measured: the held-out predictions span the measured range
        h = field_pairs(predictor.holdout)
        spread = np.ptp(h["predicted_generalization_gain"]) / np.ptp(h["generalization_gain"])
        assert 0.7 < spread < 1.3


def test_noise_features_claim_no_skill_and_their_intervals_cover() -> None:
    covered, ratios = [], []
    for seed in range(4):
        items, _ = synthetic(n_tasks=8, n=60, planted=False, mirrored=True, seed=seed)
        predictor = fit_predictor(items)
        b = predictor.baselines[predictor.baselines["held_out_by"] == "field pair"].set_index("rule")
        ratios.append(b.loc[PREDICTOR_RULE, "gain_mae_points"] / b.drop(index=PREDICTOR_RULE)["gain_mae_points"].min())
        h = field_pairs(predictor.holdout)
        covered += list(
            (h["predicted_generalization_gain_ci_low"] <= h["generalization_gain"])
            & (h["generalization_gain"] <= h["predicted_generalization_gain_ci_high"])
        )
    assert np.mean(ratios) > 0.95 and min(ratios) > 0.85  # no skill over the best baseline, beyond chance
    assert np.mean(covered) >= 0.8  # 90% intervals


def test_verdicts_come_with_probabilities_and_commit_only_when_sure() -> None:
    """Each verdict has a probability (the three sum to 1); the stated verdict is the likeliest when it
    reaches 0.8 and names the two likeliest otherwise; other calibration outcomes give other probabilities."""
    from lexprobe.predict import COMMIT

    items, tasks = synthetic(n_tasks=8, n=150)
    predictor = fit_predictor(items, tasks)
    units = predictor.tasks
    seen = []
    for _, unit in units.iterrows():
        out = predictor.predict_unit(unit)
        p = np.array([out[f"p: {v}"] for v in VERDICTS])
        assert p.sum() == pytest.approx(1.0) and (p > 0).all()  # smoothed: never certain on a few cases
        assert out["verdict"] == VERDICTS[int(p.argmax())] and out["probability"] == pytest.approx(p.max())
        if p.max() >= COMMIT:
            assert out["committed"] and out["stated_verdict"] == out["verdict"]
        else:
            assert not out["committed"] and out["stated_verdict"].startswith("uncertain: ")
        low, high = out["predicted_generalization_gain_ci_low"], out["predicted_generalization_gain_ci_high"]
        assert low <= out["predicted_generalization_gain"] <= high
        seen.append(p[0])
    # the likelier a task is to generalize, the higher its alignment (the planted relation)
    from scipy.stats import spearmanr

    assert spearmanr(seen, units["alignment_z"].to_numpy()).statistic > 0.7
    shifted = tasks.assign(generalized=tasks.index >= 6, generalization_gain=np.where(tasks.index >= 6, 0.5, 0.0))
    other = fit_predictor(items, shifted, loto=False)
    assert any(
        other.predict_unit(u)["p: will generalize"] != predictor.predict_unit(u)["p: will generalize"]
        for _, u in units.iterrows()
    )
    # the reasons name the feature that pushed within the kind: the alignment, upwards, for the best task
    out = predictor.predict_unit(units.iloc[-1])
    assert out["reasons"][0]["feature"] == "alignment_z" and out["reasons"][0]["gain_points"] > 0


def test_predictor_is_reproducible_and_warns_when_calibration_is_thin() -> None:
    items, tasks = synthetic(n_tasks=4)
    a = fit_predictor(items, tasks, seed=3)
    b = fit_predictor(items, tasks, seed=3)
    pd.testing.assert_frame_equal(a.loto, b.loto)
    assert any("thin calibration: 4 field pairs" in w for w in a.warnings)
    assert any("fewer than 3" in w for w in a.warnings)
    assert any("one model" in w for w in a.warnings)
    with pytest.raises(PredictionError, match="at least 2 tasks"):
        fit_predictor(items[items["label"] == tasks["label"][0]], tasks.head(1))
    with pytest.raises(PredictionError, match="lacks the column"):
        fit_predictor(items.drop(columns="alignment"), tasks)


def test_grouped_auc_does_not_reward_telling_tasks_apart() -> None:
    """A feature that only names the task (constant within it, its value tracking the task's gain rate) scores
    high when items of one task sit in both training and test folds; held out by field pair it cannot."""
    rng = np.random.default_rng(0)
    frames = []
    for t in range(8):
        rate = 0.05 + 0.1 * t
        gained = rng.random(100) < rate
        frames.append(
            pd.DataFrame(
                {
                    "label": f"onto{t} a-to-b",
                    "model": "m",
                    "split": "withheld",
                    "target": [f"X:{i}" for i in range(100)],
                    "alignment": rate + rng.normal(0, 1e-6, 100),
                    "lexicalization": rng.random(100),
                    "log_popularity": rng.random(100),
                    "target_tokens": rng.integers(1, 5, 100),
                    "gained": gained,
                }
            )
        )
    items = pd.concat(frames, ignore_index=True)
    auc = auc_comparison(items, n_boot=100).set_index("model")
    assert auc.loc["alignment only", "cv"] == "leave one field pair out"
    assert abs(auc.loc["alignment only", "within_auc"] - 0.5) < 0.1  # it ranks nothing inside a task
    assert abs(auc.loc["alignment itself", "within_auc"] - 0.5) < 0.1
    # where alignment drives gains inside tasks, its own value ranks gained items within them
    planted, _ = synthetic(n_tasks=6, n=100)
    within = auc_comparison(planted[planted["split"] == "withheld"], n_boot=100).set_index("model")
    assert within.loc["alignment itself", "within_ci_low"] > 0.55
    assert within.loc["features", "within_auc"] > 0.6
    assert auc.loc["popularity only", "ci_low"] < 0.5 < auc.loc["popularity only", "ci_high"]


def test_correlations_are_pooled_and_within_tasks_with_unit_intervals() -> None:
    items, _ = synthetic(n_tasks=6, n=80)
    table = correlation_table(items, n_boot=100)
    scopes = set(table["scope"])
    assert {"all", "within tasks"} <= scopes
    within = table[(table["scope"] == "within tasks") & (table["relation"].str.startswith("alignment vs gen"))]
    assert within["interval"].iloc[0] == "cluster bootstrap over units"
    assert within["ci_low"].iloc[0] <= within["rho"].iloc[0] <= within["ci_high"].iloc[0]
    pooled = table[(table["scope"] == "all") & (table["relation"].str.startswith("alignment vs gen"))].iloc[0]
    assert pooled["rho"] > within["rho"].iloc[0]  # the between-task contrast adds to the pooled rho


def test_the_whole_evaluation_runs_from_an_items_table(tmp_path) -> None:
    """`lexprobe correlate --items`: a user's own items table, no tasks.csv, field pairs from a column."""
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    items, _ = synthetic(n_tasks=4, n=60, mirrored=True)
    items = items.drop(columns=["ontology", "task"]).assign(field_pair=items["label"].str[:5] + "pair")
    items.to_csv(tmp_path / "mine.csv.gz", index=False)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app, ["correlate", "--items", str(tmp_path / "mine.csv.gz"), "--out", str(out), "--bootstrap", "50", "-q"]
    )
    assert result.exit_code == 0, result.output
    for name in ("holdout.csv", "baselines.csv", "correlations.csv", "auc.csv", "summary.md"):
        assert (out / name).is_file(), name
    holdout = field_pairs(pd.read_csv(out / "holdout.csv"))
    assert len(holdout) == 8 and holdout["group"].nunique() == 4
    assert "predictor beside the baselines" in (out / "summary.md").read_text()
    both = CliRunner().invoke(app, ["correlate", "x", "--items", "y", "--out", str(tmp_path / "z")])
    assert both.exit_code == 2


def test_correlate_items_with_a_tasks_table_rewrites_the_shipped_calibration(tmp_path) -> None:
    """The shipped set is re-evaluated from its own files by one command, giving its baselines again and a
    tasks.csv with the same columns (no join key left behind)."""
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    from lexprobe.predict import shipped_calibration_dir

    shipped = shipped_calibration_dir() / "study-v2.2"
    out = tmp_path / "again"
    result = CliRunner().invoke(
        app,
        [
            "correlate",
            "--items",
            str(shipped / "items.csv.gz"),
            "--tasks",
            str(shipped / "tasks.csv"),
            "--out",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out / "tasks.csv")
    assert "key_0" not in written and list(written.columns) == list(pd.read_csv(shipped / "tasks.csv").columns)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "baselines.csv"), pd.read_csv(shipped / "baselines.csv"), check_exact=False, rtol=1e-5
    )


# --- calibration sets on disk -------------------------------------------------------------------------------


def test_calibration_round_trips_and_the_last_given_wins(tmp_path) -> None:
    items, tasks = synthetic(n_tasks=3, n=20)
    first, second = tmp_path / "a", tmp_path / "nested" / "b"
    for d, it, ta in ((first, items, tasks), (second, items.assign(alignment=0.5), tasks.head(1))):
        d.mkdir(parents=True)
        it.to_csv(d / "items.csv", index=False)
        ta.to_csv(d / "tasks.csv", index=False)
    got_items, got_tasks, manifests = load_calibration([first, tmp_path / "nested"])
    assert sorted(got_tasks["label"]) == sorted(tasks["label"])
    replaced = got_items[got_items["label"] == tasks["label"][0]]
    assert len(replaced) == 40 and (replaced["alignment"] == 0.5).all()
    assert len(manifests) == 2 and set(MEASURED_FEATURES) <= set(got_items.columns)


def two_models(n_tasks: int = 6, n: int = 60):
    """The same tasks tuned on two models (the second's outcomes drawn afresh)."""
    a_items, a_tasks = synthetic(n_tasks=n_tasks, n=n, seed=0)
    b_items, b_tasks = synthetic(n_tasks=n_tasks, n=n, seed=1)
    return a_items, a_tasks, b_items.assign(model="m2"), b_tasks.assign(model="m2")


def test_the_same_task_on_two_models_is_two_units_and_loto_leaves_out_both(tmp_path) -> None:
    a_items, a_tasks, b_items, b_tasks = two_models()
    for d, it, ta in ((tmp_path / "a", a_items, a_tasks), (tmp_path / "b", b_items, b_tasks)):
        d.mkdir()
        it.to_csv(d / "items.csv", index=False)
        ta.to_csv(d / "tasks.csv", index=False)
    items, tasks, _ = load_calibration([tmp_path])
    assert len(tasks) == 12 and tasks.groupby("label")["model"].nunique().eq(2).all()
    assert items.groupby(["label", "model"]).size().eq(120).all()  # each model's items, not the other's
    predictor = fit_predictor(items, tasks, n_boot=10, seed=0)
    assert len(predictor.loto) == 24 and not any("one model" in w for w in predictor.warnings)
    assert predictor.loto.groupby("label")["model"].nunique().eq(2).all()
    # the other model's run of the held-out task is not in the fit: dropping it changes nothing
    held = tasks["label"][2]
    alone = fit_predictor(
        items[(items["label"] != held) | (items["model"] == "m")],
        tasks[(tasks["label"] != held) | (tasks["model"] == "m")],
        n_boot=10,
        seed=0,
    )
    pick = lambda loto: loto[(loto["label"] == held) & (loto["model"] == "m")].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(pick(predictor.loto), pick(alone.loto))


def test_two_models_correlated_apart_are_pooled_by_repeating_items_and_tasks(tmp_path) -> None:
    """Two studies' correlate outputs (one model each) make one calibration: `--items A --items B --tasks A
    --tasks B` evaluates every field pair held out on both models, as one correlate over all runs would."""
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    a_items, a_tasks, b_items, b_tasks = two_models()
    for name, it, ta in (("a", a_items, a_tasks), ("b", b_items, b_tasks)):
        it.to_csv(tmp_path / f"{name}-items.csv", index=False)
        ta.to_csv(tmp_path / f"{name}-tasks.csv", index=False)
    out = tmp_path / "both"
    args = ["correlate", "--items", str(tmp_path / "a-items.csv"), "--items", str(tmp_path / "b-items.csv")]
    args += ["--tasks", str(tmp_path / "a-tasks.csv"), "--tasks", str(tmp_path / "b-tasks.csv")]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--bootstrap", "20", "--no-figures", "-q"])
    assert result.exit_code == 0, result.output
    holdout = pd.read_csv(out / "holdout.csv")
    assert set(holdout["held_out_by"]) == {"field pair", "ontology", "model"}
    assert len(field_pairs(holdout)) == 12 and holdout.groupby("label")["model"].nunique().eq(2).all()
    direct = fit_predictor(pd.concat([a_items, b_items]), pd.concat([a_tasks, b_tasks]), seed=0)
    np.testing.assert_allclose(
        holdout["predicted_generalization_gain"], direct.holdout["predicted_generalization_gain"], rtol=1e-4, atol=1e-6
    )
    # the same units twice is refused, not double-counted
    twice = ["correlate", "--items", args[2], "--items", args[2], "--tasks", args[6], "--tasks", args[6]]
    again = CliRunner().invoke(app, [*twice, "--out", str(tmp_path / "twice"), "-q"])
    assert again.exit_code != 0 and "same task and model" in again.output


def test_a_study_folder_stands_for_its_evaluated_runs(tmp_path) -> None:
    from lexprobe.runs import make_manifest, write_manifest
    from lexprobe.study import evaluated_runs

    study = tmp_path / "study"
    write_manifest(study, make_manifest(stage="study", config={}))
    for task, evaluated in (("name-to-id", True), ("id-to-name", False)):
        run = study / "hgnc" / task
        run.mkdir(parents=True)
        if evaluated:
            (run / "outcomes.csv").write_text("id\n")
            write_manifest(run, make_manifest(stage="evaluate", config={}), name="evaluation_manifest.json")
    (study / "hgnc" / "align").mkdir()
    other = tmp_path / "run"
    assert evaluated_runs([study, other]) == [study / "hgnc" / "name-to-id", other]


def test_the_summary_gives_each_model_a_table_with_intervals_and_verdicts() -> None:
    from lexprobe.predict import SUMMARY_HEADER, summary_markdown, summary_table

    a_items, a_tasks, b_items, b_tasks = two_models()
    items, tasks = pd.concat([a_items, b_items]), pd.concat([a_tasks, b_tasks], ignore_index=True)
    tasks = tasks.assign(
        baseline_train=0.0,
        tuned_train=tasks["memorization_gain"],
        baseline_withheld=0.0,
        tuned_withheld=tasks["generalization_gain"],
        layer=3,
        alignment_z=5.0,
        lexicalization=0.2,
        popularity_median=1.0,
    )
    predictor = fit_predictor(items, tasks, n_boot=10, seed=0)
    summary = summary_table(tasks, predictor.loto)
    assert len(summary) == 12
    zero = summary.iloc[0]
    assert zero["baseline_train_ci_low"] == 0 and 0.05 < zero["baseline_train_ci_high"] < 0.07  # Wilson, 0 of 60
    assert (summary["tuned_withheld_ci_low"] <= summary["tuned_withheld"]).all()
    loto = predictor.loto[predictor.loto["split"] == "withheld"].set_index(["label", "model"])
    for _, row in summary.iterrows():
        assert row["predicted_verdict"] == loto.loc[(row["label"], row["model"]), "verdict"]
    text = summary_markdown(summary)
    assert text.count(SUMMARY_HEADER) == 2 and "### m2" in text
    body = [line for line in text.splitlines() if line.startswith("| onto")]
    assert len(body) == 12 and all(line.count(" | ") == SUMMARY_HEADER.count(" | ") for line in body)


def test_calibration_errors_are_one_clear_line(tmp_path) -> None:
    with pytest.raises(PredictionError, match="not found"):
        load_calibration([tmp_path / "missing"])
    with pytest.raises(PredictionError, match="holds no `lexprobe correlate` output"):
        load_calibration([tmp_path])
    (tmp_path / "tasks.csv").write_text("label,model\nx,m\n")
    (tmp_path / "items.csv").write_text("label,split\nx,train\n")
    with pytest.raises(PredictionError, match="lacks the column"):
        load_calibration([tmp_path])


def test_larger_runs_are_subsampled_evenly_over_popularity_bins() -> None:
    from lexprobe.predict._features import _subsample

    rng = np.random.default_rng(0)
    outcomes = pd.DataFrame(
        {
            "split": np.repeat(["train", "withheld"], 400),
            "bin": np.tile(np.repeat(np.arange(20), 20), 2),
            "id": [f"X:{i}" for i in range(800)],
            "x": rng.random(800),
        }
    )
    sub = _subsample(outcomes, 100, seed=0)
    assert sub.groupby("split").size().tolist() == [100, 100]
    assert (sub.groupby(["split", "bin"]).size() == 5).all()
    pd.testing.assert_frame_equal(sub, _subsample(outcomes, 100, seed=0))
    assert not sub.equals(_subsample(outcomes, 100, seed=1))
    assert _subsample(outcomes, None, seed=0).equals(outcomes)
    assert len(_subsample(outcomes, 1000, seed=0)) == 800


def test_the_shipped_calibration_loads_and_its_evaluation_holds_out_field_pairs() -> None:
    """`lexprobe predict` works out of the box: the shipped outcomes load; held out by field pair (both
    directions of a task, both models), the evaluation writes the predictor beside the baselines, and where the
    shipped set carries its own `baselines.csv` refitting gives it again."""
    from lexprobe.predict import evaluate_items, shipped_calibration_dir

    items, tasks, manifests = load_calibration([shipped_calibration_dir()])
    assert set(tasks["model"]) == {"smollm2-135m", "gemma3-270m"} and tasks["group"].nunique() >= 20
    assert items.groupby(["label", "model"]).size().eq(200).all()
    # every unit trained at --size small (20 exposures per pair), the study v2 settings; the learning curves'
    # units at 5 and 10 exposures too
    assert set(tasks["exposures"]) == {5.0, 10.0, 20.0} and (tasks["exposures"] == 20.0).sum() == 56
    source = ROOT / manifests[0]["config"]["items"]
    runs = json.loads((source.parent / "manifest.json").read_text())["inputs"]["runs"]
    assert {(r["train_config"]["templates"], r["train_config"]["epochs"]) for r in runs} == {(1, 20.0)}
    result = evaluate_items(items, tasks, n_boot=100, seed=0)
    holdout = field_pairs(result.holdout)
    assert len(holdout) == len(tasks) and holdout.groupby("group")["task"].nunique().max() == 2
    assert len(result.holdout) == 3 * len(tasks)  # by field pair, by ontology, by model
    assert set(holdout.loc[holdout["label"].str.startswith("hgnc name-to-symbol"), "group"]) == {"hgnc name/symbol"}
    assert set(result.baselines["rule"]) == {PREDICTOR_RULE, *BASELINES}
    assert manifests[0]["config"]["features"]["per_split"] == 100
    shipped = shipped_calibration_dir() / "study-v2.2" / "baselines.csv"
    if shipped.is_file():
        recorded = pd.read_csv(shipped)
        pd.testing.assert_frame_equal(result.baselines, recorded, check_exact=False, check_dtype=False, rtol=1e-5)


def _evaluated_run(root: Path, tuned: list[bool], fewshot: list[bool] | None, zero: list[bool]) -> Path:
    """A run folder with the outcomes `lexprobe evaluate` writes (and its K = 5 baseline when given)."""
    from lexprobe.runs import make_manifest, write_manifest

    n = len(tuned)
    frame = pd.DataFrame(
        {
            "split": ["train"] * (n // 2) + ["withheld"] * (n - n // 2),
            "id": [f"T:{i}" for i in range(n)],
            "source": [f"term {i}" for i in range(n)],
            "baseline_correct": zero,
            "tuned_correct": tuned,
        }
    )
    root.mkdir(parents=True)
    frame.to_csv(root / "outcomes.csv", index=False)
    if fewshot is not None:
        shown = root / "shots-5"
        shown.mkdir()
        # the few-shot evaluation lists its pairs in another order: they are matched by pair, not by row
        frame.drop(columns="tuned_correct").assign(baseline_correct=fewshot).iloc[::-1].to_csv(
            shown / "outcomes.csv", index=False
        )
        config = {"baseline_only": True, "shots": 5, "seed": 0}
        write_manifest(shown, make_manifest(stage="evaluate", config=config), name="evaluation_manifest.json")
    return root


def test_fine_tuning_is_compared_with_the_few_shot_baseline_on_the_same_pairs(tmp_path) -> None:
    from lexprobe.predict import few_shot_comparison, few_shot_markdown

    # train: tuned right on all 10, 5-shot on 4; withheld: tuned on 3, 5-shot on 3 but not the same ones
    tuned = [True] * 10 + [True] * 3 + [False] * 7
    fewshot = [True] * 4 + [False] * 6 + [False] * 3 + [True] * 3 + [False] * 4
    run = _evaluated_run(tmp_path / "run", tuned, fewshot, zero=[False] * 20)
    row = few_shot_comparison(run, n_boot=500, seed=1)
    assert row["shots"] == 5
    assert row["fewshot_train"] == pytest.approx(0.4) and row["fewshot_withheld"] == pytest.approx(0.3)
    assert row["tuned_minus_fewshot_train"] == pytest.approx(0.6)
    assert row["tuned_minus_fewshot_withheld"] == pytest.approx(0.0)
    assert row["tuned_minus_fewshot_train_ci_low"] > 0.2  # fine-tuning leads on the pairs it trained on
    assert row["tuned_minus_fewshot_withheld_ci_low"] < 0 < row["tuned_minus_fewshot_withheld_ci_high"]
    assert few_shot_comparison(run, n_boot=500, seed=1) == row  # same seed, same interval
    assert few_shot_comparison(_evaluated_run(tmp_path / "bare", tuned, None, [False] * 20)) == {}

    tasks = pd.DataFrame(
        [
            {"label": "toy a-to-b", "model": "m", "baseline_train": 0.0, "tuned_train": 1.0, "baseline_withheld": 0.0}
            | {"tuned_withheld": 0.3}
            | row
        ]
    )
    text = few_shot_markdown(tasks)
    assert "| toy a-to-b (m) | 5 | 0.00 / 0.40 / 1.00 | +0.600 [" in text
    assert text.splitlines()[-1].endswith("| - |")  # no split: no majority rule
    assert few_shot_markdown(tasks.drop(columns="shots")) == ""


def test_the_majority_rule_answers_the_commonest_train_target(tmp_path) -> None:
    from lexprobe.predict import majority_rule

    run = tmp_path / "run"
    (run / "split").mkdir(parents=True)
    pd.DataFrame({"target": ["ncRNA", "protein", "Protein", "ncRNA", "pseudo"]}).to_csv(run / "split" / "train.csv")
    pd.DataFrame({"target": ["ncrna", "protein", "pseudo", "other"]}).to_csv(run / "split" / "withheld.csv")
    rule = majority_rule(run)
    # a tie between ncRNA and protein (2 each; 'Protein' is another string) goes to the first in sorted order
    assert rule == {"majority_target": "ncRNA", "majority_train": 0.4, "majority_withheld": 0.25}
    assert majority_rule(tmp_path / "none") == {}


def test_the_kind_table_counts_each_kind_s_outcomes_and_held_out_verdicts() -> None:
    """summary.md's "By kind of task": units grouped by their fields' kinds, with what each kind did and how
    often the held-out predictor and the majority verdict were right about it."""
    from lexprobe.predict import kind_markdown

    tasks = pd.DataFrame(
        {
            "task": ["name-to-symbol", "name-to-id", "symbol-to-id", "name-to-locus_type"],
            "label": ["hgnc name-to-symbol", "hgnc name-to-id", "hgnc symbol-to-id", "hgnc name-to-locus_type"],
            "model": "m",
            "memorization_gain_ci_low": [0.8, 0.5, 0.4, 0.9],
            "generalization_gain": [0.24, 0.0, 0.02, 0.9],
            "generalization_gain_ci_low": [0.16, 0.0, -0.01, 0.84],
            "tuned_minus_fewshot_withheld_ci_low": [0.12, 0.0, 0.0, 0.2],
            "tuned_withheld": [0.25, 0.0, 0.02, 0.9],
            "majority_withheld": [0.0, 0.0, 0.0, 0.95],  # the category task does not beat its majority rule
        }
    )
    holdout = tasks[["label", "model"]].assign(
        verdict=["will generalize", "memorization only", "will generalize", "will generalize"],
        measured_verdict=["will generalize", "memorization only", "memorization only", "will generalize"],
        **{"majority verdict: verdict": "memorization only"},
    )
    rows = {
        line.split(" | ")[0][2:]: line.strip("| ").split(" | ")
        for line in kind_markdown(tasks, holdout).splitlines()
        if line.startswith("| ") and not line.startswith("| kind")
    }
    assert list(rows) == ["lexicalized -> lexicalized", "lexicalized -> identifier", "text -> category"]
    assert rows["lexicalized -> identifier"][1:] == ["2", "2", "0", "+0.01 [+0.00, +0.02]", "0/2", "1/2", "-", "2/2"]
    assert rows["lexicalized -> lexicalized"][1:] == ["1", "1", "1", "+0.24 [+0.24, +0.24]", "1/1", "1/1", "-", "0/1"]
    assert rows["text -> category"][5] == "0/1"  # led the 5-shot baseline but not the majority rule
    assert kind_markdown(tasks.assign(task="name")) == ""  # a task name with no fields has no kind
    assert "| - | - | - |" in kind_markdown(tasks)  # without a hold-out, no verdict columns


def test_one_rule_table_serves_the_skill_tables_and_the_readme_s() -> None:
    """`rule_table_markdown`: one row per key and rule shown (the predictor, the paper's rule, the kind mean, in
    the table's order), the key formatted for its column, a missing score as '-', a header renamed on request."""
    from lexprobe.predict import KIND_MEAN, PAPERS_RULE, rule_table_markdown

    table = pd.DataFrame(
        {
            "held_out_by": "field pair",
            "exposures": [5.0, 5.0, 20.0, 20.0],
            "rule": [PREDICTOR_RULE, "majority verdict", PAPERS_RULE, KIND_MEAN],
            "n_units": [5, 5, 4, 4],
            "verdicts_right": [4, 1, 2, 3],
            "brier": [0.2361, 0.9, 0.5, 0.4],
            "committed_share": [0.0, 1.0, 0.25, 0.5],
            "committed_right": [np.nan, 0.2, 1.0, 0.5],
            "gain_mae_points": [3.821, 9.0, 8.0, 7.0],
            "memorization_mae_points": [np.nan, 1.0, 2.0, 3.0],
        }
    )
    lines = rule_table_markdown(table, "exposures").splitlines()
    assert lines[:2] == [
        "| exposures | rule | units | verdicts right | Brier | generalization gain MAE | memorization gain MAE |",
        "|---|---|---|---|---|---|---|",
    ]
    assert lines[2:] == [
        f"| 5 | {PREDICTOR_RULE} | 5 | 4/5 | 0.236 | 3.82 | - |",
        f"| 20 | {PAPERS_RULE} | 4 | 2/4 | 0.500 | 8.00 | 2.00 |",
        f"| 20 | {KIND_MEAN} | 4 | 3/4 | 0.400 | 7.00 | 3.00 |",
    ]
    readme = rule_table_markdown(
        table, "held_out_by", cells=["verdicts_right", "committed", ("gain_mae_points", "gain error (points)")]
    ).splitlines()
    assert readme[0] == "| held out by | rule | verdicts right | committed (right) | gain error (points) |"
    assert readme[2] == f"| field pair | {PREDICTOR_RULE} | 4/5 | 0% (-) | 3.82 |"
    assert len(rule_table_markdown(table, "exposures", rules=["majority verdict"]).splitlines()) == 3
    with pytest.raises(PredictionError, match="`key` must be one of"):
        rule_table_markdown(table, "model")
    with pytest.raises(PredictionError, match="`cells` must name columns of RULE_CELLS.*'spearman'"):
        rule_table_markdown(table, "kind", cells=["brier", "spearman"])


def test_a_task_outside_the_calibration_is_named_so_and_gets_the_fallback_rule() -> None:
    """The extrapolation guard: a budget, a model size or a kind the shipped calibration never measured is
    named, and the verdict comes from the rule that held up best held out by ontology, not the predictor."""
    from lexprobe.predict import BASELINES, shipped_predictor

    predictor = shipped_predictor()
    assert predictor.fallback in BASELINES and predictor.baselines is not None
    inside = predictor.tasks.iloc[0].to_dict()
    assert predictor.estimator.outside(inside) == []  # a calibration unit lies inside
    assert predictor.predict_unit(inside)["rule"] == PREDICTOR_RULE
    for change, named in (
        ({"log_exposures": np.log10(80.0)}, "log_exposures"),  # a budget of 80 (the calibration: 20 only)
        ({"log_params": np.log10(8e9)}, "log_params"),  # an 8B model (the calibration: 135M and 270M)
        ({"kind": "category -> identifier"}, "no calibration task is of this kind"),
        ({"alignment_z": 500.0}, "alignment_z"),
    ):
        out = predictor.predict_unit(inside | change)
        assert any(named in reason for reason in out["outside"]), (change, out["outside"])
        assert out["rule"] == predictor.fallback and out["rule"] != PREDICTOR_RULE
        p = np.array([out[f"p: {v}"] for v in VERDICTS])
        assert p.sum() == pytest.approx(1.0)
    # an identifier task on a new ontology's budget: never "will generalize" from a push at the range's edge
    ident = predictor.tasks[predictor.tasks["kind"] == "lexicalized -> identifier"].iloc[0].to_dict()
    out = predictor.predict_unit(ident | {"log_exposures": np.log10(80.0)})
    assert out["verdict"] != VERDICTS[0] and out["p: will generalize"] < 0.2
