"""``lexprobe correlate`` and ``lexprobe predict``: relate features to fine-tuning outcomes; predict a new task."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from lexprobe.cli._common import MAX_RESAMPLES, console, fail, markup, print_json, print_table
from lexprobe.cli._options import (
    ModelOptions,
    NoFiguresOption,
    OntologyOption,
    OverwriteOption,
    TaskOption,
    WaitOption,
    command,
    hold_run_dir,
)


def _num(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _ci(low, high) -> str:
    return f"[{_num(low)}, {_num(high)}]"


def _gain(row: dict, name: str) -> str:
    return f"{_num(row[f'{name}_gain'], '+.3f')} {_ci(row[f'{name}_gain_ci_low'], row[f'{name}_gain_ci_high'])}"


def _print_loto(loto, summary: dict) -> None:
    from rich.table import Table

    table = Table(title="held out by field pair: each task predicted by a predictor fitted without it and its reverse")
    for column in (
        "task",
        "predicted mem.",
        "measured mem.",
        "predicted gen. [95% CI]",
        "measured gen. [95% CI]",
        "verdict",
        "measured",
    ):
        table.add_column(column, justify="left" if column in ("task", "verdict", "measured") else "right")
    keys = ["label", "model"] if "model" in loto else ["label"]
    several = "model" in loto and loto["model"].nunique() > 1
    for key, part in loto.groupby(keys, sort=False):
        mem = part[part["split"] == "train"].iloc[0]
        gen = part[part["split"] == "withheld"].iloc[0]
        table.add_row(
            f"{key[0]} ({key[1]})" if several else key[0],
            _num(mem["predicted_gain"], "+.3f"),
            _num(mem["measured_gain"], "+.3f"),
            f"{_num(gen['predicted_gain'], '+.3f')} {_ci(gen['predicted_ci_low'], gen['predicted_ci_high'])}",
            f"{_num(gen['measured_gain'], '+.3f')} {_ci(gen['measured_ci_low'], gen['measured_ci_high'])}",
            gen["verdict"],
            gen["measured_verdict"],
        )
    print_table(table)
    console.print(
        f"leave-one-field-pair-out over {summary['n_tasks']} tasks: verdicts right {summary['verdict_accuracy']:.0%}; "
        f"mean abs. error memorization {summary['memorization_mae']:.3f}, generalization "
        f"{summary['generalization_mae']:.3f}; Spearman (predicted, measured) memorization "
        f"{_num(summary['memorization_rho'], '.2f')}, generalization {_num(summary['generalization_rho'], '.2f')}"
    )


def _print_evaluation(result, out: Path) -> None:

    from lexprobe.predict import loto_summary

    auc = result.auc.set_index("model")
    feat, pop = auc.loc["features"], auc.iloc[1]
    if isinstance(feat["note"], str) and feat["note"]:
        console.print(f"AUC of 'gained on withheld' (leave one field pair out): not estimable ({feat['note']})")
    else:
        console.print(
            f"'gained on withheld', logistic AUC, leave one field pair out ({int(feat['n_positive'])} of "
            f"{int(feat['n'])} items gained; 95% CI: cluster bootstrap over units): features {feat['auc']:.3f} "
            f"{_ci(feat['ci_low'], feat['ci_high'])}, within tasks {_num(feat['within_auc'])}; popularity only "
            f"{pop['auc']:.3f} {_ci(pop['ci_low'], pop['ci_high'])}"
        )
    if result.loto is None:
        console.print("the predictor's hold-out evaluation needs runs of 2 or more field pairs")
        return
    _print_loto(result.loto, loto_summary(result.loto))
    _print_baselines(result.baselines)
    console.print(f"hold-out: {out / 'holdout.csv'}; baselines: {out / 'baselines.csv'}; {out / 'summary.md'}")


def _print_baselines(baselines) -> None:
    """The predictor beside the baselines, one table per hold-out scheme."""
    from rich.table import Table

    for scheme, part in (
        baselines.groupby("held_out_by", sort=False) if "held_out_by" in baselines else [("field pair", baselines)]
    ):
        table = Table(title=f"held out by {scheme}: the predictor beside the baselines")
        for column in (
            "rule",
            "verdicts right",
            "Brier",
            "log loss",
            "committed (right)",
            "gen. gain MAE (points)",
            "mem. gain MAE",
            "Brier skill / paper's rule",
            "gain error / kind mean's",
        ):
            table.add_column(column, justify="left" if column == "rule" else "right")
        for r in part.to_dict("records"):
            table.add_row(
                r["rule"],
                f"{r['verdicts_right']}/{r['n_units']}",
                _num(r.get("brier")),
                _num(r.get("log_loss")),
                f"{_num(r.get('committed_share'), '.0%')} ({_num(r.get('committed_right'), '.0%')})",
                _num(r["gain_mae_points"], ".2f"),
                _num(r.get("memorization_mae_points"), ".2f"),
                _num(r.get("brier_skill_over_papers_rule"), "+.2f"),
                _num(r.get("gain_error_over_kind_mean"), ".2f"),
            )
        print_table(table)


Runs = Annotated[
    list[Path],
    typer.Argument(
        metavar="RUN_DIR",
        help="Evaluated `lexprobe train` run directories, one per task, or `lexprobe study` folders (their "
        "evaluated tasks).",
    ),
]
Items = Annotated[
    list[Path],
    typer.Option(
        "--items",
        help="Instead of runs: an items table (the columns of a correlate output's items.csv[.gz], optional "
        "field_pair and alignment_z) to re-run the whole evaluation on; repeatable (tables are pooled).",
    ),
]
TasksFile = Annotated[
    list[Path],
    typer.Option(
        "--tasks", help="With --items: the tasks.csv whose gain intervals and alignment z to use; repeatable."
    ),
]
Curves = Annotated[
    list[Path],
    typer.Option(
        "--curves",
        help="With --items and --tasks: train runs with a scored learning curve (`lexprobe evaluate RUN "
        "--checkpoints all`), or folders of them, that retrained calibration units on their splits; each such "
        "unit is replaced by one unit per budget of its curve. Repeatable.",
    ),
]


@command(model="runtime")
def correlate_cmd(
    runs: Runs = None,
    items: Items = [],  # noqa: B006  # a Typer default, never mutated
    tasks_file: TasksFile = [],  # noqa: B006
    curves: Curves = [],  # noqa: B006
    out: Path = typer.Option(Path("runs/correlate"), "--out", "-o", help="Output folder."),
    k: int = typer.Option(10, "--k", min=1, help="Neighbours of the per-item alignment (mutual kNN)."),
    permutations: int = typer.Option(
        100, "--permutations", min=2, max=MAX_RESAMPLES, help="Permutations of the task alignment's null."
    ),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", min=10, max=MAX_RESAMPLES, help="Bootstrap resamples of the intervals."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="Seed of the nulls, bootstraps and cross-validation folds."
    ),
    no_figures: NoFiguresOption = False,
    overwrite: OverwriteOption = False,
    wait: WaitOption = False,
    model_options: ModelOptions = None,  # type: ignore[assignment]  # from @command: --dtype, --device...
    quiet: bool = False,
) -> None:
    """Join per-item fine-tuning outcomes with alignment, lexicalization and popularity; correlate; evaluate
    the predictor holding out one field pair at a time, beside the baselines (two or more field pairs)."""
    from lexprobe.cli._progress import progress_display

    from lexprobe.predict import FeatureConfig, correlate, write_correlation
    from lexprobe.runs import ensure_writable_dir, prepare_run_dir

    runs = _checked_inputs(runs, items, tasks_file, curves)
    ensure_writable_dir(out)
    hold_run_dir(out, wait=wait)
    config = FeatureConfig(
        k=k,
        permutations=permutations,
        seed=seed,
        dtype=model_options.resolved_dtype(),
        batch_size=model_options.batch_size,
    )
    listed = ([str(p) for p in items] if len(items) > 1 else str(items[0])) if items else None
    same = _correlate_settings(config, listed, curves, bootstrap=bootstrap, seed=seed)
    prepare_run_dir(out, "correlate", same, overwrite=overwrite)
    with progress_display(quiet) as progress:
        if items:
            result = _evaluate_tables(items, tasks_file, curves, listed, bootstrap=bootstrap, seed=seed)
        else:
            result = correlate(
                runs,
                config=config,
                n_boot=bootstrap,
                seed=seed,
                progress=progress,
                device=model_options.device,
                device_map=model_options.device_map,
            )
        write_correlation(result, out, figures=not no_figures)
    if items:
        _print_evaluation(result, out)
        return
    print_table(_tasks_table(result.tasks))
    print_table(_correlations_table(result.correlations))
    _print_evaluation(result, out)
    console.print(
        f"per item: {out / 'items.csv'}; per task: {out / 'tasks.csv'}; use {out} as `lexprobe predict --calibration`"
    )


def _checked_inputs(runs: list[Path], items: list[Path], tasks_file: list[Path], curves: list[Path]) -> list[Path]:
    """The evaluated runs (those of study folders too), after checking which inputs go together (exit 2)."""
    if bool(runs) == bool(items):
        raise fail("give either run directories or --items ITEMS.csv, not both and not neither", 2)
    if tasks_file and not items:
        raise fail("--tasks goes with --items", 2)
    if curves and not tasks_file:
        raise fail("--curves goes with --items and --tasks (the units the curves retrained)", 2)
    if runs:
        from lexprobe.study import evaluated_runs

        runs = evaluated_runs(runs)
    return runs


def _correlate_settings(
    config: Any, listed: list[str] | str | None, curves: list[Path], *, bootstrap: int, seed: int
) -> dict[str, Any]:
    """What a run already in --out must share: the items tables (``listed``) and curves, or the feature settings."""
    if listed is not None:
        same = {"config.items": listed, "config.n_boot": bootstrap, "seed": seed}
        if curves:
            same["config.curves"] = [str(p) for p in curves]
    else:
        features = {k: v for k, v in config.to_dict().items() if k != "batch_size"}
        same = {"config.features": features, "config.n_boot": bootstrap, "seed": seed}
    return same


def _evaluate_tables(
    items: list[Path],
    tasks_file: list[Path],
    curves: list[Path],
    listed: list[str] | str,
    *,
    bootstrap: int,
    seed: int,
) -> Any:
    """``--items``: re-run the evaluation on the pooled items tables (with ``--curves``, one unit per budget)."""
    from lexprobe.predict import evaluate_items, read_calibration_manifest, read_correlate_tables

    table, given = read_correlate_tables(items, tasks_file)
    named = [str(p) for p in tasks_file]
    manifest = {
        "stage": "correlate",
        "config": {"items": listed, "tasks": (named if len(named) > 1 else named[0]) if named else None},
        "inputs": {"items": listed},
        "seed": seed,
    }
    # an items table of a calibration folder was measured with that folder's feature settings
    measured = {
        json.dumps(f, sort_keys=True)
        for p in items
        if (f := read_calibration_manifest(p.parent).get("config", {}).get("features"))
    }
    if len(measured) == 1:
        manifest["config"]["features"] = json.loads(measured.pop())
    if curves:
        from lexprobe.predict import curve_units, find_curve_runs

        curve_runs = find_curve_runs(curves)
        table, given = curve_units(table, given, curve_runs, seed=seed)
        manifest["config"]["curves"] = [str(p) for p in curves]
        manifest["inputs"]["curve_runs"] = [str(p) for p in curve_runs]
    return evaluate_items(table, given, n_boot=bootstrap, seed=seed, manifest=manifest)


def _tasks_table(tasks: Any) -> Any:
    """Per task: its features beside its measured gains."""
    from rich.table import Table

    table = Table(title="tasks: features (no training needed) beside measured gains [paired bootstrap 95% CI]")
    for column in (
        "task",
        "n",
        "layer",
        "align z",
        "align effect",
        "lexical.",
        "log pop.",
        "memorization",
        "generalization",
    ):
        table.add_column(column, justify="left" if column == "task" else "right")
    for row in tasks.to_dict("records"):
        table.add_row(
            f"{row['label']} ({row['model']})",
            f"{row['n_train']}+{row['n_withheld']}",
            str(row["layer"]),
            _num(row["alignment_z"], ".1f"),
            _num(row["alignment_effect"], "+.3f"),
            _num(row["lexicalization"]),
            _num(row["log_popularity"], ".2f"),
            _gain(row, "memorization"),
            _gain(row, "generalization"),
        )
    return table


def _correlations_table(correlations: Any) -> Any:
    """The Spearman correlations over the items of all tasks pooled."""
    from rich.table import Table

    corr = Table(title="Spearman correlations over items, all tasks pooled [bootstrap 95% CI]")
    for column in ("relation", "items", "rho [95% CI]", "p", "note"):
        corr.add_column(column, justify="left" if column in ("relation", "note") else "right")
    for row in correlations[correlations["scope"] == "all"].to_dict("records"):
        corr.add_row(
            f"{row['relation']} ({row['split']})",
            str(row["n"]),
            f"{_num(row['rho'], '+.3f')} {_ci(row['ci_low'], row['ci_high'])}",
            _num(row["p_value"], ".2g"),
            row["note"] or "",
        )
    return corr


PerBin = Annotated[
    int,
    typer.Option(
        "--per-bin",
        min=1,
        help="Pairs per bin in each of train and withheld; the default is the calibration set's (100 + 100 pairs).",
    ),
]
Exposures = Annotated[
    float | None,
    typer.Option(
        "--exposures",
        min=0.001,
        help="The budget you plan: times each pair is shown in training (default: the calibration's). A "
        "budget the calibration did not measure is named as outside it.",
    ),
]
PredictionJson = Annotated[
    bool,
    typer.Option("--json", help="Print the verdict, gains, features and warnings as one JSON object (NaN as null)."),
]


@command(model="full")
def predict_cmd(
    ontology: OntologyOption,
    task: TaskOption,
    calibration: list[Path] = typer.Option(
        [], "--calibration", "-c", help="A `lexprobe correlate` (or `lexprobe study`) output; repeatable."
    ),
    no_shipped: bool = typer.Option(False, "--no-shipped", help="Leave out the calibration set lexprobe ships."),
    bins: int = typer.Option(20, "--bins", min=1, help="Popularity bins of the split the features are measured on."),
    per_bin: PerBin = 5,
    bootstrap: int = typer.Option(
        200, "--bootstrap", min=10, max=MAX_RESAMPLES, help="Task-bootstrap refits for the intervals."
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the split, nulls and bootstraps."),
    exposures: Exposures = None,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Also write the prediction, features and manifest to this folder."
    ),
    overwrite: OverwriteOption = False,
    wait: WaitOption = False,
    as_json: PredictionJson = False,
    model_options: ModelOptions = None,  # type: ignore[assignment]  # from @command: --model, --dtype...
    quiet: bool = False,
) -> None:
    """Will fine-tuning on this task generalize? Measures the task's features (no training) and predicts."""
    from lexprobe.cli._progress import progress_display

    from lexprobe.predict import FeatureConfig, predict_task, write_prediction
    from lexprobe.runs import ensure_writable_dir, prepare_run_dir, settings_of

    model = model_options.model
    dtype = model_options.resolved_dtype()
    if out is not None:
        ensure_writable_dir(out)
        hold_run_dir(out, wait=wait)
        asked = {"ontology": ontology, "task": task, "model": model, "bins": bins, "per_bin": per_bin}
        asked["dtype"] = dtype
        asked |= {"n_boot": bootstrap, "shipped_calibration": not no_shipped, "exposures": exposures}
        asked["calibration"] = [str(p) for p in calibration]
        prepare_run_dir(out, "predict", settings_of(asked) | {"seed": seed}, overwrite=overwrite)
    with progress_display(quiet, json=as_json) as progress:
        result = predict_task(
            ontology,
            task,
            model=model,
            calibration=calibration,
            shipped=not no_shipped,
            bins=bins,
            per_bin=per_bin,
            n_boot=bootstrap,
            seed=seed,
            exposures=exposures,
            config=FeatureConfig(dtype=dtype, batch_size=model_options.batch_size),
            load=model_options.load,  # after the task and the calibration folders are checked
            progress=progress,
        )
    if out is not None:
        write_prediction(result, out)
    if as_json:
        print_json(_prediction_json(result, out))
        return
    _print_verdict(result.prediction, result.predictor)
    if result.budgets is not None and result.budgets["exposures"].nunique() >= 2:
        print_table(_budgets_table(result.budgets))
    print_table(_features_table(result.task, result.predictor.tasks, bins, per_bin))
    _print_why_and_record(result)
    if out is not None:
        console.print(f"written to {out}")


