"""`lexprobe correlate`: the whole evaluation of a set of runs or of an items table, and its summary."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe import figures as fig
from lexprobe.exceptions import PredictionError
from lexprobe.models import load_model
from lexprobe.predict._budgets import at_recorded_budget
from lexprobe.predict._common import (
    _SPLITS,
    FEATURES,
    MIN_CLASS_PAIRS,
    VERDICTS,
    _measured_verdict,
    _units,
)
from lexprobe.predict._correlation import SURFACES, auc_comparison, correlation_table, surface_check
from lexprobe.predict._estimator import COMMIT
from lexprobe.predict._features import FeatureConfig, _train_config, _with_template_share, run_features
from lexprobe.predict._holdout import KIND_MEAN, PAPERS_RULE, PREDICTOR_RULE, loto_summary, reliability_table
from lexprobe.predict._predictor import fit_predictor, unit_table
from lexprobe.predict._schema import INTERVAL, ITEMS, TASKS, gain_column, read_table, read_tables, validate_table
from lexprobe.progress import ProgressCallback, prefixed
from lexprobe.report import CorrelationMarkdown
from lexprobe.runs import few_shot_dirs, write_result_dir
from lexprobe.stats import paired_bootstrap_interval, wilson_interval
from lexprobe.tasks import ZOO_KINDS, task_kind

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class CorrelationResult:
    """Per-item table, per-task table, correlations, grouped AUCs, the hold-out evaluation and baselines.

    Examples
    --------
    >>> from lexprobe.predict import CorrelationResult, read_calibration_manifest, read_correlate_tables
    >>> from lexprobe.predict import shipped_calibration_dir
    >>> folder = shipped_calibration_dir() / "study-v2.2"  # a correlate output, read back
    >>> items, tasks = read_correlate_tables([folder / "items.csv.gz"], [folder / "tasks.csv"])
    >>> table = {name: pd.read_csv(folder / f"{name}.csv") for name in ("correlations", "auc", "loto", "holdout",
    ...                                                                    "baselines", "baselines_by_kind")}
    >>> result = CorrelationResult(items, tasks, table["correlations"], table["auc"], table["loto"],
    ...                            read_calibration_manifest(folder), holdout=table["holdout"],
    ...                            baselines=table["baselines"], by_kind=table["baselines_by_kind"])
    >>> len(result.tasks), result.auc.loc[0, "model"]
    (74, 'features')
    """

    items: pd.DataFrame
    tasks: pd.DataFrame
    correlations: pd.DataFrame
    auc: pd.DataFrame
    loto: pd.DataFrame | None
    manifest: dict[str, Any]
    holdout: pd.DataFrame | None = None
    baselines: pd.DataFrame | None = None
    by_kind: pd.DataFrame | None = None
    by_budget: pd.DataFrame | None = None
    surface: pd.DataFrame | None = None


def evaluate_items(
    items: pd.DataFrame,
    tasks: pd.DataFrame | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    manifest: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> CorrelationResult:
    """The whole evaluation of an items table (one row per item, the columns of ``items.csv``; optionally
    ``field_pair`` and ``alignment_z``): correlations pooled and within tasks, grouped AUCs, the predictor held
    out by field pair beside the baselines.

    ``tasks`` (``tasks.csv``) supplies the gains' intervals and ``alignment_z`` where given; without it they
    come from the items. ``progress(stage, done, total)`` counts the four parts under ``"relating features to
    outcomes"`` (per task, correlations, AUCs, the predictor held out).

    Examples
    --------
    Two GO tasks on one model (two field pairs), from the shipped calibration, with 5 bootstrap resamples:

    >>> from lexprobe.predict import load_calibration, shipped_calibration_dir
    >>> items, _, _ = load_calibration([shipped_calibration_dir()])
    >>> items = items[items["label"].isin(["go id-to-name", "go id-to-namespace"]) & (items["model"] == "smollm2-135m")]
    >>> result = evaluate_items(items, n_boot=5)
    >>> result.tasks[["label", "measured_verdict"]]
                    label   measured_verdict
    0       go id-to-name  memorization only
    1  go id-to-namespace    will generalize
    >>> held_out = result.baselines.iloc[0]  # the predictor, each field pair held out in turn
    >>> held_out["held_out_by"], held_out["rule"], int(held_out["verdicts_right"]), int(held_out["n_units"])
    ('field pair', 'predictor (kind-anchored)', 1, 2)
    """
    part = (lambda done: progress("relating features to outcomes", done, 4)) if progress else (lambda done: None)
    validate_table(items, ITEMS, source="the items given")
    if tasks is not None:
        validate_table(tasks, TASKS, source="the tasks given")
    if not ITEMS.has(items, "baseline_correct"):
        items = items.assign(baseline_correct=False)
    items = _with_template_share(items.reset_index(drop=True))
    part(0)
    units = unit_table(items, tasks, n_boot=n_boot, seed=seed)
    part(1)
    # a learning curve's other budgets repeat its items: the correlations and AUCs keep each unit's recorded one
    recorded = items[at_recorded_budget(items).to_numpy()]
    correlations = correlation_table(recorded, n_boot=n_boot, seed=seed)
    part(2)
    auc = auc_comparison(recorded[recorded["split"] == "withheld"], n_boot=n_boot, seed=seed)
    part(3)
    holdout = baselines = loto = by_kind = by_budget = surface = None
    scored = tasks if tasks is not None else units
    if units["group"].nunique() >= 2:
        predictor = fit_predictor(items, tasks, seed=seed)
        holdout, baselines, loto = predictor.holdout, predictor.baselines, predictor.loto
        by_kind, by_budget = predictor.by_kind, predictor.by_budget
        surface = surface_check(items, predictor.tasks)
        if tasks is not None:
            extra = predictor.tasks.set_index("unit")[
                [
                    "group",
                    "template_share",
                    "seen_target_share",
                    "predicted_memorization_gain",
                    "predicted_generalization_gain",
                ]
            ]
            scored = (
                tasks.drop(columns=[c for c in extra.columns if c in tasks])
                .assign(_unit=_units(tasks))
                .join(extra, on="_unit")
                .drop(columns="_unit")
            )
        else:
            scored = predictor.tasks
    part(4)
    record = dict(manifest or {"stage": "correlate", "config": {}, "inputs": {}, "seed": seed})
    record["config"] = dict(record.get("config", {})) | {"predictor_features": list(FEATURES), "n_boot": n_boot}
    return CorrelationResult(
        items=items,
        tasks=scored,
        correlations=correlations,
        auc=auc,
        loto=loto,
        manifest=record,
        holdout=holdout,
        baselines=baselines,
        by_kind=by_kind,
        by_budget=by_budget,
        surface=surface,
    )


def read_items_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a user's items table (``.csv`` or ``.csv.gz``) as :func:`evaluate_items` takes it, validated
    against :data:`lexprobe.predict.ITEMS` (one line naming the file, the column and the first bad row).

    Examples
    --------
    >>> from lexprobe.predict import read_correlate_tables, shipped_calibration_dir
    >>> folder = shipped_calibration_dir() / "study-v2.2"
    >>> items = read_items_table(folder / "items.csv.gz")
    >>> len(items), items["split"].unique().tolist()
    (14800, ['train', 'withheld'])
    """
    return read_table(path, ITEMS)


