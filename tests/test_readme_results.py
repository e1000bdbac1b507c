"""Every number in the README's results table comes from a file the tool wrote (docs/results/)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
METRIC_NAMES = {"mutual kNN": "mknn", "debiased CKA": "dcka", "linear CKA": "cka"}


def readme_rows(header: str = "| ontology | pair | metric | best layer |", page: str = "README.md") -> list[list[str]]:
    """The cells of the table in ``page`` (default the README) whose header line starts with ``header``."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_alignment_table_matches_the_recorded_runs() -> None:
    """docs/alignment.md's table of the three ontologies is the runs' summaries, and the README's headline
    sentence quotes the same files."""
    header = "| ontology | pair | metric | best layer | value | null (layer max) | effect | z |"
    rows = readme_rows(header, "docs/alignment.md")
    assert {row[0] for row in rows} == {"hgnc", "hpo", "go"}
    for ontology, pair, metric, layer, value, null, effect, _z, ci in rows:
        summary = pd.read_csv(ROOT / "docs" / "results" / f"align-{ontology}" / "alignment_summary.csv")
        recorded = summary.set_index(["pair", "metric"]).loc[(pair, metric)]
        assert int(layer) == recorded["best_layer"]
        assert value == f"{recorded['value']:.3f}"
        assert null == f"{recorded['null_max_mean']:.3f}"
        assert effect == f"{recorded['effect']:+.3f}"
        assert ci == f"{recorded['ci_low']:.3f}-{recorded['ci_high']:.3f}"
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())

    def best(ontology: str, pair: str, metric: str) -> pd.Series:
        summary = pd.read_csv(ROOT / "docs" / "results" / f"align-{ontology}" / "alignment_summary.csv")
        return summary.set_index(["pair", "metric"]).loc[(pair, metric)]

    symbol, ident = best("hgnc", "name:symbol", "mknn"), best("hgnc", "name:id", "mknn")
    assert (
        f"at {symbol['value']:.3f} (layer {int(symbol['best_layer'])}) against a layer-max permutation null of "
        f"{symbol['null_max_mean']:.3f}" in readme
    )
    assert f"names and HGNC ids reach {ident['value']:.3f}, a fifth of that effect" in readme
    assert 0.15 <= ident["ratio_to_name_symbol"] <= 0.25  # "a fifth"
    hpo, go = best("hpo", "name:id", "mknn"), best("go", "name:id", "mknn")
    assert f"{hpo['value']:.3f} and {go['value']:.3f}" in readme
    dcka = best("hgnc", "name:symbol", "dcka"), best("hgnc", "name:id", "dcka")
    assert f"Debiased CKA: {dcka[0]['value']:.3f} against {dcka[1]['value']:.3f}" in readme


@pytest.mark.parametrize("ontology", ["hgnc", "hpo", "go"])
def test_the_recorded_runs_say_how_they_were_made(ontology: str) -> None:
    manifest = json.loads((ROOT / "docs" / "results" / f"align-{ontology}" / "manifest.json").read_text())
    assert manifest["config"]["ontology"] == ontology and manifest["config"]["limit"] == 2000
    assert manifest["config"]["permutations"] == 100 and manifest["seed"] == 0
    assert manifest["inputs"]["model"]["name"] == "smollm2-135m"
    snapshots = json.loads((ROOT / "data" / "snapshots.json").read_text())["ontologies"]
    # the snapshot that ships, or an earlier one with the same terms and values that the current one only adds
    # columns to (data/build.py, EARLIER_SHA256)
    shipped = snapshots[ontology]
    assert manifest["inputs"]["ontology"]["checksum"] in {shipped["sha256"], *shipped.get("earlier_sha256", ())}


def test_the_lexicalization_table_matches_the_recorded_runs() -> None:
    """docs/lexicalization.md's table is the runs' field tables, and the README's sentence quotes them."""
    rows = readme_rows("| ontology | field | layer | tokens / item |", "docs/lexicalization.md")
    assert {row[0] for row in rows} == {"hgnc", "hpo", "go"}
    for row in rows:
        ontology, field, tokens, agreement, probe, majority, score = (row[i] for i in (0, 1, 3, 7, 10, 11, 12))
        directory = ROOT / "docs" / "results" / f"lexicalization-{ontology}"
        recorded = pd.read_csv(directory / "lexicalization_fields.csv").set_index("field").loc[field]
        assert tokens == f"{recorded['tokens_mean']:.1f}"
        assert agreement == ("" if pd.isna(recorded["agreement"]) else f"{recorded['agreement']:.3f}")
        assert probe == f"{recorded['probe_accuracy']:.3f}"
        assert majority == f"{recorded['probe_baseline']:.3f}"
        assert score == f"{recorded['score']:.3f} [{recorded['score_ci_low']:.3f}, {recorded['score_ci_high']:.3f}]"
        manifest = json.loads((directory / "manifest.json").read_text())
        assert manifest["config"]["limit"] == 2000 and manifest["seed"] == 0
        assert manifest["inputs"]["model"]["name"] == "smollm2-135m"
    fields = pd.read_csv(ROOT / "docs" / "results" / "lexicalization-hgnc" / "lexicalization_fields.csv")
    fields = fields.set_index("field")
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    symbol, ident = fields.loc["symbol"], fields.loc["id"]
    ratio = symbol["agreement"] / ident["agreement"]
    quoted = f"{ratio:.1f} times as much as HGNC ids' do ({symbol['agreement']:.3f} against {ident['agreement']:.3f}"
    assert quoted in readme
    for r in (symbol, ident):
        assert f"{r['score']:.3f} [{r['score_ci_low']:.3f}, {r['score_ci_high']:.3f}]" in readme


