"""``lexprobe correlate`` and ``lexprobe predict``: relate features to fine-tuning outcomes; predict a new task."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import typer
from lexprobe.cli._common import MAX_RESAMPLES, console, handle_errors, is_terminal


def _num(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _ci(low, high) -> str:
    return f"[{_num(low)}, {_num(high)}]"


def _gain(row: dict, name: str) -> str:
    return f"{_num(row[f'{name}_gain'], '+.3f')} {_ci(row[f'{name}_gain_ci_low'], row[f'{name}_gain_ci_high'])}"


def _status(quiet: bool):
    import contextlib

    if quiet or not is_terminal():
        return contextlib.nullcontext(None)
    return console.status("working")


def _print_loto(loto, summary: dict) -> None:
    from rich.table import Table

    table = Table(title="leave-one-task-out: each task predicted by a predictor fitted without it")
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
    console.print(table)
    console.print(
        f"leave-one-task-out over {summary['n_tasks']} tasks: verdicts right {summary['verdict_accuracy']:.0%}; "
        f"mean abs. error memorization {summary['memorization_mae']:.3f}, generalization "
        f"{summary['generalization_mae']:.3f}; Spearman (predicted, measured) memorization "
        f"{_num(summary['memorization_rho'], '.2f')}, generalization {_num(summary['generalization_rho'], '.2f')}"
    )


@handle_errors
def correlate_cmd(
    runs: list[Path] = typer.Argument(..., help="Evaluated `lexprobe train` run directories, one per task."),
    out: Path = typer.Option(Path("runs/correlate"), "--out", help="Output directory."),
    k: int = typer.Option(10, "--k", help="Neighbours of the per-item alignment (mutual kNN)."),
    permutations: int = typer.Option(
        100, "--permutations", min=2, max=MAX_RESAMPLES, help="Permutations of the task alignment's null."
    ),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", min=10, max=MAX_RESAMPLES, help="Bootstrap resamples of the intervals."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the nulls, bootstraps and cross-validation folds."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip the figures."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run already in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Join per-item fine-tuning outcomes with alignment, lexicalization and popularity; correlate; evaluate
    the predictor leave-one-task-out (three or more tasks)."""
    from rich.table import Table

    from lexprobe.predict import FeatureConfig, correlate, loto_summary, write_correlation
    from lexprobe.runs import ensure_writable_dir, prepare_run_dir

    ensure_writable_dir(out)
    config = FeatureConfig(k=k, permutations=permutations, seed=seed)
    same = {"config.features": dataclasses.asdict(config), "config.n_boot": bootstrap, "seed": seed}
    prepare_run_dir(out, "correlate", same, overwrite=overwrite)
    with _status(quiet) as status:
        progress = (lambda stage, done, total: status.update(f"{stage} {done}/{total}")) if status else None
        result = correlate(runs, config=config, n_boot=bootstrap, seed=seed, progress=progress)
    write_correlation(result, out, figures=not no_figures)

    tasks = Table(title="tasks: features (no training needed) beside measured gains [paired bootstrap 95% CI]")
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
        tasks.add_column(column, justify="left" if column == "task" else "right")
    for row in result.tasks.to_dict("records"):
        tasks.add_row(
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
    console.print(tasks)
    corr = Table(title="Spearman correlations over items, all tasks pooled [bootstrap 95% CI]")
    for column in ("relation", "items", "rho [95% CI]", "p", "note"):
        corr.add_column(column, justify="left" if column in ("relation", "note") else "right")
    for row in result.correlations[result.correlations["scope"] == "all"].to_dict("records"):
        corr.add_row(
            f"{row['relation']} ({row['split']})",
            str(row["n"]),
            f"{_num(row['rho'], '+.3f')} {_ci(row['ci_low'], row['ci_high'])}",
            _num(row["p_value"], ".2g"),
            row["note"] or "",
        )
    console.print(corr)
    auc = result.auc.set_index("model")
    feat, pop, diff = (auc.iloc[i] for i in range(3))
    if math.isnan(feat["auc"]):
        console.print(f"AUC of 'gained on withheld': not computed ({feat['note']})")
    else:
        console.print(
            f"'gained on withheld', 5-fold cross-validated logistic AUC ({int(feat['n_positive'])} of {int(feat['n'])} "
            f"items gained): features {feat['auc']:.3f} {_ci(feat['ci_low'], feat['ci_high'])} vs popularity only "
            f"{pop['auc']:.3f} {_ci(pop['ci_low'], pop['ci_high'])}; difference {diff['auc']:+.3f} "
            f"{_ci(diff['ci_low'], diff['ci_high'])}"
        )
    if result.loto is not None:
        _print_loto(result.loto, loto_summary(result.loto))
    else:
        console.print("the predictor's leave-one-task-out evaluation needs runs of 3 or more tasks")
    console.print(
        f"per item: {out / 'items.csv'}; per task: {out / 'tasks.csv'}; use {out} as `lexprobe predict --calibration`"
    )


@handle_errors
def predict_cmd(
    ontology: str = typer.Option(..., "--ontology", "-o", help="Built-in name (hgnc, hpo, go) or a file path."),
    task: str = typer.Option(..., "--task", "-t", help="Mapping task, e.g. name-to-symbol, name-to-id."),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Named model, HF id, local dir or .gguf."),
    calibration: list[Path] = typer.Option(
        [], "--calibration", "-c", help="A `lexprobe correlate` (or `lexprobe study`) output; repeatable."
    ),
    no_shipped: bool = typer.Option(False, "--no-shipped", help="Leave out the calibration set lexprobe ships."),
    bins: int = typer.Option(20, "--bins", min=1, help="Popularity bins of the split the features are measured on."),
    per_bin: int = typer.Option(5, "--per-bin", min=1, help="Pairs per bin in each of train and withheld."),
    bootstrap: int = typer.Option(
        200, "--bootstrap", min=10, max=MAX_RESAMPLES, help="Task-bootstrap refits for the intervals."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, nulls and bootstraps."),
    out: Path | None = typer.Option(None, "--out", help="Also write the prediction, features and manifest here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run already in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Will fine-tuning on this task generalize? Measures the task's features (no training) and predicts."""
    from rich.table import Table

    from lexprobe.predict import loto_summary, predict_task, write_prediction
    from lexprobe.runs import ensure_writable_dir, prepare_run_dir, settings_of

    if out is not None:
        ensure_writable_dir(out)
        asked = {"ontology": ontology, "task": task, "model": model, "bins": bins, "per_bin": per_bin}
        asked |= {"n_boot": bootstrap, "shipped_calibration": not no_shipped}
        asked["calibration"] = [str(p) for p in calibration]
        prepare_run_dir(out, "predict", settings_of(asked) | {"seed": seed}, overwrite=overwrite)
    with _status(quiet):
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
        )
    if out is not None:
        write_prediction(result, out)
    p, t, predictor = result.prediction, result.task, result.predictor
    console.print(f"[bold]{p['label']} ({p['model']}): {p['verdict']}[/bold]")
    console.print(
        f"predicted generalization gain {p['predicted_generalization_gain']:+.3f} "
        f"{_ci(p['predicted_generalization_gain_ci_low'], p['predicted_generalization_gain_ci_high'])}; "
        f"memorization gain {p['predicted_memorization_gain']:+.3f} "
        f"{_ci(p['predicted_memorization_gain_ci_low'], p['predicted_memorization_gain_ci_high'])} "
        "(share of items gained minus lost; 95% interval over calibration tasks resampled)"
    )
    thresholds = predictor.thresholds
    console.print(
        "thresholds fitted to the calibration (Youden's J against 'measured gain interval above 0'): "
        f"generalize if predicted generalization gain >= {_num(thresholds['withheld'], '+.3f')} "
        f"({predictor.threshold_notes['withheld']}); memorize if predicted memorization gain >= "
        f"{_num(thresholds['train'], '+.3f')} ({predictor.threshold_notes['train']})"
    )
    features = Table(title=f"features of {t['n_items']} pairs (split {bins} bins x {per_bin} x 2), calibration range")
    for column in ("feature", "this task", "calibration tasks (min - max)"):
        features.add_column(column, justify="left" if column == "feature" else "right")
    cal = predictor.tasks
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
    console.print(features)
    reasons = ", ".join(
        f"{r['feature']} {r['task_mean']:.3g} (calibration mean {r['calibration_mean']:.3g}): {r['log_odds']:+.2f}"
        for r in p["reasons"]
    )
    if reasons:
        console.print(f"why (push on the log-odds of gaining a withheld pair, largest first): {reasons}")
    if predictor.loto is not None:
        s = loto_summary(predictor.loto)
        console.print(
            f"how well it predicts (leave-one-task-out, {s['n_tasks']} tasks): verdicts right "
            f"{s['verdict_accuracy']:.0%}, generalization gain mean abs. error {s['generalization_mae']:.3f}"
        )
    if result.measured is not None:
        m = result.measured
        console.print(
            f"this task is in the calibration and was left out of the fit (with every model's run of it); "
            f"measured with {result.prediction['model']}: memorization "
            f"{m['memorization_gain']:+.3f}, generalization {m['generalization_gain']:+.3f}"
        )
    for warning in p["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if out is not None:
        console.print(f"written to {out}")