def read_tasks_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ``tasks.csv`` as :func:`evaluate_items` takes it, validated against :data:`lexprobe.predict.TASKS`.

    Examples
    --------
    >>> from lexprobe.predict import read_correlate_tables, shipped_calibration_dir
    >>> folder = shipped_calibration_dir() / "study-v2.2"
    >>> tasks = read_tasks_table(folder / "tasks.csv")
    >>> tasks.loc[0, ["label", "model"]].tolist()
    ['go id-to-name', 'smollm2-135m']
    """
    return read_table(path, TASKS)


def read_correlate_tables(
    items: Sequence[str | os.PathLike[str]], tasks: Sequence[str | os.PathLike[str]] = ()
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``correlate --items A [--items B...] [--tasks T...]``: each table read and validated, then pooled; an item
    of a unit (or a unit of the tasks) given twice, within a table or across two, is refused with the count.

    Examples
    --------
    >>> from lexprobe.predict import read_correlate_tables, shipped_calibration_dir
    >>> folder = shipped_calibration_dir() / "study-v2.2"
    >>> items, tasks = read_correlate_tables([folder / "items.csv.gz"], [folder / "tasks.csv"])
    >>> len(items), len(tasks)
    (14800, 74)
    >>> read_correlate_tables([folder / "items.csv.gz"] * 2)  # the same items twice
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: 14800 duplicate row(s) in the items table: ... give each once
    """
    return read_tables(items, ITEMS), (read_tables(tasks, TASKS) if tasks else None)