def test_the_training_table_matches_the_recorded_runs() -> None:
    """docs/training.md's summary of the recorded runs is their evaluation.json, and the README quotes it."""
    rows = readme_rows("| task | split | baseline | tuned | gain [95% CI] |", "docs/training.md")
    assert rows
    for task, split, baseline, tuned, gain in rows:
        ontology, name = task.split()
        recorded = json.loads((ROOT / "docs" / "results" / f"train-{ontology}-{name}" / "evaluation.json").read_text())
        g = recorded["gains"][split]
        assert baseline == f"{g['baseline']:.3f}" and tuned == f"{g['tuned']:.3f}"
        assert gain == f"{g['gain']:+.3f} [{g['gain_ci_low']:.3f}, {g['gain_ci_high']:.3f}]"
    recorded = json.loads((ROOT / "docs" / "results" / "train-hgnc-name-to-symbol" / "evaluation.json").read_text())
    train, held = recorded["gains"]["train"], recorded["gains"]["withheld"]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"trained pairs from {train['baseline']:.3f} to {train['tuned']:.3f}" in readme
    assert (
        f"withheld ones from {held['baseline']:.3f} to {held['tuned']:.3f} (gain {held['gain']:+.3f} "
        f"[{held['gain_ci_low']:.3f}, {held['gain_ci_high']:.3f}]" in readme
    )


def _gain(row: pd.Series, name: str) -> str:
    return f"{row[f'{name}_gain']:+.3f} [{row[f'{name}_gain_ci_low']:.3f}, {row[f'{name}_gain_ci_high']:.3f}]"


#: The calibration set `lexprobe predict` ships: calibration v2 with the learning curves of its retrained units.
CALIBRATION = ROOT / "data" / "calibration" / "study-v2.2"
#: Study v2 correlated: 20 field pairs on both model sizes, every unit at 20 exposures.
CALIBRATION_V2 = ROOT / "docs" / "results" / "calibration-v2"
#: The set it replaced: the paper's eight tasks at 9 exposures per pair (docs/study.md, study v1).
CALIBRATION_V1 = ROOT / "docs" / "results" / "calibration-v1"
STUDY_MODELS = {"smollm2-135m", "gemma3-270m"}


@pytest.mark.parametrize("calibration", [CALIBRATION_V2, CALIBRATION], ids=["v2", "v2.2"])
def test_a_summary_s_kind_table_is_what_kind_markdown_makes_of_its_files(calibration: Path) -> None:
    """The "By kind of task" section of a calibration's summary.md is what `kind_markdown` makes of its
    tasks.csv and holdout.csv (a learning curve's other budgets left out)."""
    from lexprobe.predict import kind_markdown

    written = (calibration / "summary.md").read_text(encoding="utf-8")
    remade = kind_markdown(pd.read_csv(calibration / "tasks.csv"), pd.read_csv(calibration / "holdout.csv"))
    assert remade.strip() in written


def test_the_study_page_kind_table_is_study_v2_s() -> None:
    """docs/study.md's table by kind of task is the "By kind of task" section of calibration v2's summary.md
    (study v2, every unit at 20 exposures)."""
    from lexprobe.predict import kind_markdown

    written = (CALIBRATION_V2 / "summary.md").read_text(encoding="utf-8")
    remade = kind_markdown(pd.read_csv(CALIBRATION_V2 / "tasks.csv"), pd.read_csv(CALIBRATION_V2 / "holdout.csv"))
    assert remade.strip() in written
    table = [line for line in remade.splitlines() if line.startswith("|")]
    page = (ROOT / "docs" / "study.md").read_text(encoding="utf-8")
    assert "\n".join(table) in page
    assert len(table) >= 2 + 4  # header, rule, at least four kinds
    manifest = json.loads((CALIBRATION_V2 / "manifest.json").read_text())
    assert manifest["stage"] == "correlate" and manifest["seed"] == 0
    assert {r["model"]["name"] for r in manifest["inputs"]["runs"]} == STUDY_MODELS


@pytest.mark.parametrize("calibration", [CALIBRATION_V2, CALIBRATION_V1], ids=["v2", "v1"])
def test_the_study_page_tables_are_the_summary_the_tool_wrote(calibration: Path) -> None:
    """docs/study.md carries `summary.md` of both calibration sets verbatim (v2, shipped, and v1), and that file
    is what `summary_markdown` makes of its tasks.csv and loto.csv."""
    from lexprobe.predict import summary_markdown, summary_table

    written = (calibration / "summary.md").read_text(encoding="utf-8")
    remade = summary_markdown(
        summary_table(pd.read_csv(calibration / "tasks.csv"), pd.read_csv(calibration / "loto.csv"))
    )
    per_model = written.split("\n## ")[0]  # the per-model tables; the held-out sections follow them
    assert per_model.rstrip() == remade.rstrip()
    page = (ROOT / "docs" / "study.md").read_text(encoding="utf-8")
    for table in per_model.split("### ")[1:]:
        assert "### " + table.strip() in page
    assert {line[4:] for line in per_model.splitlines() if line.startswith("### ")} == STUDY_MODELS


def training_minutes(model: str) -> tuple[int, int]:
    """Shortest and longest training time (minutes) of the model's calibration runs, from their manifests."""
    runs = json.loads((CALIBRATION_V1 / "manifest.json").read_text())["inputs"]["runs"]
    seconds = [
        json.loads((ROOT / r["run"] / "manifest.json").read_text())["outputs"]["seconds"]
        for r in runs
        if r["model"]["name"] == model
    ]
    assert len(seconds) == 8
    return round(min(seconds) / 60), round(max(seconds) / 60)


