"""Calibration units at several budgets: learning curves become units, the predictor answers for a budget,
knows which budgets each kind was measured at, and is scored at each budget; the reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lexprobe.exceptions import PredictionError
from lexprobe.predict import (
    PREDICTOR_RULE,
    VERDICTS,
    VerdictPredictor,
    budget_label,
    budget_table,
    curve_units,
    find_curve_runs,
    fit_predictor,
    reliability_table,
)

ROOT = Path(__file__).resolve().parents[1]
V2 = ROOT / "docs" / "results" / "calibration-v2"
CURVE = ROOT / "docs" / "results" / "study-v3-smollm2" / "hgnc" / "name-to-symbol"


def _v2() -> tuple[pd.DataFrame, pd.DataFrame]:
    from lexprobe.predict import read_correlate_tables

    return read_correlate_tables([V2 / "items.csv.gz"], [V2 / "tasks.csv"])


def test_a_learning_curve_becomes_one_unit_per_budget() -> None:
    """The retrained hgnc name-to-symbol run's curve (5, 10, 20 exposures) replaces its study v2 unit by three,
    scored from the curve's own items, and leaves every other unit as it was."""
    items, tasks = _v2()
    new_items, new_tasks = curve_units(items, tasks, find_curve_runs([CURVE]))
    assert len(new_tasks) == len(tasks) + 2
    mine = new_tasks[(new_tasks["task"] == "name-to-symbol") & (new_tasks["model"] == "smollm2-135m")]
    assert sorted(mine["exposures"]) == [5.0, 10.0, 20.0]
    assert set(mine["label"]) == {
        "hgnc name-to-symbol",
        budget_label("hgnc name-to-symbol", 5),
        budget_label("hgnc name-to-symbol", 10),
    }
    curve = pd.read_csv(CURVE / "learning_curve.csv")
    for _, row in mine.iterrows():
        point = curve[curve["exposures"] == row["exposures"]].set_index("split")["accuracy"]
        base = curve[curve["exposures"] == 0].set_index("split")["accuracy"]
        assert row["generalization_gain"] == pytest.approx(point["withheld"] - base["withheld"])
        assert row["memorization_gain"] == pytest.approx(point["train"] - base["train"])
    # the other 55 units are untouched, and every item carries its unit's budget
    others = new_tasks[~new_tasks["label"].isin(mine["label"]) | (new_tasks["model"] != "smollm2-135m")]
    assert len(others) == len(tasks) - 1
    assert new_items["exposures"].notna().all()
    assert len(new_items) == len(items) + 2 * 200
    # features are the unit's: the same pairs, measured once
    five = new_items[new_items["label"] == budget_label("hgnc name-to-symbol", 5)]
    twenty = new_items[(new_items["label"] == "hgnc name-to-symbol") & (new_items["model"] == "smollm2-135m")]
    assert (
        five.set_index(["split", "id"])["alignment"]
        .sort_index()
        .equals(twenty.set_index(["split", "id"])["alignment"].sort_index())
    )


def test_a_curve_given_again_replaces_the_budgets_it_gave() -> None:
    """A calibration made with curves, given the same curve again, keeps one unit per budget."""
    items, tasks = _v2()
    once = curve_units(items, tasks, [CURVE])
    twice = curve_units(*once, [CURVE])
    assert len(twice[1]) == len(once[1]) and len(twice[0]) == len(once[0])
    assert sorted(twice[1]["label"]) == sorted(once[1]["label"])


def test_a_curve_of_a_task_the_calibration_lacks_is_refused() -> None:
    items, tasks = _v2()
    without = tasks[tasks["task"] != "name-to-symbol"]
    with pytest.raises(PredictionError, match="not a unit of the calibration"):
        curve_units(items, without, [CURVE])
    with pytest.raises(PredictionError, match="no scored learning curve"):
        find_curve_runs([ROOT / "docs" / "results" / "calibration-v1"])