def _print_verdict(p: dict[str, Any], predictor: Any) -> None:
    """The verdict with its probabilities, the predicted gains, the thresholds and what is outside the calibration."""
    from lexprobe.predict import VERDICTS

    console.print(
        f"[bold]{markup(p['label'])} ({markup(p['model'])}, {_num(p['exposures'], 'g')} exposures): "
        f"{markup(p['verdict'])} (p = {p['probability']:.2f})[/bold]",
        markup=True,
    )
    console.print(
        "probabilities: " + "; ".join(f"{v} {p[f'p: {v}']:.2f}" for v in VERDICTS) + f" (kind: {p['kind']}; "
        f"from {markup(p['rule'])})"
    )
    if not p["committed"]:
        console.print(
            f"[yellow]{markup(p['stated_verdict'])}[/yellow]: no verdict reaches p = {predictor.estimator.commit:g}",
            markup=True,
        )
    console.print(
        f"predicted generalization gain {p['predicted_generalization_gain']:+.3f} "
        f"{_ci(p['predicted_generalization_gain_ci_low'], p['predicted_generalization_gain_ci_high'])}; "
        f"memorization gain {p['predicted_memorization_gain']:+.3f} "
        f"{_ci(p['predicted_memorization_gain_ci_low'], p['predicted_memorization_gain_ci_high'])} "
        f"(share of pairs gained minus lost; {predictor.confidence:.0%} interval from the calibration's held-out "
        "errors)"
    )
    thresholds = predictor.thresholds
    console.print(
        "a measured verdict needs a gain interval above 0: about "
        f"{_num(thresholds['withheld'], '+.3f')} on withheld and {_num(thresholds['train'], '+.3f')} on train "
        f"pairs ({predictor.threshold_notes['withheld']})"
    )
    for reason in p["outside"]:
        console.print(f"[yellow]outside the calibration:[/yellow] {markup(reason)}", markup=True)