def test_each_study_records_its_size_and_the_page_its_training_time() -> None:
    """Each recorded study says what it ran; the study page's training times are those of the runs' manifests."""
    cells = readme_rows("| | default model | second size |", page="docs/study.md")
    times = next(row for row in cells if row[0].startswith("training time per task"))
    for model, cell in zip(("smollm2-135m", "gemma3-270m"), times[1:]):
        manifest = json.loads((ROOT / "docs" / "results" / STUDY_DIRS[model] / "manifest.json").read_text())
        assert manifest["config"]["model"] == model and manifest["config"]["size"] == "small"
        settings = manifest["config"]["size_settings"]
        # the recorded studies' preset is kept as small-v1 (settings they predate read as their defaults)
        from lexprobe.study import SIZES

        assert all(v == getattr(SIZES["small-v1"], k) for k, v in settings.items())
        assert (settings["bins"], settings["per_bin"], settings["templates"], settings["epochs"]) == (20, 5, 3, 3.0)
        exposures = next(row for row in cells if row[0].startswith("exposures per pair"))
        assert exposures[1 + list(STUDY_DIRS).index(model)] == f"{settings['templates'] * settings['epochs']:g}"
        low, high = training_minutes(model)
        assert cell == f"{low} to {high} min"


STUDY_DIRS = {"smollm2-135m": "study-smollm2", "gemma3-270m": "study-gemma3"}


def test_the_study_page_alignment_table_matches_both_studies() -> None:
    rows = readme_rows("| ontology | pair | model | best layer | mutual kNN [95% CI] |", page="docs/study.md")
    assert {(row[0], row[2]) for row in rows} == {(o, m) for o in ("hgnc", "hpo", "go") for m in STUDY_DIRS}
    for ontology, pair, model, layer, value, null, z in rows:
        path = ROOT / "docs" / "results" / STUDY_DIRS[model] / ontology / "align" / "alignment_summary.csv"
        r = pd.read_csv(path).set_index(["pair", "metric"]).loc[(pair, "mknn")]
        assert int(layer) == r["best_layer"] and null == f"{r['null_max_mean']:.3f}" and z == f"{r['z']:.0f}"
        assert value == f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        manifest = json.loads((path.parent / "manifest.json").read_text())
        assert manifest["inputs"]["model"]["name"] == model and manifest["config"]["limit"] == 1000


def test_the_study_page_lexicalization_table_matches_both_studies() -> None:
    rows = readme_rows("| ontology | field | model | tokens / item |", page="docs/study.md")
    assert {(row[0], row[1], row[2]) for row in rows} >= {("hgnc", f, m) for f in ("symbol", "id") for m in STUDY_DIRS}
    for ontology, field, model, tokens, digits, score in rows:
        path = ROOT / "docs" / "results" / STUDY_DIRS[model] / ontology / "lexicalization" / "lexicalization_fields.csv"
        r = pd.read_csv(path).set_index("field").loc[field]
        assert tokens == f"{r['tokens_mean']:.1f}" and digits == f"{r['digit_punct_share']:.2f}"
        assert score == f"{r['score']:.3f} [{r['score_ci_low']:.3f}, {r['score_ci_high']:.3f}]"


