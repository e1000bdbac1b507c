"""Correlation and the predictor on synthetic outcomes with a planted relation and with none; calibration I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lexprobe.exceptions import PredictionError
from lexprobe.predict import (
    FEATURES,
    VERDICTS,
    auc_comparison,
    fit_predictor,
    load_calibration,
    loto_summary,
    spearman_ci,
    youden_threshold,
)


def synthetic(n_tasks: int = 8, n: int = 150, *, planted: bool = True, seed: int = 0):
    """Items and tasks as `lexprobe correlate` writes them.

    With ``planted``, a task's alignment and lexicalization set how likely a withheld pair is gained (and
    popularity how likely a train pair is); without, every outcome is a coin flip at a fixed rate.
    """
    rng = np.random.default_rng(seed)
    frames, rows = [], []
    for t in range(n_tasks):
        level = t / (n_tasks - 1)  # task-level lexicalization / alignment, 0 .. 1
        label = f"onto{t} task"
        items = []
        for split in ("train", "withheld"):
            align = np.clip(rng.normal(0.05 + 0.3 * level, 0.05, n), 0, 1)
            lex = np.clip(rng.normal(0.1 + 0.5 * level, 0.05, n), 0, 1)
            logpop = rng.exponential(1.0, n)
            tokens = rng.integers(2, 10, n)
            if planted:
                if split == "withheld":
                    logit = -6 + 12 * align + 6 * lex
                else:
                    logit = -3 + 1.5 * logpop + 4 * level
            else:
                logit = np.full(n, -1.0)
            gained = rng.random(n) < 1 / (1 + np.exp(-logit))
            items.append(
                pd.DataFrame(
                    {
                        "label": label,
                        "model": "m",
                        "split": split,
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
        row = {"label": label, "model": "m", "n_train": n, "n_withheld": n}
        for split, name in (("train", "memorization"), ("withheld", "generalization")):
            g = part[part["split"] == split]["gain"].to_numpy()
            boots = [g[rng.integers(0, n, n)].mean() for _ in range(200)]
            row |= {
                f"{name}_gain": g.mean(),
                f"{name}_gain_ci_low": np.quantile(boots, 0.025),
                f"{name}_gain_ci_high": np.quantile(boots, 0.975),
            }
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


def test_thresholds_come_from_the_fit_and_decide_the_verdicts() -> None:
    items, tasks = synthetic()
    predictor = fit_predictor(items, tasks, n_boot=30, seed=0)
    scored = predictor.tasks
    gen = predictor.thresholds["withheld"]
    assert gen is not None
    above = scored["predicted_generalization_gain"] >= gen
    # the cut lies between the calibration tasks it separates: most generalizing tasks sit above it
    assert (above == scored["generalized"]).mean() >= 0.75
    # the verdict of a task follows its predicted gains and the fitted cuts
    for label in scored["label"]:
        out = predictor.predict(items[items["label"] == label])
        assert out["verdict"] in VERDICTS
        expect = (
            VERDICTS[0]
            if out["predicted_generalization_gain"] >= gen
            else VERDICTS[1]
            if predictor.thresholds["train"] is not None
            and out["predicted_memorization_gain"] >= predictor.thresholds["train"]
            else VERDICTS[2]
        )
        assert out["verdict"] == expect
    # other calibration outcomes give other thresholds (nothing is hard-coded)
    shifted = tasks.assign(generalized=tasks.index >= 6)
    assert fit_predictor(items, shifted, n_boot=5, loto=False).thresholds["withheld"] != gen


def test_predictor_ranks_held_out_tasks_by_their_generalization() -> None:
    items, tasks = synthetic()
    predictor = fit_predictor(items, tasks, n_boot=30, seed=0)
    summary = loto_summary(predictor.loto)
    assert summary["n_tasks"] == len(tasks)
    assert summary["generalization_rho"] > 0.8
    assert summary["generalization_mae"] < 0.1
    assert summary["verdict_accuracy"] >= 0.6
    loto = predictor.loto[predictor.loto["split"] == "withheld"]
    assert (loto["predicted_ci_low"] <= loto["predicted_ci_high"]).all()
    best = items[items["label"] == tasks["label"].iloc[-1]]
    out = predictor.predict(best)
    assert out["verdict"] == VERDICTS[0]
    assert (
        out["predicted_generalization_gain_ci_low"]
        <= out["predicted_generalization_gain"]
        <= out["predicted_generalization_gain_ci_high"]
    )
    # the reasons name the features that pushed: here alignment and lexicalization, upwards
    top = {r["feature"] for r in out["reasons"][:2]}
    assert top == {"alignment", "lexicalization"}
    assert all(r["log_odds"] > 0 for r in out["reasons"][:2])


def test_predictor_without_a_relation_predicts_no_spread() -> None:
    items, tasks = synthetic(planted=False)
    predictor = fit_predictor(items, tasks, n_boot=20, seed=0)
    loto = predictor.loto[predictor.loto["split"] == "withheld"]
    assert loto["predicted_gain"].std() < 0.05
    assert (loto["predicted_gain"] - loto["measured_gain"]).abs().mean() < 0.08


def test_predictor_is_reproducible_and_warns_when_calibration_is_thin() -> None:
    items, tasks = synthetic(n_tasks=4)
    a = fit_predictor(items, tasks, n_boot=10, seed=3)
    b = fit_predictor(items, tasks, n_boot=10, seed=3)
    pd.testing.assert_frame_equal(a.loto, b.loto)
    assert any("thin calibration: 4 tasks" in w for w in a.warnings)
    assert any("one model" in w for w in a.warnings)
    with pytest.raises(PredictionError, match="at least 2 tasks"):
        fit_predictor(items[items["label"] == tasks["label"][0]], tasks.head(1))
    with pytest.raises(PredictionError, match="lack columns"):
        fit_predictor(items.drop(columns="alignment"), tasks)


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
    assert len(manifests) == 2 and set(FEATURES) <= set(got_items.columns)


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
    with pytest.raises(PredictionError, match="lack the columns"):
        load_calibration([tmp_path])


def test_larger_runs_are_subsampled_evenly_over_popularity_bins() -> None:
    from lexprobe.predict import _subsample

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


def test_the_shipped_calibration_loads_and_its_evaluation_is_reproduced() -> None:
    """`lexprobe predict` works out of the box: the shipped outcomes load, and refitting the predictor on them
    with the seed they were made with gives their recorded leave-one-task-out table again."""
    from lexprobe.predict import shipped_calibration_dir

    items, tasks, manifests = load_calibration([shipped_calibration_dir()])
    assert len(tasks) == 16 and set(tasks["model"]) == {"smollm2-135m", "gemma3-270m"}
    assert tasks["label"].nunique() == 8 and items.groupby(["label", "model"]).size().eq(200).all()
    predictor = fit_predictor(items, tasks, n_boot=200, seed=0)
    recorded = pd.read_csv(shipped_calibration_dir() / "paper-tasks" / "loto.csv")
    pd.testing.assert_frame_equal(predictor.loto, recorded, check_exact=False, check_dtype=False, rtol=1e-5)
    assert manifests[0]["config"]["features"]["per_split"] == 100