def _curve_copy(tmp_path: Path) -> Path:
    """The hgnc name-to-symbol curve run's train config and scored curve, in a folder of their own."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("train_config.json", "learning_curve_items.csv"):
        (run / name).write_bytes((CURVE / name).read_bytes())
    return run


def test_a_curve_s_unit_is_found_from_its_train_config_without_loading_the_ontology(monkeypatch, tmp_path) -> None:
    """The run's ontology as its train config gives it ('hgnc') is matched with the calibration's ontology_spec,
    else with the ontology's name; no ontology is parsed, and a run without a train config is one error."""
    import lexprobe.ontology

    def refuse(*args, **kwargs):
        raise AssertionError("curve_units loaded an ontology")

    monkeypatch.setattr(lexprobe.ontology, "load_ontology", refuse)
    items, tasks = _v2()
    expected = curve_units(items, tasks, [CURVE])[1]
    # by spec: the ontology's name in the table is not what the train config says
    renamed = curve_units(items, tasks.assign(ontology=tasks["ontology"].replace("hgnc", "HGNC 2024")), [CURVE])[1]
    assert sorted(renamed["label"]) == sorted(expected["label"])
    # by name: a tasks table without the spec
    assert sorted(curve_units(items, tasks.drop(columns="ontology_spec"), [CURVE])[1]["label"]) == sorted(
        expected["label"]
    )
    elsewhere = tasks.assign(ontology_spec="other.tsv", ontology=tasks["ontology"].replace("hgnc", "other"))
    with pytest.raises(PredictionError, match="hgnc name-to-symbol on smollm2-135m is not a unit"):
        curve_units(items, elsewhere, [CURVE])
    run = _curve_copy(tmp_path)
    (run / "train_config.json").unlink()
    with pytest.raises(PredictionError, match="has no train_config.json"):
        curve_units(items, tasks, [run])


@pytest.mark.parametrize(
    ("exposures", "message"),
    [(0, "its curve's items are not those of the calibration unit"), (5, "at 5 exposures scored other items")],
)
def test_a_curve_of_other_items_is_refused(tmp_path, exposures: int, message: str) -> None:
    """A curve whose untuned point, or one of whose budgets, scored an item the unit does not hold."""
    run = _curve_copy(tmp_path)
    curve = pd.read_csv(run / "learning_curve_items.csv", dtype={"id": str})
    first = curve.index[curve["exposures"] == exposures][0]
    curve.loc[first, "id"] = "HGNC:0"
    curve.to_csv(run / "learning_curve_items.csv", index=False)
    items, tasks = _v2()
    with pytest.raises(PredictionError, match=message):
        curve_units(items, tasks, [run])


def budget_units(seed: int = 0) -> pd.DataFrame:
    """Units of two kinds: identifier tasks (four field pairs) measured at 5, 10 and 20 exposures whose
    memorization grows with the budget, and category tasks (three field pairs) at 20 only."""
    rng = np.random.default_rng(seed)
    rows = []
    for pair in range(4):
        for exposures in (5.0, 10.0, 20.0):
            mem = 0.15 + 0.25 * np.log2(exposures / 5) + rng.normal(0, 0.02)
            rows.append({"task": "name-to-id", "ontology": f"o{pair}", "exposures": exposures, "mem": mem, "gen": 0.0})
    for pair in range(3):
        rows.append({"task": "name-to-category", "ontology": f"c{pair}", "exposures": 20.0, "mem": 0.9, "gen": 0.6})
    units = pd.DataFrame(rows)
    units["kind"] = units["task"].map(
        {"name-to-id": "lexicalized -> identifier", "name-to-category": "lexicalized -> category"}
    )
    units["group"] = units["ontology"] + " " + units["task"]
    units["label"] = units["group"] + " @ " + units["exposures"].astype(str)
    units["model"] = "m"
    units["n_train"] = units["n_withheld"] = 100
    units["majority_share"] = np.where(units["task"] == "name-to-category", 0.3, 0.0)
    units["alignment_z"] = rng.normal(5, 1, len(units))
    units["target_tokens"] = rng.normal(6, 0.5, len(units))
    units["log_params"] = 8.0
    units["log_exposures"] = np.log10(units["exposures"])
    units["memorization_gain"] = units["mem"].clip(-1, 1)
    units["generalization_gain"] = units["gen"]
    for name in ("memorization", "generalization"):
        units[f"{name}_gain_ci_low"] = units[f"{name}_gain"] - 0.05
        units[f"{name}_gain_ci_high"] = units[f"{name}_gain"] + 0.05
    units["memorized"] = units["memorization_gain_ci_low"] > 0
    units["generalized"] = units["generalization_gain_ci_low"] > 0
    units["measured_verdict"] = np.where(
        units["generalized"], VERDICTS[0], np.where(units["memorized"], VERDICTS[1], VERDICTS[2])
    )
    return units