def test_the_study_bullets_quote_the_calibration_files() -> None:
    """The pooled and within-task correlations, the grouped AUCs and the features' own within-task AUCs the
    study page quotes are those shipped, and its baseline table is `baselines.csv`; the README's sentence quotes the
    same files."""
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    study = " ".join((ROOT / "docs" / "study.md").read_text(encoding="utf-8").split())
    corr = pd.read_csv(CALIBRATION_V2 / "correlations.csv")  # study v2's statistics
    gains = corr[(corr["y"] == "gain") & (corr["split"] == "withheld")].set_index(["scope", "x"])
    for scope, feature in [
        ("all", "lexicalization"),
        ("all", "alignment"),
        ("within tasks", "alignment"),
        ("within tasks", "lexicalization"),
        ("within tasks", "template_share"),
        ("within tasks", "seen_target_share"),
    ]:
        r = gains.loc[(scope, feature)]
        assert f"{r['rho']:+.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" in study, (scope, feature)
    auc = pd.read_csv(CALIBRATION_V2 / "auc.csv").set_index("model")
    r = auc.loc["features"]
    assert f"{r['auc']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" in study  # pooled, held out by field pair
    assert f"{r['within_auc']:.3f} [{r['within_ci_low']:.3f}, {r['within_ci_high']:.3f}]" in study
    for model in ("alignment itself", "lexicalization itself", "seen_target_share itself", "log_popularity itself"):
        r = auc.loc[model]
        assert f"{r['within_auc']:.3f} [{r['within_ci_low']:.3f}, {r['within_ci_high']:.3f}]" in study, model
    from lexprobe.predict import KIND_MEAN, PAPERS_RULE, PREDICTOR_RULE

    rows = readme_rows("| held out by | rule |", "docs/study.md")
    baselines = pd.read_csv(CALIBRATION / "baselines.csv")
    shown = baselines[baselines["rule"].isin([PREDICTOR_RULE, PAPERS_RULE, KIND_MEAN])]
    assert [(row[0], row[1]) for row in rows] == list(zip(shown["held_out_by"], shown["rule"]))
    for row, (_, b) in zip(rows, shown.iterrows()):
        assert row[2] == f"{b['verdicts_right']}/{b['n_units']}" and row[3] == f"{b['brier']:.3f}"
        assert row[4] == f"{b['committed_share']:.0%} ({b['committed_right']:.0%})"
        assert row[5:] == [
            f"{b['gain_mae_points']:.2f}",
            f"{b['brier_skill_over_papers_rule']:+.2f}",
            f"{b['gain_error_over_kind_mean']:.2f}",
        ]
    # the paragraph under the table quotes the same files
    own = baselines[baselines["rule"] == PREDICTOR_RULE].set_index("held_out_by")
    paper = baselines[baselines["rule"] == PAPERS_RULE].set_index("held_out_by")
    schemes = ["field pair", "ontology", "model"]
    skill = ", ".join(f"{own.loc[s, 'brier_skill_over_papers_rule']:+.2f}" for s in schemes[:2])
    assert (
        f"Brier skill over the paper's rule is {skill} and {own.loc['model', 'brier_skill_over_papers_rule']:+.2f}"
        in readme
    )
    assert "(the paper's rule: " + ", ".join(str(paper.loc[s, "verdicts_right"]) for s in schemes) + ")" in readme
    loto = pd.read_csv(CALIBRATION / "loto.csv")
    held = loto[loto["split"] == "withheld"]
    assert held.groupby("group")["model"].nunique().max() == 2  # a field pair is held out on both models
    tasks = pd.read_csv(CALIBRATION_V2 / "tasks.csv")
    assert f"{len(tasks)} units on {tasks['group'].nunique()} field pairs" in study
    assert f"{tasks['group'].nunique()} field pairs of five kinds on two models" in readme
    by_budget = pd.read_csv(CALIBRATION / "baselines_by_budget.csv")
    at5 = by_budget[(by_budget["held_out_by"] == "field pair") & (by_budget["exposures"] == 5)].set_index("rule")
    mae = at5["memorization_mae_points"]
    assert (
        f"memorization-gain error at 5 exposures: {mae[PREDICTOR_RULE]:.0f} points against the paper's rule's "
        f"{mae[PAPERS_RULE]:.0f}" in readme
    )
    nearest = baselines[(baselines["held_out_by"] == "model") & (baselines["rule"] == "nearest calibration task")]
    assert nearest["gain_mae_points"].iloc[0] < own.loc["model", "gain_mae_points"]  # as the README says
    assert (
        f"{nearest['gain_mae_points'].iloc[0]:.2f} against {own.loc['model', 'gain_mae_points']:.2f} points" in readme
    )
    shipped = pd.read_csv(CALIBRATION / "tasks.csv")
    assert f"`data/calibration/study-v2.2/`, {len(shipped)} units" in readme


@pytest.mark.parametrize("ontology", ["hgnc", "hpo", "go"])
def test_the_published_curves_pool_without_the_attention_sink(ontology: str) -> None:
    """The recorded alignment pooled past a sink prefix: no pooled token dominates any layer, and the curves have
    no step at layer 12 (where SmolLM2's sink appears) larger than their other layer-to-layer changes."""
    from lexprobe.embed import SINK_RATIO_WARN

    directory = ROOT / "docs" / "results" / f"align-{ontology}"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["config"]["prefix"] == "auto" and manifest["warnings"] == []
    for field, rows in manifest["token_norms"].items():
        assert len(rows) == 31 and max(r["max_over_median"] for r in rows) < SINK_RATIO_WARN, field
    table = pd.read_csv(directory / "alignment.csv")
    for (pair, metric), group in table.groupby(["pair", "metric"]):
        steps = group.set_index("layer")["value"].sort_index().diff().abs()
        others = steps.drop(index=[1, 12])  # 0 -> 1 leaves the context-free token embeddings
        assert steps[12] <= others.max(), (pair, metric, steps[12], others.max())


@pytest.mark.parametrize("ontology", ["hgnc", "hpo", "go"])
def test_bfloat16_moves_the_published_alignment_by_less_than_the_page_says(ontology: str) -> None:
    """docs/alignment.md's bound on the precision effect holds for each ontology's pair of runs, and each run is the
    precision its folder says."""
    results = ROOT / "docs" / "results"
    for folder, dtype in ((f"align-{ontology}", "bfloat16"), (f"align-{ontology}-float32", "float32")):
        assert json.loads((results / folder / "manifest.json").read_text())["inputs"]["model"]["dtype"] == dtype
    layers = pd.read_csv(results / "precision" / f"align-{ontology}.csv")
    assert len(layers) == len(pd.read_csv(results / f"align-{ontology}" / "alignment.csv"))
    assert layers["difference"].abs().max() <= 0.0015
    summary = pd.read_csv(results / "precision" / f"align-{ontology}_summary.csv")
    assert (summary["value_bfloat16"] - summary["value_float32"]).abs().max() <= 0.0005
    page = " ".join((ROOT / "docs" / "alignment.md").read_text(encoding="utf-8").split())
    assert "at most 0.0015 apart at any layer" in page and "at most 0.0005 at the best layers" in page


