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
from lexprobe.exceptions import PredictionError, TaskError
from lexprobe.models import load_model
from lexprobe.predict._budgets import at_recorded_budget
from lexprobe.predict._common import (
    _GAIN_NAMES,
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
from lexprobe.predict._schema import ITEMS, TASKS, read_table, read_tables, validate_table
from lexprobe.progress import ProgressCallback, prefixed
from lexprobe.runs import few_shot_dirs, write_result_dir
from lexprobe.stats import paired_bootstrap_interval, wilson_interval
from lexprobe.tasks import ZOO_KINDS, task_kind

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class CorrelationResult:
    """Per-item table, per-task table, correlations, grouped AUCs, the hold-out evaluation and baselines."""

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
    """
    part = (lambda done: progress("relating features to outcomes", done, 4)) if progress else (lambda done: None)
    validate_table(items, ITEMS, source="the items given")
    if tasks is not None:
        validate_table(tasks, TASKS, source="the tasks given")
    if "baseline_correct" not in items:
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
    against :data:`lexprobe.predict.ITEMS` (one line naming the file, the column and the first bad row)."""
    return read_table(path, ITEMS)


def read_tasks_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ``tasks.csv`` as :func:`evaluate_items` takes it, validated against :data:`lexprobe.predict.TASKS`."""
    return read_table(path, TASKS)


def read_correlate_tables(
    items: Sequence[str | os.PathLike[str]], tasks: Sequence[str | os.PathLike[str]] = ()
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``correlate --items A [--items B...] [--tasks T...]``: each table read and validated, then pooled; an item
    of a unit (or a unit of the tasks) given twice, within a table or across two, is refused with the count."""
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
    for identifiers, whose targets are all different. ``{}`` when the run has no split."""
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


def few_shot_markdown(tasks: pd.DataFrame) -> str:
    """The tasks that have a few-shot baseline (``shots`` in ``tasks.csv``): zero-shot, K-shot and fine-tuned
    accuracy per split, and the fine-tuned model's lead over the K-shot baseline with its interval. ``""``
    when none has one."""
    if "shots" not in tasks or tasks["shots"].isna().all():
        return ""
    out = [
        "## Fine-tuning against the few-shot baseline",
        "",
        "The base model shown K train pairs before each query (`TASK/shots-K`), beside the zero-shot base model and "
        "the fine-tuned model on the same pairs. Lead: fine-tuned minus K-shot accuracy, paired over pairs, 95% "
        "bootstrap interval. On withheld pairs, a lead above 0 is generalization that in-context examples do not give. "
        "Majority rule: always the commonest target of the train pairs (what a model that learned only the class "
        "prior scores).",
        "",
        "| unit | K | train: 0-shot / K-shot / tuned | lead on train | withheld: 0-shot / K-shot / tuned "
        "| lead on withheld | majority rule, withheld |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, t in tasks[tasks["shots"].notna()].iterrows():
        cells = [f"{t['label']} ({t['model']})", str(int(t["shots"]))]
        for split in _SPLITS:
            cells.append(f"{t[f'baseline_{split}']:.2f} / {t[f'fewshot_{split}']:.2f} / {t[f'tuned_{split}']:.2f}")
            cells.append(_interval(t, f"tuned_minus_fewshot_{split}", "+"))
        majority = t.get("majority_withheld", np.nan)
        cells.append("-" if pd.isna(majority) else f"{majority:.2f} ({t['majority_target']})")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join([*out, ""])


def kind_markdown(tasks: pd.DataFrame, holdout: pd.DataFrame | None = None) -> str:
    """The units by kind of task (:func:`lexprobe.tasks.task_kind`): how many memorized and generalized (a
    gain interval above 0), the spread of their generalization gains, how many beat both trivial rules on
    withheld pairs (the fine-tuned model's lead over the K-shot baseline has its interval above 0 and its
    accuracy exceeds the majority rule's), and, held out by field pair, how many verdicts the predictor and
    the majority verdict got right. ``""`` when a task has no kind (a name that is not SOURCE-to-TARGET).
    A learning curve's other budgets are left out: each unit counts once, at its recorded budget."""
    tasks = tasks[at_recorded_budget(tasks).to_numpy()]
    try:
        kinds = tasks["task"].map(task_kind)
    except (TaskError, KeyError):
        return ""
    order = [k for k in ZOO_KINDS if k in set(kinds)] + sorted(set(kinds) - set(ZOO_KINDS))
    verdicts = None
    if holdout is not None and {"label", "model", "verdict", "measured_verdict"} <= set(holdout):
        if "held_out_by" in holdout:
            holdout = holdout[holdout["held_out_by"] == "field pair"]
        verdicts = holdout.set_index(["label", "model"])
    has_rules = {"tuned_minus_fewshot_withheld_ci_low", "majority_withheld"} <= set(tasks)
    out = [
        "## By kind of task",
        "",
        "Units (a task on a model) by the kind of their two fields; memorized and generalized: the gain's 95% "
        "interval lies above 0 on train and on withheld pairs. Beats both trivial rules: on withheld pairs the "
        "fine-tuned model leads the K-shot baseline (interval above 0) and scores above the majority rule. "
        "Verdicts: held out by field pair (the predictor, the paper's rule and the majority verdict, each fitted "
        "without the pair).",
        "",
        "| kind | units | memorized | generalized | generalization gain, median [min, max] "
        "| beats 5-shot and majority, withheld | predictor's verdict right | the paper's rule right "
        "| majority verdict right |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in order:
        part = tasks[kinds == kind]
        gains = part["generalization_gain"].astype(float)
        cells = [
            kind,
            str(len(part)),
            str(int((part["memorization_gain_ci_low"].astype(float) > 0).sum())),
            str(int((part["generalization_gain_ci_low"].astype(float) > 0).sum())),
            f"{gains.median():+.2f} [{gains.min():+.2f}, {gains.max():+.2f}]",
        ]
        if has_rules:
            beats = (part["tuned_minus_fewshot_withheld_ci_low"].astype(float) > 0) & (
                part["tuned_withheld"].astype(float) > part["majority_withheld"].astype(float)
            )
            cells.append(f"{int(beats.sum())}/{int(part['tuned_minus_fewshot_withheld_ci_low'].notna().sum())}")
        else:
            cells.append("-")
        for column in ("verdict", "the paper's rule (kinds of the fields): verdict", "majority verdict: verdict"):
            if verdicts is None or column not in verdicts:
                cells.append("-")
                continue
            keys = [k for k in zip(part["label"], part["model"]) if k in verdicts.index]
            right = sum(verdicts.loc[k, column] == verdicts.loc[k, "measured_verdict"] for k in keys)
            cells.append(f"{right}/{len(keys)}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join([*out, ""])


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or pd.isna(value) else format(value, spec)


def holdout_markdown(baselines: pd.DataFrame) -> str:
    """``baselines.csv`` as Markdown, one table per hold-out scheme, and a sentence each on what the
    predictor's numbers say against the paper's rule and the kind mean."""
    out = [
        f"Brier: multi-class (0 best, 2 worst); log loss with probabilities floored at 0.01; committed: the share of "
        f"units whose likeliest verdict has probability >= {COMMIT} and how often it is right there; a rule that "
        "states a verdict without a probability gives it probability 1. Gain errors in points of the share of "
        "pairs. Brier skill is over the paper's rule (above 0: better), gain error is over the kind mean's "
        "(below 1: better).",
        "",
    ]
    if "held_out_by" not in baselines:  # written before the three hold-outs: by field pair only
        baselines = baselines.assign(held_out_by="field pair")
    for column in ("brier", "log_loss", "committed_share", "committed_right", "memorization_mae_points"):
        if column not in baselines:
            baselines = baselines.assign(**{column: np.nan})
    for column in ("brier_skill_over_papers_rule", "gain_error_over_kind_mean"):
        if column not in baselines:
            baselines = baselines.assign(**{column: np.nan})
    for scheme, b in baselines.groupby("held_out_by", sort=False):
        n = int(b["n_units"].iloc[0])
        out += [
            f"### Held out by {scheme}",
            "",
            "| rule | verdicts right | Brier | log loss | committed (right) | generalization gain MAE | "
            "memorization gain MAE | Spearman, gen. gain | Brier skill over the paper's rule "
            "| gain error / kind mean's |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for _, r in b.iterrows():
            out.append(
                f"| {r['rule']} | {int(r['verdicts_right'])}/{n} | {_fmt(r['brier'], '.3f')} | "
                f"{_fmt(r['log_loss'], '.3f')} | {_fmt(r['committed_share'], '.0%')} "
                f"({_fmt(r['committed_right'], '.0%')}) | {r['gain_mae_points']:.2f} | "
                f"{_fmt(r['memorization_mae_points'], '.2f')} | {_fmt(r['gain_spearman'], '+.2f')} | "
                f"{_fmt(r['brier_skill_over_papers_rule'], '+.2f')} | {_fmt(r['gain_error_over_kind_mean'], '.2f')} |"
            )
        own = b[b["rule"].astype(str).str.startswith("predictor")]
        paper = b[b["rule"] == PAPERS_RULE]
        kind = b[b["rule"] == KIND_MEAN]
        if not own.empty and not paper.empty and not kind.empty:
            own = own.iloc[0]
            better = own["brier"] < paper["brier"].iloc[0] and own["gain_mae_points"] < kind["gain_mae_points"].iloc[0]
            out += [
                "",
                f"Held out by {scheme}, the predictor {'beats' if better else 'does not beat both of'} the paper's "
                f"rule and the kind mean: Brier {own['brier']:.3f} against {paper['brier'].iloc[0]:.3f} (skill "
                f"{own['brier_skill_over_papers_rule']:+.2f}), generalization gain error {own['gain_mae_points']:.2f} "
                f"against {kind['gain_mae_points'].iloc[0]:.2f} points (ratio {own['gain_error_over_kind_mean']:.2f}); "
                f"it commits on {own['committed_share']:.0%} of units and is right on "
                f"{_fmt(own['committed_right'], '.0%')} of those.",
            ]
        out.append("")
    return "\n".join(out)


#: The cells a rule table can show (:func:`rule_table_markdown`): name -> (header, the cell of a row of
#: ``baselines.csv``, ``baselines_by_kind.csv`` or ``baselines_by_budget.csv``).
RULE_CELLS: dict[str, tuple[str, Callable[[pd.Series], str]]] = {
    "units": ("units", lambda r: str(int(r["n_units"]))),
    "verdicts_right": ("verdicts right", lambda r: f"{int(r['verdicts_right'])}/{int(r['n_units'])}"),
    "brier": ("Brier", lambda r: _fmt(r["brier"], ".3f")),
    "committed": (
        "committed (right)",
        lambda r: f"{_fmt(r['committed_share'], '.0%')} ({_fmt(r['committed_right'], '.0%')})",
    ),
    "gain_mae_points": ("generalization gain MAE", lambda r: _fmt(r["gain_mae_points"], ".2f")),
    "memorization_mae_points": ("memorization gain MAE", lambda r: _fmt(r["memorization_mae_points"], ".2f")),
    "brier_skill_over_papers_rule": (
        "Brier skill over the paper's rule",
        lambda r: _fmt(r["brier_skill_over_papers_rule"], "+.2f"),
    ),
    "gain_error_over_kind_mean": ("gain error / kind mean's", lambda r: _fmt(r["gain_error_over_kind_mean"], ".2f")),
}

#: The key columns a rule table is split by: column -> (header, format of its values).
RULE_KEYS = {"kind": ("kind", ""), "exposures": ("exposures", "g"), "held_out_by": ("held out by", "")}

#: What the skill tables show: the units, verdicts, Brier score and both gain errors.
SKILL_CELLS = ("units", "verdicts_right", "brier", "gain_mae_points", "memorization_mae_points")


def rule_table_markdown(
    table: pd.DataFrame,
    key: str,
    *,
    cells: Sequence[str | tuple[str, str]] = SKILL_CELLS,
    rules: Sequence[str] | None = None,
) -> str:
    """A Markdown table of rules' hold-out scores, one row per value of ``key`` and rule, in ``table``'s order.

    Parameters
    ----------
    table : DataFrame
        ``baselines.csv``, ``baselines_by_kind.csv`` or ``baselines_by_budget.csv`` (filter the hold-out
        scheme first where ``key`` is not ``held_out_by``).
    key : {"kind", "exposures", "held_out_by"}
        The first column (:data:`RULE_KEYS`); the rule is the second.
    cells : sequence of str or (str, str)
        The other columns, names of :data:`RULE_CELLS`; ``(name, header)`` gives one another header.
    rules : sequence of str, optional
        The rules shown; default the predictor, the paper's rule and the kind mean.
    """
    if key not in RULE_KEYS:
        raise PredictionError(f"`key` must be one of {sorted(RULE_KEYS)}, got {key!r}")
    chosen = [(c, RULE_CELLS[c][0] if c in RULE_CELLS else c) if isinstance(c, str) else tuple(c) for c in cells]
    unknown = [name for name, _ in chosen if name not in RULE_CELLS]
    if unknown:
        raise PredictionError(f"`cells` must name columns of RULE_CELLS ({sorted(RULE_CELLS)}), got {unknown}")
    rules = [PREDICTOR_RULE, PAPERS_RULE, KIND_MEAN] if rules is None else list(rules)
    header, spec = RULE_KEYS[key]
    headers = [header, "rule", *(h for _, h in chosen)]
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, r in table[table["rule"].isin(rules)].iterrows():
        row = [format(r[key], spec), str(r["rule"]), *(RULE_CELLS[name][1](r) for name, _ in chosen)]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def kind_skill_markdown(by_kind: pd.DataFrame) -> str:
    """Skill within kinds, held out by field pair: per kind, the predictor beside the paper's rule and the
    kind mean (verdicts, Brier, gain errors). Between kinds the paper's rule answers; this is what is left."""
    part = by_kind[by_kind["held_out_by"] == "field pair"]
    return "\n".join(["### Within kinds, held out by field pair", "", rule_table_markdown(part, "kind")])


def budget_skill_markdown(by_budget: pd.DataFrame) -> str:
    """Skill at each budget, held out by field pair, over the field pairs measured at several budgets: the
    predictor beside the paper's rule and the kind mean (which know no budget)."""
    part = by_budget[by_budget["held_out_by"] == "field pair"]
    title = "### At each budget, held out by field pair (the field pairs with learning curves)"
    return "\n".join([title, "", rule_table_markdown(part, "exposures")])


def surface_markdown(surface: pd.DataFrame) -> str:
    """The surface check of the predictor's within-kind features (:func:`surface_check`), kinds with units of
    at least three field pairs (those with a ridge): per kind, alignment z (read for the generalization gain)
    and the target's length in tokens (read for the memorization gain, itself a surface form: its own column
    says so) against each surface form. A ``surface.csv`` written before the memorization feature was checked
    has no ``gain`` column; its rows show the gain as ``-``."""
    pairs = surface.groupby(["kind", "feature"])["n_field_pairs"].transform("max")
    shown = surface[(pairs >= MIN_CLASS_PAIRS).to_numpy()]
    out = [
        "### Surface check: within kinds, does a feature follow token length or digits?",
        "",
        "Spearman's rho over a kind's units (recorded budget) of each feature a kind's ridge reads against each "
        "surface form it could be standing in for: alignment z (generalization gain) against the sides' lengths "
        "in tokens and the target's share of digits and punctuation, and the target's length in tokens "
        "(memorization gain), itself a surface form, against the others; |rho| >= 0.7 is flagged.",
        "",
        "| kind | feature | gain | units | source tokens | target tokens | target digit share |",
        "|---|---|---|---|---|---|---|",
    ]
    for (kind, feature), part in shown.groupby(["kind", "feature"], sort=False):
        by_surface = part.set_index("surface")
        cells = []
        for name in SURFACES:
            r = by_surface.loc[name] if name in by_surface.index else None
            if name == feature:
                cells.append("itself")
            elif r is None or pd.isna(r["rho"]):
                cells.append("-")
            else:
                cells.append(
                    f"{r['rho']:+.2f}" + (" (flagged)" if pd.notna(r["flagged"]) and bool(r["flagged"]) else "")
                )
        gain = part["gain"].iloc[0] if "gain" in part else ""
        gain = gain if isinstance(gain, str) and gain else "-"
        out.append(f"| {kind} | {feature} | {gain} | {int(part['n_units'].max())} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_correlation(result: CorrelationResult, out: str | os.PathLike[str], *, figures: bool = True) -> list[Path]:
    """Write ``items.csv``, ``tasks.csv``, ``correlations.csv``, ``auc.csv`` (and, with two or more field
    pairs, ``holdout.csv``, ``baselines.csv``, ``baselines_by_kind.csv``, ``reliability.csv``, ``loto.csv``;
    with learning curves ``baselines_by_budget.csv``), ``summary.md``, figures and the manifest into
    ``out``, each atomically."""
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
        if "bin" in result.items and "tuned_correct" in result.items:
            paths += fig.plot_accuracy_by_popularity(result.items, directory)
        for feature, label in (
            ("lexicalization", "lexicalization score (lower side, 0-1)"),
            ("alignment", "alignment (mutual kNN, 0-1)"),
        ):
            paths += fig.plot_gain_vs_feature(result.items, feature, directory=directory, xlabel=label)
        if "alignment_z" in result.tasks:
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

    text = evaluation_markdown(result)
    if {"memorization_gain_ci_low", "generalization_gain_ci_low"} <= set(result.tasks.columns) and (
        kinds := kind_markdown(result.tasks, result.holdout)
    ):
        text = kinds + "\n" + text
    if {"baseline_train", "tuned_train"} <= set(result.tasks.columns) and (few := few_shot_markdown(result.tasks)):
        text = few + "\n" + text
    if {"baseline_train", "layer", "alignment_z", "popularity_median"} <= set(result.tasks.columns):
        text = summary_markdown(summary_table(result.tasks, result.loto)) + "\n" + text
    return write_result_dir(
        out, tables, stage="correlate", record=record, figures=draw if figures else None, texts={"summary.md": text}
    )


def evaluation_markdown(result: CorrelationResult) -> str:
    """The evaluation in Markdown: the predictor beside the baselines held out by field pair, by ontology and
    by model (verdicts, proper scores, committed verdicts, gain errors), within each kind, the per-unit
    field-pair hold-out, the grouped AUCs, and the correlations pooled and within tasks."""
    out = ["## Held out three ways: the predictor beside the baselines", ""]
    if result.baselines is None:
        out += ["One field pair only: no hold-out evaluation.", ""]
    else:
        out += [holdout_markdown(result.baselines), ""]
        if result.by_kind is not None:
            out += [kind_skill_markdown(result.by_kind), ""]
        if result.by_budget is not None:
            out += [budget_skill_markdown(result.by_budget), ""]
        if result.surface is not None and len(result.surface):
            out += [surface_markdown(result.surface), ""]
        h = result.holdout
        if "held_out_by" in h:
            h = h[h["held_out_by"] == "field pair"]
        out += [
            "### Per unit, held out by field pair",
            "",
            "| unit | field pair | predicted gen. gain [interval] | measured | p (generalize / memorize only / "
            "no gain) | stated verdict | measured verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in h.iterrows():
            probs = " / ".join(_fmt(r.get(f"p: {v}"), ".2f") for v in VERDICTS)
            out.append(
                f"| {r['label']} ({r['model']}) | {r['group']} | {r['predicted_generalization_gain']:+.3f} "
                f"[{r['predicted_generalization_gain_ci_low']:+.3f}, "
                f"{r['predicted_generalization_gain_ci_high']:+.3f}] "
                f"| {r['generalization_gain']:+.3f} | {probs} | {r['stated_verdict']} | {r['measured_verdict']} |"
            )
        out.append("")
    out += [
        "## Gained on a withheld pair: grouped AUC (leave one field pair out)",
        "",
        "| model | AUC, pooled [95% CI] | AUC within tasks [95% CI] |",
        "|---|---|---|",
    ]
    for _, r in result.auc.iterrows():

        def fmt(v, lo, hi):
            return "-" if pd.isna(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"

        out.append(
            f"| {r['model']} | {fmt(r['auc'], r['ci_low'], r['ci_high'])} "
            f"| {fmt(r['within_auc'], r['within_ci_low'], r['within_ci_high'])} |"
        )
    note = result.auc["note"].iloc[0] if len(result.auc) else ""
    out += ["", f"Intervals: cluster bootstrap over units. {note}".strip(), ""]
    out += [
        "## Spearman correlations, pooled and within tasks (cluster bootstrap over units)",
        "",
        "| relation | items | pooled [95% CI] | within tasks [95% CI] |",
        "|---|---|---|---|",
    ]
    c = result.correlations
    for relation, part in c[c["scope"].isin(["all", "within tasks"])].groupby("relation", sort=False):
        cells = []
        for scope in ("all", "within tasks"):
            r = part[part["scope"] == scope].iloc[0]
            cells.append("-" if pd.isna(r["rho"]) else f"{r['rho']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
        out.append(f"| {relation} ({part['split'].iloc[0]}) | {int(part['n'].iloc[0])} | {cells[0]} | {cells[1]} |")
    out.append("")
    return "\n".join(out)


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
        for name in _GAIN_NAMES.values():
            for suffix in ("", "_ci_low", "_ci_high"):
                row[f"{name}_gain{suffix}"] = float(t[f"{name}_gain{suffix}"])
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


def _interval(frame_row: pd.Series, name: str, sign: str = "") -> str:
    return f"{frame_row[name]:{sign}.3f} [{frame_row[name + '_ci_low']:.3f}, {frame_row[name + '_ci_high']:.3f}]"


SUMMARY_HEADER = (
    "| task | pairs | baseline train | tuned train | baseline withheld | tuned withheld | memorization gain "
    "| generalization gain | layer | alignment z | lexicalization | predicted without the task | measured |"
)


def summary_markdown(summary: pd.DataFrame) -> str:
    """:func:`summary_table` as Markdown: one table per model, accuracies and gains with 95% intervals."""
    out = []
    for model, part in summary.groupby("model", sort=False):
        out += [f"### {model}", "", SUMMARY_HEADER, "|" + "---|" * SUMMARY_HEADER.count(" | ") + "---|"]
        for _, r in part.iterrows():
            predicted = (
                f"{r['predicted_verdict']} ({r['predicted_generalization_gain']:+.3f})"
                if r["predicted_verdict"]
                else ""
            )
            cells = [
                r["label"],
                f"{r['n_train']}+{r['n_withheld']}",
                *(_interval(r, f"{w}_{s}") for s in _SPLITS for w in ("baseline", "tuned")),
                _interval(r, "memorization_gain", "+"),
                _interval(r, "generalization_gain", "+"),
                str(int(r["layer"])),
                f"{r['alignment_z']:.1f}",
                f"{r['lexicalization']:.3f}",
                predicted,
                r["measured_verdict"],
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _recorded(config: FeatureConfig) -> dict[str, Any]:
    """The feature settings a manifest records: all but the batch size, which changes the speed, not the result."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "batch_size"}