def test_the_predictor_answers_for_a_budget_and_knows_where_each_kind_was_measured() -> None:
    units = budget_units()
    est = VerdictPredictor().fit(units)
    assert est.budgets_ == {"lexicalized -> identifier": [5.0, 10.0, 20.0], "lexicalized -> category": [20.0]}
    ident = units[units["kind"] == "lexicalized -> identifier"].iloc[[0]].copy()
    gains = []
    for exposures in (5.0, 10.0, 20.0):
        one = ident.assign(exposures=exposures, log_exposures=np.log10(exposures))
        assert est.outside(one.iloc[0]) == []
        gains.append(est.predict_gains(one)["predicted_memorization_gain"].iloc[0])
    assert gains[0] < gains[1] < gains[2]  # memorization follows the budget a user plans
    assert gains[2] - gains[0] > 0.3
    category = (
        units[units["kind"] == "lexicalized -> category"].iloc[[0]].assign(exposures=5.0, log_exposures=np.log10(5.0))
    )
    reasons = est.outside(category.iloc[0])
    assert any("exposures = 5" in r and "20 only" in r for r in reasons), reasons


def test_skill_is_scored_at_each_budget_on_the_same_field_pairs() -> None:
    from lexprobe.predict import evaluate_holdout

    units = budget_units()
    for f in ("alignment", "lexicalization", "log_popularity", "template_share", "seen_target_share"):
        units[f] = 0.5
    holdout, _ = evaluate_holdout(units, schemes=("field pair",))
    table = budget_table(holdout)
    assert list(table["exposures"].unique()) == [5.0, 10.0, 20.0]
    # only the field pairs with a curve: four units at each budget, the category pairs (20 only) left out
    assert (table.groupby("exposures")["n_units"].max() == 4).all()
    own = table[table["rule"] == PREDICTOR_RULE].set_index("exposures")
    papers = table[table["rule"] == "the paper's rule (kinds of the fields)"].set_index("exposures")
    # the paper's rule knows no budget: its memorization error is worst at the ends; the predictor's is small
    assert (own["memorization_mae_points"] < papers["memorization_mae_points"]).all()


def test_the_reliability_table_bins_each_verdict_s_probability_against_what_was_measured() -> None:
    measured = [VERDICTS[0]] * 6 + [VERDICTS[1]] * 4
    sure = np.array([[1.0, 0.0, 0.0]] * 6 + [[0.0, 1.0, 0.0]] * 4)
    holdout = pd.DataFrame(sure, columns=[f"p: {v}" for v in VERDICTS]).assign(
        measured_verdict=measured, held_out_by="field pair"
    )
    table = reliability_table(holdout, rules=[PREDICTOR_RULE], bins=5)
    top, bottom = table[table["bin_low"] == 0.8].iloc[0], table[table["bin_low"] == 0.0].iloc[0]
    assert top["observed"] == 1.0 and top["n"] == 10  # every verdict given p = 1 was measured
    assert bottom["observed"] == 0.0 and bottom["n"] == 20
    wrong = holdout.assign(measured_verdict=measured[::-1])
    flipped = reliability_table(wrong, rules=[PREDICTOR_RULE], bins=5)
    assert flipped.loc[flipped["bin_low"] == 0.8, "observed"].iloc[0] < 1.0


