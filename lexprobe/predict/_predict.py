"""`lexprobe predict`: a verdict for a task nobody has fine-tuned yet."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lexprobe.exceptions import LexprobeError, PredictionError
from lexprobe.figures import plot_budget_curve
from lexprobe.models import NAMED_MODELS, RECORDED_BEFORE, dtype_name
from lexprobe.predict._calibration import load_calibration, shipped_calibration_dir
from lexprobe.predict._common import FEATURES, _measured_verdict, _pair_groups, _units, field_pair, task_identity
from lexprobe.predict._estimator import majority_share, model_parameters, unit_kind
from lexprobe.predict._features import FeatureConfig, _subsample, measure_features
from lexprobe.predict._holdout import best_fallback, loto_summary
from lexprobe.predict._predictor import Predictor, fit_predictor
from lexprobe.predict._schema import TASKS
from lexprobe.progress import ProgressCallback
from lexprobe.runs import write_result_dir
from lexprobe.tasks import make_split

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PredictionResult:
    """The verdict for one task, its measured features, and the predictor it came from.

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, fit_predictor, load_calibration
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hpo"]) & at_recorded_budget(tasks)]  # a part, for speed
    >>> predictor = fit_predictor(items[items["label"].isin(tasks["label"])], tasks, loto=False)
    >>> unit = predictor.tasks.iloc[0]  # go id-to-name, standing in for a new task's measured unit
    >>> prediction = predictor.predict_unit(unit) | {"label": unit["label"], "model": unit["model"], "warnings": []}
    >>> result = PredictionResult(prediction, items=pd.DataFrame({"id": ["GO:1"], "alignment": [0.1]}),
    ...                           task={"n_items": 200}, predictor=predictor, measured=None,
    ...                           manifest={"config": {}, "inputs": {}, "seed": 0})
    >>> result.prediction["stated_verdict"], result.prediction["rule"]
    ('memorization only', 'predictor (kind-anchored)')
    """

    prediction: dict[str, Any]
    items: pd.DataFrame
    task: dict[str, Any]
    predictor: Predictor
    measured: dict[str, Any] | None
    manifest: dict[str, Any]
    #: The predicted gains at each budget (:meth:`Predictor.budget_curve`).
    budgets: pd.DataFrame | None = None


def predict_task(
    ontology: str,
    task: str,
    *,
    model: str = "smollm2-135m",
    calibration: Sequence[str | os.PathLike[str]] = (),
    shipped: bool = True,
    bins: int = 20,
    per_bin: int = 5,
    config: FeatureConfig | None = None,
    n_boot: int = 200,
    seed: int = 0,
    exposures: float | None = None,
    loaded_model: Any = None,
    load: Callable[[], Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> PredictionResult:
    """Measure a task's features on the split a fine-tuning run would use and predict what tuning would do.

    The predictor is fitted on the shipped calibration set (unless ``shipped=False``) and the
    ``calibration`` directories (``lexprobe correlate`` outputs). A task that is itself in the calibration is
    left out of the fit (with every model's run of it, as in leave-one-task-out), so the prediction is out of
    sample; its measured outcome with this model, if any, is returned beside it (``measured``).

    ``exposures`` is the budget the user plans (times each pair is shown; default: the calibration's commonest).
    A task whose features, kind, model size or budget lie outside what the calibration spans gets the rule
    that held up best held out by ontology instead (``prediction["rule"]``), with the reasons
    (``prediction["outside"]``).

    The model is loaded only once the task and the calibration folders are read and checked (a damaged
    calibration is one error before any model loads): ``loaded_model`` when given, else ``load()``, else
    :func:`lexprobe.models.load_model` of ``model``.

    ``progress(stage, done, total)`` reports ``"preparing"`` (split, calibration, model, predictor: 4 parts),
    then the feature measurement's ``"embedding source"``, ``"embedding target"`` (per batch) and ``"alignment
    by layer"``.

    Raises
    ------
    PredictionError
        No calibration, or fewer than two calibration tasks once the task itself is left out.

    Examples
    --------
    The calibration is checked before anything is measured:

    >>> predict_task("hgnc", "name-to-symbol", shipped=False)
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: no calibration: keep the shipped set or pass --calibration DIR ...
    """
    from lexprobe.models import load_model  # as called: a stand-in put there is used (and is not called early)

    config = config or FeatureConfig()
    paths = _calibration_paths(shipped, calibration)
    part = (lambda done: progress("preparing", done, 4)) if progress else (lambda done: None)
    part(0)
    ont, split = _read_split(ontology, task, bins=bins, per_bin=per_bin, seed=seed)
    part(1)
    cal_items, cal_tasks, provenance = load_calibration(paths)
    part(2)
    label = f"{ont.name} {split.task.name}"
    if loaded_model is None:
        loaded_model = load() if load is not None else load_model(model, dtype=config.dtype)
    lm = loaded_model
    part(3)
    model_name = model  # the spec as given: calibration tasks are keyed by it
    measured = _measured_outcome(cal_tasks, label, model_name)
    cal_items, cal_tasks, left_out, identity = leave_out_pair(cal_items, cal_tasks, ont, split.task.name)
    predictor = _fitted_predictor(paths, cal_items, cal_tasks, seed=seed)
    part(4)
    logger.info("%s: predictor fitted on %d calibration tasks", label, len(cal_tasks))
    features = _split_features(split, lm, config, seed=seed, cache_dir=cache_dir, progress=progress)
    parameters = model_parameters(model_name) if model_name in NAMED_MODELS else lm.n_parameters
    prediction, budgets, budget_warning = _predict_split(predictor, features, split, parameters, exposures)
    warnings = _prediction_warnings(predictor, prediction, cal_tasks, model_name, budget_warning)
    warnings += _settings_warnings(config, lm, provenance)
    prediction |= {"ontology": ont.name, "task": split.task.name, "model": model_name, "label": label}
    prediction |= {"warnings": warnings, "n_calibration_tasks": len(cal_tasks), "field_pair": identity}
    settings = {"ontology": ontology, "task": task, "model": model_name, "bins": bins, "per_bin": per_bin}
    settings |= {"features": config.to_dict(), "n_boot": n_boot}
    settings |= {"predictor_features": list(predictor.features), "exposures": prediction["exposures"]}
    settings |= {"shipped_calibration": shipped, "calibration": [str(p) for p in calibration]}
    manifest = _predict_manifest(settings, ont, lm, provenance, cal_tasks, left_out, seed)
    return PredictionResult(prediction, features.items, features.task, predictor, measured, manifest, budgets)


def _calibration_paths(shipped: bool, calibration: Sequence[str | os.PathLike[str]]) -> list[Any]:
    """The calibration folders to fit on: the shipped one (unless ``shipped=False``), then ``calibration``."""
    paths = [*([shipped_calibration_dir()] if shipped else []), *calibration]
    if not paths:
        raise PredictionError(
            "no calibration: keep the shipped set or pass --calibration DIR (lexprobe correlate output)"
        )
    return paths


def _read_split(ontology: str, task: str, *, bins: int, per_bin: int, seed: int) -> tuple[Any, Any]:
    """The ontology and the split a fine-tuning run of ``task`` would use; a bad name is a PredictionError."""
    from lexprobe.ontology import load_ontology

    try:
        ont = load_ontology(ontology)
        split = make_split(ont, task, bins=bins, per_bin=per_bin, seed=seed)
    except LexprobeError as exc:
        raise PredictionError(str(exc)) from None
    return ont, split


def _measured_outcome(cal_tasks: pd.DataFrame, label: str, model_name: str) -> dict[str, Any] | None:
    """The calibration's measured outcome of this task with this model, or None where it has none."""
    same = (cal_tasks["label"] == label) & (cal_tasks["model"].astype(str) == model_name)
    return cal_tasks[same].iloc[0].to_dict() if same.any() else None


def _fitted_predictor(paths: list[Any], cal_items: pd.DataFrame, cal_tasks: pd.DataFrame, *, seed: int) -> Predictor:
    """The predictor fitted on the calibration (the task already left out), with the hold-out evaluation the
    calibration recorded where it did (else leave-one-task-out is computed)."""
    recorded = recorded_evaluation(paths)
    predictor = fit_predictor(cal_items, cal_tasks, seed=seed, loto=recorded is None)
    if recorded is not None:
        predictor.baselines, predictor.fallback = recorded, best_fallback(recorded)
    return predictor


def _split_features(
    split: Any,
    lm: Any,
    config: FeatureConfig,
    *,
    seed: int,
    cache_dir: str | os.PathLike[str] | None,
    progress: ProgressCallback | None,
) -> Any:
    """:func:`measure_features` of the split's train and withheld pairs (subsampled to ``config.per_split``)."""
    pairs = pd.concat([split.train.assign(split="train"), split.withheld.assign(split="withheld")], ignore_index=True)
    pairs = _subsample(pairs, config.per_split, seed)
    return measure_features(
        pairs,
        source=split.task.source,
        target=split.task.target,
        model=lm,
        config=config,
        cache_dir=cache_dir,
        progress=progress,
    )


def _planned_exposures(predictor: Predictor, exposures: float | None) -> tuple[float, str | None]:
    """The budget to predict at (default: the calibration's commonest; NaN where it recorded none) and a
    warning where a budget was given that the calibration cannot tell apart."""
    recorded_budgets = predictor.tasks["exposures"].astype(float).dropna()
    budget_warning = None
    if exposures is not None and not len(recorded_budgets):
        budget_warning = f"the calibration recorded no budget: --exposures {exposures:g} does not change the prediction"
    if exposures is None:  # the calibration's commonest budget; unknown where it recorded none
        exposures = float(recorded_budgets.mode().iloc[0]) if len(recorded_budgets) else float("nan")
    if exposures == exposures and not exposures > 0:
        raise PredictionError(f"--exposures must be a number of times each pair is shown (> 0), got {exposures}")
    return exposures, budget_warning


def _predict_split(
    predictor: Predictor, features: Any, split: Any, parameters: float, exposures: float | None
) -> tuple[dict[str, Any], pd.DataFrame | None, str | None]:
    """The predictor's verdict for the measured split at the planned budget (``prediction["exposures"]``), its
    predicted gains by budget (None where the calibration recorded no budget) and the budget's warning."""
    exposures, budget_warning = _planned_exposures(predictor, exposures)
    unit = new_unit(
        features.items, features.task, task=split.task.name, split=split, parameters=parameters, exposures=exposures
    )
    prediction = predictor.predict_unit(unit)
    prediction["exposures"] = exposures
    recorded_budgets = predictor.tasks["exposures"].astype(float).dropna()
    budgets = predictor.budget_curve(unit, [exposures]) if len(recorded_budgets) else None
    return prediction, budgets, budget_warning


def _prediction_warnings(
    predictor: Predictor,
    prediction: dict[str, Any],
    cal_tasks: pd.DataFrame,
    model_name: str,
    budget_warning: str | None,
) -> list[str]:
    """The calibration's warnings, then the budget's, and where the verdict extrapolates: outside the
    calibration, a verdict no other field pair reached, a model no calibration task used."""
    warnings = list(predictor.warnings) + ([budget_warning] if budget_warning else [])
    if prediction["outside"]:
        warnings.append(
            "outside the calibration: " + "; ".join(prediction["outside"]) + f"; the verdict is {prediction['rule']}'s"
        )
    units = predictor.tasks
    reached = units.loc[units["measured_verdict"] == prediction["verdict"], "group"].nunique()
    if reached == 0:
        warnings.append(
            f"no calibration field pair other than this task's own reached '{prediction['verdict']}': "
            "the verdict rests on no example"
        )
    cal_models = sorted(cal_tasks["model"].astype(str).unique())
    if model_name not in cal_models:
        warnings.append(
            f"no calibration task used model {model_name} (calibration: {', '.join(cal_models)}): "
            "the prediction extrapolates"
        )
    return warnings


def _settings_warnings(config: FeatureConfig, lm: Any, provenance: list[dict[str, Any]]) -> list[str]:
    """One warning per calibration folder whose features were measured with other settings than these."""
    warnings = []
    ours = {k: v for k, v in config.to_dict().items() if k not in ("seed", "batch_size")}
    ours["dtype"] = dtype_name(lm.dtype)  # the precision measured in, "auto" resolved
    for record in provenance:
        theirs = (record.get("config") or {}).get("features")
        if theirs is not None:
            theirs = {"dtype": RECORDED_BEFORE["dtype"]} | theirs  # recorded before the precision was
            differ = sorted(k for k, v in ours.items() if k in theirs and _jsonable(theirs[k]) != _jsonable(v))
            if differ:
                warnings.append(f"features measured with other settings ({', '.join(differ)}) in {record['path']}")
    return warnings


def _predict_manifest(
    settings: dict[str, Any],
    ont: Any,
    lm: Any,
    provenance: list[dict[str, Any]],
    cal_tasks: pd.DataFrame,
    left_out: list[str],
    seed: int,
) -> dict[str, Any]:
    """The predict stage's manifest: its settings, the ontology, model and calibration it read, the units left out."""
    inputs = {"ontology": ont.describe(), "model": lm.describe(), "calibration": provenance}
    inputs |= {"calibration_tasks": _units(cal_tasks).tolist(), "left_out": left_out}
    return {"stage": "predict", "config": settings, "inputs": inputs, "seed": seed}


def shipped_predictor() -> Predictor:
    """The predictor fitted on the calibration lexprobe ships, with the hold-out evaluation that calibration
    recorded (``baselines``: held out by field pair, ontology and model) and the fallback it implies."""
    items, tasks, _ = load_calibration([shipped_calibration_dir()])
    recorded = recorded_evaluation([shipped_calibration_dir()])
    predictor = fit_predictor(items, tasks, loto=recorded is None)
    if recorded is not None:
        predictor.baselines, predictor.fallback = recorded, best_fallback(recorded)
    return predictor


def new_unit(
    items: pd.DataFrame,
    task_summary: dict[str, Any],
    *,
    task: str,
    split: Any,
    parameters: float,
    exposures: float,
) -> dict[str, Any]:
    """A task not yet tuned as a unit :class:`~lexprobe.predict.VerdictPredictor` reads: its measured features
    (``items`` and ``task_summary`` from :func:`measure_features`), its kind, the sizes of the split a
    fine-tuning run would use (``split``), the majority rule's share of its withheld pairs, the model's
    parameter count and the planned budget.

    Examples
    --------
    A task's measured features (here made up) and the split a fine-tuning run would use:

    >>> from types import SimpleNamespace
    >>> split = SimpleNamespace(train=pd.DataFrame({"target": ["protein", "protein", "RNA"]}),
    ...                         withheld=pd.DataFrame({"target": ["protein", "RNA"]}))
    >>> items = pd.DataFrame({"alignment": [0.2, 0.4], "lexicalization": [0.5, 0.7]})
    >>> unit = new_unit(items, {"alignment_z": 12.0, "layer": 6}, task="name-to-locus_type", split=split,
    ...                 parameters=135e6, exposures=15)
    >>> unit["kind"], unit["majority_share"], round(unit["alignment"], 2), unit["n_train"]
    ('text -> category', 0.5, 0.3, 3)
    """
    import numpy as np

    pairs = pd.concat([split.train.assign(split="train"), split.withheld.assign(split="withheld")], ignore_index=True)
    share = majority_share(pairs, pd.Series("task", index=pairs.index))
    unit = {f: float(items[f].astype(float).mean()) for f in FEATURES if f in items}
    unit |= {k: v for k, v in task_summary.items() if isinstance(v, int | float)}
    return unit | {
        "task": task,
        "kind": unit_kind(task),
        "n_train": len(split.train),
        "n_withheld": len(split.withheld),
        "majority_share": float(share.iloc[0]),
        "parameters": float(parameters),
        "log_params": float(np.log10(parameters)),
        "exposures": float(exposures),
        "log_exposures": float(np.log10(exposures)),
    }


def recorded_evaluation(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame | None:
    """The hold-out scores (``baselines.csv`` held out three ways) the first calibration folder recorded, or
    None where none did (an older correlate output: the evaluation is then computed).

    Examples
    --------
    >>> baselines = recorded_evaluation([shipped_calibration_dir()])
    >>> sorted(baselines["held_out_by"].unique())
    ['field pair', 'model', 'ontology']
    """
    for path in paths:
        for file in sorted(Path(path).rglob("baselines.csv")):  # a folder of correlate outputs, or one
            table = pd.read_csv(file)
            if "held_out_by" in table and "brier" in table:
                return table
    return None


def leave_out_pair(
    items: pd.DataFrame, tasks: pd.DataFrame, ontology: Any, task: str
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], str]:
    """The calibration without the task's whole field pair (the task and its reverse, on every model).

    The task is identified by the ontology as loaded (``ontology.name``, or the checksum a calibration
    recorded) and its field pair, never by a file name: a built-in and its file given as a path are the same.

    Returns
    -------
    items, tasks : DataFrame
        What is left.
    left_out : list of str
        The units left out.
    identity : str
        :func:`task_identity` of the task.

    Raises
    ------
    PredictionError
        Nothing is left.
    """
    identity = task_identity(ontology.name, task)
    mine = _pair_groups(tasks) == identity
    if TASKS.has(tasks, "ontology_checksum"):
        mine |= (tasks["ontology_checksum"].astype(str) == ontology.checksum) & (
            tasks["task"].map(field_pair) == field_pair(task)
        )
    left_out = sorted(_units(tasks[mine]))
    tasks = tasks[~mine].reset_index(drop=True)
    items = items[~_units(items).isin(set(left_out))]
    if tasks.empty or items.empty:
        raise PredictionError(f"no calibration task is left once {identity} is left out")
    return items, tasks, left_out, identity


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def write_prediction(result: PredictionResult, out: str | os.PathLike[str]) -> list[Path]:
    """Write ``prediction.csv`` (one row), ``reasons.csv``, ``features.csv`` (per item), ``calibration_tasks.csv``
    (with ``loto.csv`` when evaluated), ``budgets.csv`` and its figure ``budget_curve.png`` (the predicted gains
    at each budget beside the calibration's measured learning curves of the task's kind, where it holds
    several budgets) and the manifest into ``out``, each atomically.

    Examples
    --------
    >>> import tempfile
    >>> from lexprobe.predict import at_recorded_budget, fit_predictor, load_calibration
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hpo"]) & at_recorded_budget(tasks)]  # a part, for speed
    >>> predictor = fit_predictor(items[items["label"].isin(tasks["label"])], tasks, loto=False)
    >>> unit = predictor.tasks.iloc[0]  # go id-to-name, standing in for a new task's measured unit
    >>> prediction = predictor.predict_unit(unit) | {"label": unit["label"], "model": unit["model"], "warnings": []}
    >>> result = PredictionResult(prediction, items=pd.DataFrame({"id": ["GO:1"], "alignment": [0.1]}),
    ...                           task={"n_items": 200}, predictor=predictor, measured=None,
    ...                           manifest={"config": {}, "inputs": {}, "seed": 0})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in write_prediction(result, tmp)])
    ['prediction.csv', 'reasons.csv', 'features.csv', 'calibration_tasks.csv', 'manifest.json']
    """
    row = {k: v for k, v in result.prediction.items() if k not in ("reasons", "memorization_reasons", "warnings")}
    row["outside"] = " | ".join(result.prediction["outside"])
    row |= {f"task_{k}": v for k, v in result.task.items()}
    row["warnings"] = " | ".join(result.prediction["warnings"])
    if result.measured is not None:
        row |= {f"measured_{k}": result.measured[k] for k in ("memorization_gain", "generalization_gain")}
        row["measured_verdict"] = _measured_verdict(result.measured)
    tables = {
        "prediction.csv": pd.DataFrame([row]),
        "reasons.csv": pd.DataFrame(result.prediction["reasons"]),
        "features.csv": result.items,
        "calibration_tasks.csv": result.predictor.tasks,
    }
    if result.budgets is not None:
        tables["budgets.csv"] = result.budgets
    if result.predictor.loto is not None:
        tables["loto.csv"] = result.predictor.loto
    if result.predictor.holdout is not None:
        tables["holdout.csv"] = result.predictor.holdout
    if result.predictor.baselines is not None:
        tables["baselines.csv"] = result.predictor.baselines
    record = dict(result.manifest)
    if result.predictor.loto is not None:
        record["inputs"] = record["inputs"] | {"loto_summary": loto_summary(result.predictor.loto)}
    record["inputs"] = record["inputs"] | {
        "thresholds": result.predictor.thresholds,
        "threshold_notes": result.predictor.threshold_notes,
    }
    draw = None
    if result.budgets is not None and result.budgets["exposures"].nunique() >= 2:

        def draw(directory: Path) -> list[Path]:
            p = result.prediction
            measured = result.predictor.measured_curves(p["kind"])
            title = f"{p['label']} ({p['model']}, kind {p['kind']}): predicted gain by budget"
            return plot_budget_curve(result.budgets, measured, directory, title=title)

    return write_result_dir(out, tables, stage="predict", record=record, figures=draw)