def _budgets_table(budgets: Any) -> Any:
    """The predicted gains at each budget of the calibration."""
    from rich.table import Table

    by_budget = Table(title="predicted gain by budget (interval; * outside the calibration: its fallback rule)")
    for column in ("exposures", "memorization gain", "generalization gain"):
        by_budget.add_column(column, justify="right")
    for exposures, rows in budgets.groupby("exposures", sort=True):
        cells = []
        for split in ("train", "withheld"):
            r = rows[rows["split"] == split].iloc[0]
            cells.append(
                f"{r['predicted_gain']:+.3f} {_ci(r['ci_low'], r['ci_high'])}" + (" *" if r["outside"] else "")
            )
        by_budget.add_row(_num(exposures, "g"), *cells)
    return by_budget


def _features_table(t: dict[str, Any], cal: Any, bins: int, per_bin: int) -> Any:
    """The task's features beside the range of the calibration tasks' (``cal``)."""
    from rich.table import Table

    features = Table(title=f"features of {t['n_items']} pairs (split {bins} bins x {per_bin} x 2), calibration range")
    for column in ("feature", "this task", "calibration tasks (min - max)"):
        features.add_column(column, justify="left" if column == "feature" else "right")
    for key, name, spec in (
        ("alignment_z", f"alignment z (layer {t['layer']}, vs layer-max null)", ".1f"),
        ("alignment_effect", "alignment effect (mutual kNN - null)", "+.3f"),
        ("lexicalization", "lexicalization (lower side)", ".3f"),
        ("source_lexicalization", "lexicalization of the source", ".3f"),
        ("target_lexicalization", "lexicalization of the target", ".3f"),
        ("log_popularity", "log popularity (mean)", ".2f"),
    ):
        span = f"{_num(cal[key].min(), spec)} - {_num(cal[key].max(), spec)}" if key in cal else "-"
        features.add_row(name, _num(t[key], spec), span)
    return features