def test_the_budget_curve_of_a_unit_predicts_at_every_calibration_budget(tmp_path) -> None:
    from lexprobe.figures import plot_budget_curve, plot_reliability

    items, tasks = _v2()
    items, tasks = curve_units(items, tasks, [CURVE])
    predictor = fit_predictor(items, tasks, loto=False)
    unit = predictor.tasks[predictor.tasks["label"] == "hgnc name-to-symbol"].iloc[0].to_dict()
    curve = predictor.budget_curve(unit, [40.0])
    assert sorted(curve["exposures"].unique()) == [5.0, 10.0, 20.0, 40.0]
    at40 = curve[curve["exposures"] == 40.0]
    assert at40["outside"].all() and (at40["rule"] != PREDICTOR_RULE).all()  # 40 was never measured
    inside = curve[curve["exposures"] < 40]
    assert not inside["outside"].any()
    measured = predictor.measured_curves(unit["kind"])
    assert set(measured["exposures"]) == {5.0, 10.0, 20.0}
    paths = plot_budget_curve(curve, measured, tmp_path, title="t")
    assert all(p.stat().st_size > 0 for p in paths)
    rel = reliability_table(
        pd.DataFrame({**{f"p: {v}": [1 / 3] * 3 for v in VERDICTS}, "measured_verdict": list(VERDICTS)})
    )
    assert all(p.stat().st_size > 0 for p in plot_reliability(rel, tmp_path))