def correlate(
    run_dirs: Sequence[str | os.PathLike[str]],
    *,
    config: FeatureConfig | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    base: str | os.PathLike[str] | None = None,
    device: str | None = None,
    device_map: str | None = None,
) -> CorrelationResult:
    """Measure the features of each evaluated train run's items and relate them to the outcomes
    (:func:`evaluate_items` on the items measured).

    Relative ``run_dirs`` are read under ``base`` when given (and recorded as given, so that a directory of
    runs can move). Each run's model is loaded as its training recorded it (name, revision), in
    ``config.dtype``, on ``device`` (default: CUDA when present) or spread by ``device_map``.
    ``progress(stage, done, total)`` counts the runs measured (``"measuring features"``) and, within each, its
    embedding batches and layers (``"<run>: embedding source"``...).

    Examples
    --------
    >>> correlate([])
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: give at least one evaluated `lexprobe train` run directory
    """
    config = config or FeatureConfig()
    if not run_dirs:
        raise PredictionError("give at least one evaluated `lexprobe train` run directory")
    item_frames, task_rows, models = [], [], {}
    inputs = []
    for number, run in enumerate(run_dirs):
        if progress:
            progress("measuring features", number, len(run_dirs))
        path = Path(base) / run if base is not None else Path(run)
        train_config = _train_config(path)
        name = train_config.model
        if name not in models:
            logger.info("loading model %s", name)
            models[name] = load_model(name, dtype=config.dtype, device=device, device_map=device_map)
        items, row = run_features(
            path, config=config, model=models[name], cache_dir=cache_dir, progress=prefixed(progress, str(run))
        )
        row["run"] = str(run)
        row |= few_shot_comparison(path, n_boot=n_boot, seed=seed) | majority_rule(path)
        item_frames.append(items)
        task_rows.append(row)
        inputs.append({"run": str(run), "train_config": train_config.to_dict(), "model": models[name].describe()})
    if progress:
        progress("measuring features", len(run_dirs), len(run_dirs))
    items = pd.concat(item_frames, ignore_index=True)
    tasks = pd.DataFrame(task_rows)
    units = _units(tasks)
    if units.duplicated().any():
        raise PredictionError(
            f"several runs of the same task and model: {sorted(units[units.duplicated()])}; give one run per task"
        )
    manifest = {
        "stage": "correlate",
        "config": {"features": _recorded(config), "predictor_features": list(FEATURES), "n_boot": n_boot},
        "inputs": {"runs": inputs},
        "seed": seed,
    }
    return evaluate_items(items, tasks, n_boot=n_boot, seed=seed, manifest=manifest, progress=progress)