def _print_why_and_record(result: Any) -> None:
    """Why (the features' pushes), how well the predictor did held out, the measured gains if known, warnings."""
    p, predictor = result.prediction, result.predictor
    reasons = ", ".join(
        f"{r['feature']} {r['task_mean']:.3g} (calibration mean {r['calibration_mean']:.3g}): "
        f"{r['gain_points']:+.1f} points"
        for r in p["reasons"]
    )
    if reasons:
        console.print(f"why (push within its kind on the predicted generalization gain, largest first): {reasons}")
    if predictor.baselines is not None and "held_out_by" in predictor.baselines:
        from lexprobe.predict import PAPERS_RULE, PREDICTOR_RULE

        for scheme, b in predictor.baselines.groupby("held_out_by", sort=False):
            own = b[b["rule"] == PREDICTOR_RULE].iloc[0]
            paper = b[b["rule"] == PAPERS_RULE].iloc[0]
            console.print(
                f"how well it predicts, held out by {scheme} ({int(own['n_units'])} units): verdicts right "
                f"{int(own['verdicts_right'])} (the paper's rule {int(paper['verdicts_right'])}); Brier "
                f"{own['brier']:.3f} ({paper['brier']:.3f}); committed on {own['committed_share']:.0%}, right on "
                f"{_num(own['committed_right'], '.0%')} of those; generalization gain error "
                f"{own['gain_mae_points']:.2f} points ({paper['gain_mae_points']:.2f})"
            )
    if result.measured is not None:
        m = result.measured
        console.print(
            f"this task is in the calibration and was left out of the fit (with its reverse, every model's run); "
            f"measured with {result.prediction['model']}: memorization "
            f"{m['memorization_gain']:+.3f}, generalization {m['generalization_gain']:+.3f}"
        )
    for warning in p["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {markup(warning)}", markup=True)


def _prediction_json(result, out: Path | None) -> dict:
    """``predict --json``: the verdict, predicted gains with intervals, the task's features, how well the
    predictor did held out beside its baselines, and the warnings."""
    predictor = result.predictor
    return {
        "out": None if out is None else str(out),
        "prediction": result.prediction,
        "features": result.task,
        "thresholds": predictor.thresholds,
        "holdout": None if predictor.baselines is None else predictor.baselines.to_dict(orient="records"),
        "measured": result.measured,
        "budgets": None if result.budgets is None else result.budgets.to_dict(orient="records"),
    }