def test_a_budget_curve_fits_its_fallback_once_and_answers_as_predict_unit_does(monkeypatch) -> None:
    """A category unit (its kind measured at 20 exposures only) is outside the calibration at 5, 10 and 40: the
    kind mean answers there, fitted once for the whole curve, with the answers predict_unit gives per budget."""
    import dataclasses

    import lexprobe.predict._holdout as holdout
    from lexprobe.predict import KIND_MEAN, Predictor

    units = budget_units()
    predictor = Predictor(
        estimator=VerdictPredictor().fit(units),
        tasks=units,
        calibration_items=pd.DataFrame(),
        warnings=[],
        fallback=KIND_MEAN,
    )
    unit = units[units["kind"] == "lexicalized -> category"].iloc[0].to_dict()
    fits = []
    real = holdout.kind_mean_rule
    monkeypatch.setattr(holdout, "kind_mean_rule", lambda: fits.append(1) or real())
    curve = predictor.budget_curve(unit, [40.0])
    assert len(fits) == 1
    assert list(curve.loc[curve["outside"], "exposures"].unique()) == [5.0, 10.0, 40.0]
    assert set(curve.loc[curve["outside"], "rule"]) == {KIND_MEAN}
    assert set(curve.loc[~curve["outside"], "rule"]) == {PREDICTOR_RULE}
    for exposures, rows in curve.groupby("exposures"):
        fresh = dataclasses.replace(predictor)  # no fitted fallback kept: predict_unit fits its own
        got = fresh.predict_unit(unit | {"exposures": exposures, "log_exposures": float(np.log10(exposures))})
        for _, row in rows.iterrows():
            name = "memorization" if row["split"] == "train" else "generalization"
            assert row["rule"] == got["rule"] and row["outside"] == bool(got["outside"])
            for column, key in (("predicted_gain", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
                assert row[column] == pytest.approx(got[f"predicted_{name}_gain{key}"], nan_ok=True)
    assert len(fits) == 1 + 3  # one fresh predictor per budget outside, each fitting the fallback once
    predictor.budget_curve(unit, [40.0])
    assert len(fits) == 4  # kept on the predictor for its next curve
    predictor.tasks = units.copy()  # another calibration table: fitted anew
    predictor.budget_curve(unit)
    assert len(fits) == 5


def test_correlate_takes_curves_only_with_the_units_they_retrained(tmp_path) -> None:
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        app, ["correlate", "--items", str(V2 / "items.csv.gz"), "--curves", str(CURVE), "-o", str(tmp_path / "c")]
    )
    assert result.exit_code == 2 and "--curves goes with --items and --tasks" in result.output
    assert not (tmp_path / "c").exists()


def test_the_surface_check_flags_a_feature_that_follows_token_length() -> None:
    """Within a kind, an alignment z that is the target's length in tokens is flagged; one that is not, is
    not."""
    from lexprobe.predict import surface_check

    rng = np.random.default_rng(0)
    rows, units = [], []
    for t in range(6):
        tokens = 2 + t
        for split in ("train", "withheld"):
            for _ in range(20):
                rows.append(
                    {
                        "label": f"o{t} name-to-symbol",
                        "model": "m",
                        "split": split,
                        "source_tokens": 5,
                        "target_tokens": tokens,
                        "target": "ABC" + "x" * t,
                    }
                )
        units.append(
            {
                "label": f"o{t} name-to-symbol",
                "model": "m",
                "kind": "lexicalized -> lexicalized",
                "group": f"o{t} name/symbol",
                "alignment_z": 3.0 * tokens,
                "noise": rng.normal(),
            }
        )
    items, units = pd.DataFrame(rows), pd.DataFrame(units)
    table = surface_check(items, units, features=("alignment_z", "noise")).set_index(["feature", "surface"])
    assert table.loc[("alignment_z", "target_tokens"), "flagged"]
    assert table.loc[("alignment_z", "target_tokens"), "rho"] == pytest.approx(1.0)
    assert np.isnan(table.loc[("alignment_z", "source_tokens"), "rho"])  # a constant side ranks nothing
    assert table.loc[("noise", "target_tokens"), "n_field_pairs"] == 6


def _digit_units(target_tokens: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Six units of one kind (six field pairs) whose targets hold t digits of 6 (t = 0..5), with the given
    target lengths in tokens and source lengths that rank unlike either (rho +0.20 with the digits)."""
    sources = [3, 0, 4, 1, 5, 2]
    rows, units = [], []
    for t in range(6):
        for split in ("train", "withheld"):
            for _ in range(10):
                rows.append(
                    {
                        "label": f"o{t} name-to-symbol",
                        "model": "m",
                        "split": split,
                        "source_tokens": 4 + sources[t],
                        "target_tokens": target_tokens[t],
                        "target": "A" * (6 - t) + "1" * t,
                    }
                )
        units.append(
            {
                "label": f"o{t} name-to-symbol",
                "model": "m",
                "kind": "lexicalized -> lexicalized",
                "group": f"o{t} name/symbol",
                "alignment_z": float([2, 5, 0, 3, 1, 4][t]),
                "target_tokens": float(target_tokens[t]),
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(units)


def test_the_surface_check_flags_a_memorization_feature_that_is_the_target_s_digits() -> None:
    """target_tokens, the memorization gain's feature, is itself a surface form: it is checked against the
    source's length and the target's digit share (not against itself), and flagged where it ranks the units
    as the digit share does; the Markdown table says which gain reads each feature."""
    from lexprobe.predict import SURFACES, surface_check
    from lexprobe.predict._correlate import surface_markdown

    items, units = _digit_units([1, 2, 3, 4, 5, 6])  # one more token for each digit
    table = surface_check(items, units)
    mine = table[table["feature"] == "target_tokens"].set_index("surface")
    assert list(mine.index) == ["source_tokens", "target_digit_share"]
    assert set(mine["gain"]) == {"memorization"} and set(mine["kind"]) == {"lexicalized -> lexicalized"}
    assert mine.loc["target_digit_share", "rho"] == pytest.approx(1.0) and mine.loc["target_digit_share", "flagged"]
    assert mine.loc["source_tokens", "rho"] == pytest.approx(0.2) and not mine.loc["source_tokens", "flagged"]
    assert (mine["n_units"] == 6).all() and (mine["n_field_pairs"] == 6).all()
    alignment = table[table["feature"] == "alignment_z"]
    assert list(alignment["surface"]) == list(SURFACES) and set(alignment["gain"]) == {"generalization"}
    assert "| lexicalized -> lexicalized | target_tokens | memorization | 6 | +0.20 | itself | +1.00 (flagged) |" in (
        surface_markdown(table)
    )
    # a surface.csv written before the memorization feature was checked has no gain column
    assert "| lexicalized -> lexicalized | alignment_z | - | 6 |" in surface_markdown(table.drop(columns="gain"))
    # the same digits with target lengths that do not follow them: nothing flagged for target_tokens
    items, units = _digit_units([2, 5, 6, 1, 4, 3])
    other = surface_check(items, units).set_index(["feature", "surface"])
    assert other.loc[("target_tokens", "target_digit_share"), "rho"] == pytest.approx(-18 / 210)
    assert not other.loc["target_tokens", "flagged"].any()