def few_shot_comparison(run: str | os.PathLike[str], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The fine-tuned model beside the run's few-shot baseline (its largest K of ``shots-K/``, see
    :func:`lexprobe.runs.few_shot_dirs`) on the same pairs, per split.

    Returns
    -------
    dict
        ``{}`` when the run has no few-shot evaluation; else ``shots`` (K) and, per split, ``fewshot_<split>``
        (the base model's accuracy shown K train pairs) and ``tuned_minus_fewshot_<split>`` (the fine-tuned
        model's zero-shot accuracy minus it, paired over the pairs both scored) with ``_ci_low`` /
        ``_ci_high`` (95% percentile bootstrap over pairs, ``n_boot`` resamples, ``seed``).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     print(few_shot_comparison(run))  # no `lexprobe evaluate --shots K` in it yet
    {}
    """
    run = Path(run)
    shown = few_shot_dirs(run)
    if not shown or not (run / "outcomes.csv").is_file():
        return {}
    keys = ["split", "id", "source"]
    try:
        few = pd.read_csv(shown[-1] / "outcomes.csv", dtype={"id": str, "source": str})
        zero = pd.read_csv(run / "outcomes.csv", dtype={"id": str, "source": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PredictionError(f"{shown[-1]}: its outcomes cannot be read ({exc})") from None
    if not set(keys) | {"baseline_correct"} <= set(few) or "tuned_correct" not in zero:
        raise PredictionError(f"{shown[-1]}/outcomes.csv or {run}/outcomes.csv lacks the columns evaluate writes")
    paired = zero[[*keys, "tuned_correct"]].merge(few[[*keys, "baseline_correct"]], on=keys, how="inner")
    row: dict[str, Any] = {"shots": int(shown[-1].name.split("-")[1])}
    for split in _SPLITS:
        part = paired[paired["split"] == split]
        tuned = part["tuned_correct"].astype(bool).to_numpy(float)
        fewshot = part["baseline_correct"].astype(bool).to_numpy(float)
        row[f"fewshot_{split}"] = float(fewshot.mean()) if len(part) else np.nan
        row[f"tuned_minus_fewshot_{split}"] = float((tuned - fewshot).mean()) if len(part) else np.nan
        low, high = paired_bootstrap_interval(fewshot, tuned, n_boot=n_boot, seed=seed)
        row |= {f"tuned_minus_fewshot_{split}_ci_low": low, f"tuned_minus_fewshot_{split}_ci_high": high}
    return row


def majority_rule(run: str | os.PathLike[str]) -> dict[str, Any]:
    """The majority rule of a run's split: always answer the commonest target of its train pairs (ties: the
    first in sorted order), scored by exact match up to case on each split. The rule a category task's
    withheld accuracy must beat (a tuned model that learned only the class prior scores this much); about 0
    for identifiers, whose targets are all different. ``{}`` when the run has no split.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     (Path(run) / "split").mkdir()
    ...     pd.DataFrame({"target": ["protein", "protein", "RNA"]}).to_csv(Path(run) / "split" / "train.csv")
    ...     pd.DataFrame({"target": ["Protein", "RNA"]}).to_csv(Path(run) / "split" / "withheld.csv")
    ...     rule = majority_rule(run)
    >>> rule["majority_target"], round(rule["majority_train"], 2), rule["majority_withheld"]  # up to case
    ('protein', 0.67, 0.5)
    """
    run = Path(run)
    frames = {}
    for split in _SPLITS:
        path = run / "split" / f"{split}.csv"
        if not path.is_file():
            return {}
        frames[split] = pd.read_csv(path, dtype={"target": str})
    targets = frames["train"]["target"].astype(str)
    if targets.empty:
        return {}
    counts = targets.value_counts()
    top = sorted(counts[counts == counts.max()].index)[0]
    row: dict[str, Any] = {"majority_target": top}
    for split, frame in frames.items():
        hits = frame["target"].astype(str).str.casefold() == top.casefold()
        row[f"majority_{split}"] = float(hits.mean()) if len(frame) else np.nan
    return row


#: The correlate output's Markdown in the predictor's words, rendered by :mod:`lexprobe.report`; the
#: ``*_markdown`` functions of :mod:`lexprobe.predict` are its renderers.
MARKDOWN = CorrelationMarkdown(
    predictor_rule=PREDICTOR_RULE,
    papers_rule=PAPERS_RULE,
    kind_mean=KIND_MEAN,
    verdicts=VERDICTS,
    splits=_SPLITS,
    commit=COMMIT,
    min_class_pairs=MIN_CLASS_PAIRS,
    surfaces=SURFACES,
    at_recorded_budget=at_recorded_budget,
    kind_of=task_kind,
    kind_order=ZOO_KINDS,
)
few_shot_markdown = MARKDOWN.few_shot_markdown
kind_markdown = MARKDOWN.kind_markdown
holdout_markdown = MARKDOWN.holdout_markdown
rule_table_markdown = MARKDOWN.rule_table_markdown
kind_skill_markdown = MARKDOWN.kind_skill_markdown
budget_skill_markdown = MARKDOWN.budget_skill_markdown
surface_markdown = MARKDOWN.surface_markdown
evaluation_markdown = MARKDOWN.evaluation_markdown
summary_markdown = MARKDOWN.summary_markdown


def write_correlation(result: CorrelationResult, out: str | os.PathLike[str], *, figures: bool = True) -> list[Path]:
    """Write ``items.csv``, ``tasks.csv``, ``correlations.csv``, ``auc.csv`` (and, with two or more field
    pairs, ``holdout.csv``, ``baselines.csv``, ``baselines_by_kind.csv``, ``reliability.csv``, ``loto.csv``;
    with learning curves ``baselines_by_budget.csv``), ``summary.md``, figures and the manifest into
    ``out``, each atomically.

    Examples
    --------
    >>> from lexprobe.predict import CorrelationResult, read_calibration_manifest, read_correlate_tables
    >>> from lexprobe.predict import shipped_calibration_dir
    >>> folder = shipped_calibration_dir() / "study-v2.2"  # a correlate output, read back
    >>> items, tasks = read_correlate_tables([folder / "items.csv.gz"], [folder / "tasks.csv"])
    >>> table = {name: pd.read_csv(folder / f"{name}.csv") for name in ("correlations", "auc", "loto", "holdout",
    ...                                                                    "baselines", "baselines_by_kind")}
    >>> result = CorrelationResult(items, tasks, table["correlations"], table["auc"], table["loto"],
    ...                            read_calibration_manifest(folder), holdout=table["holdout"],
    ...                            baselines=table["baselines"], by_kind=table["baselines_by_kind"])
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     written = write_correlation(result, tmp, figures=False)
    ...     print(sorted(p.name for p in written)[:4])
    ['auc.csv', 'baselines.csv', 'baselines_by_kind.csv', 'correlations.csv']
    """
    tables = {
        "items.csv": result.items,
        "tasks.csv": result.tasks,
        "correlations.csv": result.correlations,
        "auc.csv": result.auc,
    }
    if result.loto is not None:
        tables["loto.csv"] = result.loto
    if result.holdout is not None:
        tables["holdout.csv"] = result.holdout
    if result.baselines is not None:
        tables["baselines.csv"] = result.baselines
    if result.by_kind is not None:
        tables["baselines_by_kind.csv"] = result.by_kind
    if result.by_budget is not None:
        tables["baselines_by_budget.csv"] = result.by_budget
    if result.surface is not None:
        tables["surface.csv"] = result.surface
    reliability = reliability_table(result.holdout) if result.holdout is not None else None
    if reliability is not None:
        tables["reliability.csv"] = reliability
    record = dict(result.manifest)
    if result.loto is not None:
        record["inputs"] = dict(record.get("inputs", {})) | {"loto_summary": loto_summary(result.loto)}

    def draw(directory: Path) -> list[Path]:
        paths = []
        if ITEMS.has(result.items, "bin", "tuned_correct"):
            paths += fig.plot_accuracy_by_popularity(result.items, directory)
        for feature, label in (
            ("lexicalization", "lexicalization score (lower side, 0-1)"),
            ("alignment", "alignment (mutual kNN, 0-1)"),
        ):
            paths += fig.plot_gain_vs_feature(result.items, feature, directory=directory, xlabel=label)
        if TASKS.has(result.tasks, "alignment_z"):
            paths += fig.plot_task_gains(
                result.tasks, "alignment_z", directory, xlabel="alignment z (vs layer-max null)"
            )
        paths += fig.plot_task_gains(result.tasks, "lexicalization", directory, xlabel="lexicalization score (0-1)")
        if result.loto is not None:
            paths += fig.plot_calibration(result.loto, directory)
        if reliability is not None and len(reliability):
            paths += fig.plot_reliability(reliability, directory)
        if result.tasks["model"].nunique() > 1:
            paths += fig.plot_gains_by_model(result.tasks, directory)
        return paths

    summary = None
    if TASKS.has(result.tasks, "baseline_train", "layer", "alignment_z", "popularity_median"):
        summary = summary_table(result.tasks, result.loto)
    text = MARKDOWN.summary_document(result, summary)
    return write_result_dir(
        out, tables, stage="correlate", record=record, figures=draw if figures else None, texts={"summary.md": text}
    )


def summary_table(tasks: pd.DataFrame, loto: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per task and model: accuracies with Wilson intervals, gains, features and the verdicts.

    Parameters
    ----------
    tasks : DataFrame
        ``tasks.csv`` as :func:`correlate` writes it.
    loto : DataFrame, optional
        ``loto.csv``: adds the verdict of the predictor fitted without the task, and its predicted
        generalization gain.

    Returns
    -------
    DataFrame
        Numeric columns, in the tasks' order: ``model, label, n_train, n_withheld``; ``baseline_train``,
        ``tuned_train``, ``baseline_withheld``, ``tuned_withheld`` each with ``_ci_low`` / ``_ci_high``; the
        two gains with intervals; ``layer, alignment_z, lexicalization, popularity_median``;
        ``predicted_verdict, predicted_generalization_gain, measured_verdict``.

    Examples
    --------
    >>> from lexprobe.predict import read_correlate_tables, shipped_calibration_dir
    >>> folder = shipped_calibration_dir() / "study-v2.2"
    >>> summary = summary_table(read_tasks_table(folder / "tasks.csv"))
    >>> summary.loc[0, "label"], int(summary.loc[0, "n_train"]), summary.loc[0, "measured_verdict"]
    ('go id-to-name', 100, 'memorization only')
    """
    rows = []
    for _, t in tasks.iterrows():
        row: dict[str, Any] = {"model": t["model"], "label": t["label"]}
        row |= {"n_train": int(t["n_train"]), "n_withheld": int(t["n_withheld"])}
        for split in _SPLITS:
            n = int(t[f"n_{split}"])
            for which in ("baseline", "tuned"):
                accuracy = float(t[f"{which}_{split}"])
                low, high = wilson_interval(round(accuracy * n), n)
                row |= {f"{which}_{split}": accuracy, f"{which}_{split}_ci_low": low, f"{which}_{split}_ci_high": high}
        for column in (gain_column(split, suffix) for split in _SPLITS for suffix in INTERVAL):
            row[column] = float(t[column])
        row |= {c: t[c] for c in ("layer", "alignment_z", "lexicalization", "popularity_median")}
        row |= {"predicted_verdict": "", "predicted_generalization_gain": np.nan, "measured_verdict": ""}
        if loto is not None:
            held = loto[(loto["label"] == t["label"]) & (loto["split"] == "withheld")]
            if "model" in loto:
                held = held[held["model"].astype(str) == str(t["model"])]
            if len(held):
                h = held.iloc[0]
                row |= {
                    "predicted_verdict": h["verdict"],
                    "predicted_generalization_gain": float(h["predicted_gain"]),
                    "measured_verdict": h["measured_verdict"],
                }
        if not row["measured_verdict"]:
            row["measured_verdict"] = _measured_verdict(t)
        rows.append(row)
    return pd.DataFrame(rows)


def _recorded(config: FeatureConfig) -> dict[str, Any]:
    """The feature settings a manifest records: all but the batch size, which changes the speed, not the result."""
    return {k: v for k, v in config.to_dict().items() if k != "batch_size"}