def test_the_few_shot_popularity_numbers_are_those_recorded() -> None:
    """The study page's few-shot popularity numbers (study v1) come from `lexprobe popularity`'s output, made
    from the 5-shot baselines recorded beside each study run."""
    tasks = pd.read_csv(ROOT / "docs" / "results" / "popularity-5shot" / "popularity_tasks.csv")
    assert len(tasks) == 16 and (tasks["n_correct"] == 0).sum() == 14
    study = " ".join((ROOT / "docs" / "study.md").read_text(encoding="utf-8").split())
    for _, r in tasks[tasks["n_correct"] > 0].iterrows():
        assert r["label"] == "hgnc name-to-symbol"
        rho = f"{r['rho']:+.3f} [{r['rho_ci_low']:.3f}, {r['rho_ci_high']:.3f}]"
        assert rho in study
        assert f"{r['accuracy']:.3f} [{r['accuracy_ci_low']:.3f}, {r['accuracy_ci_high']:.3f}]" in study
    manifest = json.loads((ROOT / "docs" / "results" / "popularity-5shot" / "manifest.json").read_text())
    assert manifest["config"]["shots"] == 5 and len(manifest["inputs"]["runs"]) == 16
    for run in manifest["inputs"]["runs"]:
        shots = json.loads((ROOT / run / "shots-5" / "evaluation_manifest.json").read_text())
        assert shots["config"]["shots"] == 5 and shots["config"]["baseline_only"] is True


def test_the_memorization_curves_are_those_recorded_and_show_identifiers_memorized() -> None:
    """docs/training.md's learning-curve table is the runs' learning_curve.csv, and it shows what the README says:
    trained ids memorized by 20 to 45 exposures, withheld ids never."""
    rows = readme_rows("| exposures per pair | hpo train |", "docs/training.md")
    curves = {
        o: pd.read_csv(ROOT / "docs" / "results" / "memorization" / f"{o}-name-to-id" / "learning_curve.csv")
        for o in ("hpo", "go")
    }
    assert [float(r[0]) for r in rows] == sorted(curves["hpo"]["exposures"].unique())
    for row in rows:
        for offset, ontology in ((1, "hpo"), (4, "go")):
            part = curves[ontology][curves[ontology]["exposures"] == float(row[0])].set_index("split")
            for cell, split in zip(row[offset : offset + 2], ("train", "withheld")):
                r = part.loc[split]
                assert cell == f"{r['accuracy']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
            train, withheld = part.loc["train", "loss_mean"], part.loc["withheld", "loss_mean"]
            assert row[offset + 2] == f"{train:.2f} / {withheld:.1f}"
    for ontology, curve in curves.items():
        train, withheld = curve[curve["split"] == "train"], curve[curve["split"] == "withheld"]
        assert train[train["exposures"] <= 45]["accuracy"].max() >= 0.5, ontology
        assert withheld["accuracy"].max() == 0.0, ontology
        at5 = train[train["exposures"] == 5].iloc[0]
        assert abs(at5["loss_mean"] - at5["ln_n_targets"]) < 1.5  # the format learned, not the answer
        run = ROOT / "docs" / "results" / "memorization" / f"{ontology}-name-to-id"
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["outputs"]["compute_dtype"] == "bfloat16" and manifest["outputs"]["exposures"] == 60
        assert manifest["config"]["templates"] == 1 and manifest["config"]["lr_scheduler"] == "constant_with_warmup"
    # the README quotes the trained pairs memorized at 20 exposures
    at20 = [c[(c["exposures"] == 20.0) & (c["split"] == "train")]["accuracy"].iloc[0] for c in curves.values()]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"HPO and GO ids are memorized ({at20[0]:.2f} and {at20[1]:.2f} of the trained pairs)" in readme


def test_the_training_precision_table_is_the_recorded_comparison() -> None:
    rows = readme_rows("| task | split | float32 | bfloat16 |", page="docs/training.md")
    assert len(rows) == 4
    for task, split, f32, b16, diff in rows:
        table = pd.read_csv(ROOT / "docs" / "results" / "precision" / f"train-{task.replace(' ', '-')}.csv")
        part = table[table["split"] == split].set_index("dtype")
        for cell, dtype in ((f32, "float32"), (b16, "bfloat16")):
            r = part.loc[dtype]
            assert cell == f"{r['tuned']:.2f} [{r['tuned_ci_low']:.2f}, {r['tuned_ci_high']:.2f}]"
        r = part.loc["bfloat16"]
        assert (
            diff == f"{r['bfloat16_minus_float32']:+.2f} [{r['difference_ci_low']:.2f}, {r['difference_ci_high']:.2f}]"
        )
        assert r["difference_ci_low"] <= 0 <= r["difference_ci_high"]  # "the paired intervals include 0"


def test_the_precision_benchmark_page_quotes_its_recorded_run() -> None:
    results = json.loads((ROOT / "benchmarks" / "results_precision.json").read_text())
    page = " ".join((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").split())
    ratios = results["ratios"]
    assert f"**{ratios['train_bf16_over_fp32']:.2f}x** faster than float32 with two threads" in page
    assert f"**{ratios['extract_bf16_over_fp32']:.1f}x** faster than float32" in page
    assert f"**{ratios['generate_bf16_over_fp32']:.1f}x**" in page
    assert ratios["train_bf16_over_recorded_fastest"] >= 3  # the aim, per example, against the study runs
    assert results["machine"]["load_before"][0] < 1.0  # measured on an otherwise idle machine


def test_the_training_logits_benchmark_page_quotes_its_recorded_run() -> None:
    results = json.loads((ROOT / "benchmarks" / "results_train_logits.json").read_text())
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for model, ratio in results["speedup"].items():
        plain, kept = (
            next(r for r in results["runs"] if r["model"] == model and r["mode"] == mode)
            for mode in ("every position", "labelled positions")
        )
        assert plain["adapters_identical"] and kept["adapters_identical"]  # "identical bit for bit"
        assert kept["logits_at"] == "labelled positions" and plain["logits_at"] == "every position"
        row = (
            f"| {model} | {kept['vocabulary']:,} | {kept['positions_projected_share']:.0%} | "
            f"{plain['examples_per_second']:.2f} | {kept['examples_per_second']:.2f} | **{ratio:.2f}x** |"
        )
        assert row in page
        assert ratio > 1


def test_bfloat16_moves_the_hgnc_lexicalization_by_less_than_the_pages_say() -> None:
    table = pd.read_csv(ROOT / "docs" / "results" / "precision" / "lexicalization-hgnc.csv")
    moved = table.set_index("column")["difference"].abs()
    assert moved.loc["score"].max() <= 0.0008 and moved.loc["probe_accuracy"].max() <= 0.0016
    assert moved.loc["agreement"].dropna().max() <= 0.0008 and moved.loc[["score", "probe_accuracy"]].max() <= 0.002
    made = json.loads(
        (ROOT / "docs" / "results" / "precision" / "lexicalization-hgnc-bfloat16" / "manifest.json").read_text()
    )
    assert made["inputs"]["model"]["dtype"] == "bfloat16" and made["config"]["limit"] == 2000


def test_the_main_job_benchmark_holds_what_the_pages_say() -> None:
    results = json.loads((ROOT / "benchmarks" / "results_main_job.json").read_text())
    page = " ".join((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").split())
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    fastest = min(results["main_job_seconds"]["current"])
    assert f"**{results['main_job_ratio']:.2f}x**" in page
    assert results["main_job_ratio"] >= 3 and fastest <= 40  # issue 17: at least 3x lower, at most 40 s warm
    assert f"takes {fastest:.0f} s once the embeddings are cached" in readme
    assert results["commits"]["base"] != results["commits"]["current"]
    # the same numbers: mutual kNN identical, CKA values identical, CKA nulls within 1e-10
    for key, difference in results["max_abs_difference"].items():
        column, metric = key.split(".")[1:]
        if metric == "mknn" or column in ("value", "ci_low", "ci_high", "best_layer", "p_value"):
            assert difference == 0, key
        elif column != "z":
            assert difference <= 1e-10, key
    for key, row in results["cka_null"].items():
        assert row["current_error_vs_float64"] <= 1e-10, key
        assert f"{row['current_s']:.2f} s" in page and f"{row['ratio']:.1f}x" in page


def test_the_whole_hgnc_run_is_the_one_the_pages_describe() -> None:
    run = ROOT / "docs" / "results" / "align-hgnc-all"
    manifest = json.loads((run / "manifest.json").read_text())
    readme = " ".join((ROOT / "docs" / "usage.md").read_text(encoding="utf-8").split())
    assert manifest["config"]["limit"] is None and manifest["config"]["categories"] == []
    assert manifest["inputs"]["n_items"] == 43837 and "43,837 approved genes" in readme
    neighbours = manifest["neighbours"]
    assert neighbours["search"] == "hnsw" and neighbours["recall_min"] >= 0.95  # the aim
    assert f"recall@10 of {neighbours['recall_min']:.3f} at worst and {neighbours['recall_mean']:.3f}" in readme
    assert f"{manifest['timings']['measure'] / 60:.0f} min to measure" in readme
    summary = pd.read_csv(run / "alignment_summary.csv").set_index(["pair", "metric"])
    rows = readme_rows(
        "| pair | metric | best layer | value | null (layer max) | effect | 95% CI |", "docs/alignment.md"
    )
    assert len(rows) == 6
    for pair, metric, layer, value, null, effect, ci in rows:
        r = summary.loc[(pair, metric)]
        assert (int(layer), value, null, effect) == (
            r["best_layer"],
            f"{r['value']:.3f}",
            f"{r['null_max_mean']:.3f}",
            f"{r['effect']:+.3f}",
        )
        assert ci == f"{r['ci_low']:.3f}-{r['ci_high']:.3f}"


def test_the_whole_hgnc_benchmark_is_quoted_as_recorded() -> None:
    results = json.loads((ROOT / "benchmarks" / "results_whole_hgnc.json").read_text())
    page = " ".join((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").split())
    assert f"**{results['ratio']:.2f}x**" in page
    assert f"{results['seconds']['base']:.1f} s" in page and f"{results['seconds']['current']:.1f} s" in page
    differences = results["differences"]
    assert all(v == 0 for k, v in differences.items() if k.endswith("|value") and "|mknn|" not in k)
    assert max(abs(v) for k, v in differences.items() if "|cka|" in k or "|dcka|" in k) <= 1e-10
    mknn = [-v for k, v in differences.items() if k.endswith("|mknn|value")]
    assert 0 <= min(mknn) and max(mknn) <= 0.007  # approximate lists miss a few neighbours, as the page says


def test_every_shipped_json_file_is_strict_json():
    """No NaN or Infinity in any JSON lexprobe ships (issue 18): every parser reads them."""
    import json

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    files = [*(ROOT / "docs" / "results").rglob("*.json"), *(ROOT / "data").rglob("*.json")]
    assert len(files) > 50
    for path in files:
        json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_a_written_json_file_has_null_where_a_value_is_missing(tmp_path):
    import json

    from lexprobe.runs import atomic_write_json

    path = atomic_write_json(tmp_path / "x.json", {"gain": float("nan"), "hi": float("inf"), "ok": [1.5, None]})
    assert json.loads(path.read_text()) == {"gain": None, "hi": None, "ok": [1.5, None]}
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


ZOO_HEADER = "| task | kind | baseline train | tuned train | memorization gain | baseline withheld | 5-shot withheld |"


def test_the_zoo_page_quotes_study_v2s_correlation_task_by_task() -> None:
    """docs/zoo.md's study v2 table: every number from the study's correlate/tasks.csv, every task in it."""
    tasks = pd.read_csv(ROOT / "docs" / "results" / "study-v2-smollm2" / "correlate" / "tasks.csv")
    rows = {row[0]: row for row in readme_rows(ZOO_HEADER, page="docs/zoo.md")}
    assert len(rows) == len(tasks)

    def ci(t, name):
        return f"{t[name]:+.2f} [{t[name + '_ci_low']:+.2f}, {t[name + '_ci_high']:+.2f}]"

    for _, t in tasks.iterrows():
        row = rows[f"{t['ontology']} {t['task']}"]
        assert row[2:6] == [
            f"{t['baseline_train']:.2f}",
            f"{t['tuned_train']:.2f}",
            ci(t, "memorization_gain"),
            f"{t['baseline_withheld']:.2f}",
        ]
        assert row[6:10] == [
            f"{t['fewshot_withheld']:.2f}",
            f"{t['majority_withheld']:.2f}",
            f"{t['tuned_withheld']:.2f}",
            ci(t, "generalization_gain"),
        ]
        assert row[10] == ci(t, "tuned_minus_fewshot_withheld")


def test_the_zoo_page_quotes_study_v2s_held_out_evaluation() -> None:
    table = pd.read_csv(ROOT / "docs" / "results" / "study-v2-smollm2" / "correlate" / "baselines.csv")
    rows = {row[0]: row for row in readme_rows("| rule (fitted without the held-out field pair) |", page="docs/zoo.md")}
    assert len(rows) == len(table)
    for _, r in table.iterrows():
        rho = "-" if pd.isna(r["gain_spearman"]) else f"{r['gain_spearman']:+.2f}"
        assert rows[r["rule"]][1:] == [
            f"{int(r['verdicts_right'])}/{int(r['n_units'])}",
            f"{r['gain_mae_points']:.2f}",
            rho,
            f"{r['relative_error']:.2f}",
        ]


def test_the_study_page_cost_table_sums_the_runs_manifests() -> None:
    """docs/study.md's cost of study v2 per model: the training, evaluation and 5-shot seconds the manifests of
    the calibration's runs record, summed."""
    rows = readme_rows("| model | units | training (min per task) |", page="docs/study.md")
    runs = json.loads((CALIBRATION_V2 / "manifest.json").read_text())["inputs"]["runs"]
    assert {row[0] for row in rows} == STUDY_MODELS
    for model, units, training, evaluation, fewshot, total, core in rows:
        mine = [ROOT / r["run"] for r in runs if r["model"]["name"] == model]
        train = [json.loads((run / "manifest.json").read_text())["outputs"]["seconds"] for run in mine]
        ev = sum(json.loads((run / "evaluation_manifest.json").read_text())["outputs"]["seconds"] for run in mine)
        few = sum(
            json.loads(sorted(run.glob("shots-*/evaluation_manifest.json"))[-1].read_text())["outputs"]["seconds"]
            for run in mine
        )
        assert units == str(len(mine))
        assert training == f"{sum(train) / 3600:.2f} h ({min(train) / 60:.1f} to {max(train) / 60:.1f})"
        assert evaluation == f"{ev / 3600:.2f} h" and fewshot == f"{few / 3600:.2f} h"
        assert (
            total == f"{(sum(train) + ev + few) / 3600:.1f} h" and core == f"{2 * (sum(train) + ev + few) / 3600:.1f}"
        )


def test_the_prediction_page_quotes_the_shipped_baselines() -> None:
    """docs/prediction.md carries the shipped calibration's hold-out scores (all three ways, every rule) and its
    within-kind scores as `lexprobe correlate` writes them."""
    from lexprobe.predict._correlate import (
        budget_skill_markdown,
        holdout_markdown,
        kind_skill_markdown,
        surface_markdown,
    )

    page = (ROOT / "docs" / "prediction.md").read_text(encoding="utf-8")
    assert holdout_markdown(pd.read_csv(CALIBRATION / "baselines.csv")).strip() in page
    assert kind_skill_markdown(pd.read_csv(CALIBRATION / "baselines_by_kind.csv")).strip() in page
    assert budget_skill_markdown(pd.read_csv(CALIBRATION / "baselines_by_budget.csv")).strip() in page
    surface = pd.read_csv(CALIBRATION / "surface.csv")
    assert surface_markdown(surface).strip() in page
    # the page's text quotes the lexicalized -> lexicalized kind's surface check of alignment z
    lex = surface[(surface["kind"] == "lexicalized -> lexicalized") & (surface["feature"] == "alignment_z")]
    lex = lex.set_index("surface")["rho"]
    text = " ".join(page.split())
    assert f"targets by {lex['target_digit_share']:+.2f}, and with their length in tokens by" in text
    assert f"with their length in tokens by {lex['target_tokens']:+.2f}:" in text


def test_the_shipped_surface_check_is_what_surface_check_makes_of_the_shipped_tables() -> None:
    """surface.csv checks both within-kind features the predictor measures on items, alignment z (generalization)
    and target_tokens (memorization; not against itself), in every kind, with the values surface_check gives on
    the shipped items and tasks; docs/prediction.md's prose quotes the memorization feature's rows."""
    from lexprobe.predict import SURFACES, fit_predictor, read_correlate_tables, surface_check

    surface = pd.read_csv(CALIBRATION / "surface.csv")
    items, tasks = read_correlate_tables([CALIBRATION / "items.csv.gz"], [CALIBRATION / "tasks.csv"])
    remade = surface_check(items, fit_predictor(items, tasks, loto=False).tasks)
    pd.testing.assert_frame_equal(remade, surface, check_dtype=False, atol=1e-5)
    for kind, part in surface.groupby("kind"):
        checked = part.groupby("feature")["surface"].apply(list).to_dict()
        assert checked == {"alignment_z": list(SURFACES), "target_tokens": ["source_tokens", "target_digit_share"]}
        assert set(zip(part["feature"], part["gain"])) == {
            ("alignment_z", "generalization"),
            ("target_tokens", "memorization"),
        }, kind
    memorization = surface[surface["feature"] == "target_tokens"].set_index(["kind", "surface"])["rho"]
    page = " ".join((ROOT / "docs" / "prediction.md").read_text(encoding="utf-8").split())
    digits = memorization.xs("target_digit_share", level="surface")
    assert f"digits and punctuation does ({digits['text -> category']:+.2f}, flagged)" in page
    assert (
        f"{digits['identifier -> lexicalized']:+.2f} within identifier -> lexicalized, "
        f"{digits['lexicalized -> lexicalized']:+.2f} within lexicalized -> lexicalized and "
        f"{digits['lexicalized -> identifier']:+.2f} within lexicalized -> identifier tasks" in page
    )


def test_the_study_page_spread_table_is_the_recorded_spread() -> None:
    """docs/study.md's run-to-run spread: `lexprobe spread` of study v2 on the default model and its seed-1 rerun."""
    spread_dir = ROOT / "docs" / "results" / "study-v2-smollm2-seed1" / "spread"
    spread = pd.read_csv(spread_dir / "spread.csv")
    rows = {row[0]: row for row in readme_rows("| task (smollm2-135m) | memorization gain", page="docs/study.md")}
    assert len(rows) == len(spread) >= 2
    for _, r in spread.iterrows():
        row = rows[f"{r['ontology']} {r['task']}"]
        assert row[1] == f"{r['memorization_gain_seed0']:+.2f} / {r['memorization_gain_seed1']:+.2f}"
        assert row[2] == f"{r['generalization_gain_seed0']:+.2f} / {r['generalization_gain_seed1']:+.2f}"
        assert row[3] == f"{r['generalization_gain_spread']:.2f}" and row[4] == ("yes" if r["verdicts_agree"] else "no")
    manifest = json.loads((spread_dir / "manifest.json").read_text())
    assert [s["seed"] for s in manifest["inputs"]["studies"]] == [0, 1]
    assert manifest["config"]["model"] == "smollm2-135m"


def test_no_published_page_keeps_a_template_placeholder() -> None:
    """The docs are filled from the result files; a placeholder left behind is a number never published."""
    import re
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    pages = [ROOT / p for p in tracked] or sorted(ROOT.glob("**/*.md"))
    left = {
        str(p.relative_to(ROOT)): m.group(0)
        for p in pages
        if p.is_file() and ".venv" not in p.parts
        for m in [re.search(r"__[A-Z][A-Z_]+__|@@[A-Z_]+@@|\{[a-z_]+\}", p.read_text(encoding="utf-8"))]
        if m
    }
    assert not left, left


def test_the_prediction_page_quotes_the_calibration_v3_candidate() -> None:
    """docs/prediction.md's "Calibration v3 so far" section is the candidate's files: its three hold-out tables
    as `lexprobe correlate` writes them, and the counts and scores its text quotes."""
    from lexprobe.predict._correlate import holdout_markdown

    folder = ROOT / "docs" / "results" / "calibration-v3-partial"
    page = (ROOT / "docs" / "prediction.md").read_text(encoding="utf-8")
    section = page[page.index("## Calibration v3 so far") :]
    baselines = pd.read_csv(folder / "baselines.csv")
    assert holdout_markdown(baselines).strip() in section
    tasks = pd.read_csv(folder / "tasks.csv")
    text = " ".join(section.split())  # the prose, its line breaks aside
    assert f"{len(tasks)} units on {tasks['group'].nunique()} field pairs" in text
    new = tasks["task"].str.contains("parent|definition|enzyme_id|rgd|umls|snomed")
    gain, low = tasks["generalization_gain"], tasks["generalization_gain_ci_low"]
    partial = new & (gain > 0) & (gain < 0.5) & (low > 0)
    assert f"of which {int(partial.sum())} units of the new field pairs" in text

    def row(scheme: str, rule: str) -> pd.Series:
        return baselines[(baselines["held_out_by"] == scheme) & (baselines["rule"].str.startswith(rule))].iloc[0]

    by_model = (row("model", "predictor")["gain_mae_points"], row("model", "nearest")["gain_mae_points"])
    assert f"({by_model[0]:.2f} against {by_model[1]:.2f} points;" in text
    a, b, c = (int(row(s, "predictor")["verdicts_right"]) for s in ("field pair", "ontology", "model"))
    assert f"({a}, {b} and {c} of {len(tasks)}," in text
    holdout = pd.read_csv(folder / "holdout.csv")
    new_units = holdout["task"].str.contains("parent|definition|enzyme_id|rgd|umls|snomed")
    for scheme, quoted in (("field pair", "it is right on {}."), ("model", "right on only {} of the 24:")):
        part = holdout[(holdout["held_out_by"] == scheme) & new_units]
        assert len(part) == 24
        assert quoted.format(int((part["verdict"] == part["measured_verdict"]).sum())) in text, scheme
