"""Learning curves: the run's adapter snapshots scored as the final adapter is, against exposures per pair.

``train_lora`` saves the adapter into ``snapshots/exposures-N/`` each time training passes an exposure count in
``TrainConfig.snapshots``. :func:`evaluate_curve` scores each of them (and the base model, at 0 exposures, and
the finished adapter) on the run's train and withheld pairs: greedy exact-match accuracy with Wilson intervals,
and the teacher-forced loss of each target (nats summed over the target's tokens, EOS left out) beside
``ln(number of targets)``, the loss of a uniform guess over every valid target. A loss per target near that line
means the model has learned the answer's format but not which answer; memorization drives it towards 0.

Writes into the run directory: ``learning_curve.csv`` (one row per point and split),
``learning_curve_items.csv`` (per item and point: parsed reply, correct, loss), ``learning_curve.png/.svg`` and
``learning_curve_manifest.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import LexprobeWarning, TrainingError
from lexprobe.figures import plot_learning_curve
from lexprobe.runs import atomic_path, make_manifest, write_manifest
from lexprobe.stats import wilson_interval
from lexprobe.tasks import get_task, prompt_templates, task_pairs
from lexprobe.train._config import SPLITS, is_complete, read_train_config
from lexprobe.train._data import build_examples, completion_collator
from lexprobe.train._evaluate import _score_frame, _with_adapter, generate_replies
from lexprobe.train._scoring import MAX_NEW_TOKENS, _Scorer
from lexprobe.train._trainer import SNAPSHOT_DIR, adapter_problem


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One adapter on the curve: ``exposures`` per pair (0: the base model), where it lies, the step it was at."""

    exposures: float
    adapter: Path | None
    step: int | None
    label: str


@dataclasses.dataclass(frozen=True)
class CurveResult:
    """Accuracy and loss per target against exposures.

    Attributes
    ----------
    run_dir : Path
    curve : pandas.DataFrame
        One row per point and split: ``exposures``, ``point``, ``step``, ``split``, ``n``, ``n_correct``,
        ``accuracy``, ``ci_low``, ``ci_high``, ``n_exact``, ``n_distinct`` (distinct parsed answers),
        ``loss_mean``, ``loss_median`` (nats per target) and ``ln_n_targets``.
    items : pandas.DataFrame
        One row per item, point and split.
    ln_n_targets : float
        ln of the number of distinct valid targets of the task (the loss of a uniform guess over them).

    Examples
    --------
    Reading a curve: the first exposure count at which withheld accuracy beats the base model's.

    >>> curve = pd.DataFrame({"exposures": [0.0, 0.0, 5.0, 5.0, 10.0, 10.0],
    ...                       "split": ["train", "withheld"] * 3, "accuracy": [0.0, 0.0, 0.4, 0.0, 0.9, 0.1]})
    >>> result = CurveResult(Path("run"), curve, pd.DataFrame(), ln_n_targets=np.log(2000))
    >>> withheld = result.curve[result.curve["split"] == "withheld"]
    >>> float(withheld.loc[withheld["accuracy"] > withheld["accuracy"].iloc[0], "exposures"].min())
    10.0
    """

    run_dir: Path
    curve: pd.DataFrame
    items: pd.DataFrame
    ln_n_targets: float


def snapshot_points(run_dir: str | os.PathLike[str]) -> list[CurvePoint]:
    """Every scorable adapter of a run: its snapshots and the finished adapter, by exposures (no base model).

    A snapshot that cannot be scored (its ``snapshot.json`` missing or unreadable, its exposures not a finite
    number above 0, its adapter config or weights missing or cut short) is left out with a
    :class:`~lexprobe.exceptions.LexprobeWarning`, as :func:`lexprobe.train.last_good_checkpoint` drops a
    damaged checkpoint; so is a finished adapter that cannot be loaded. Temporary folders (a save under way)
    are passed over.

    Raises
    ------
    TrainingError
        Two snapshots record the same exposure count (neither may silently replace the other).

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()  # removed when the example ends
    >>> snapshot = Path(tmp.name) / "snapshots" / "exposures-5"
    >>> snapshot.mkdir(parents=True)
    >>> _ = (snapshot / "snapshot.json").write_text('{"exposures": 5}')  # the adapter's weights are missing
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     points = snapshot_points(tmp.name)
    >>> points, caught[0].category.__name__  # left out, with a warning
    ([], 'LexprobeWarning')
    """
    run_dir = Path(run_dir)
    points: dict[float, CurvePoint] = {}
    folder = run_dir / SNAPSHOT_DIR
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        if path.name.startswith(".") or not path.is_dir():
            continue  # a snapshot is renamed into place whole from a hidden temporary folder
        exposures, problem = _snapshot_record(path)
        if problem:
            _skip(path, problem)
            continue
        key = round(exposures, 6)
        if key in points:
            raise TrainingError(
                f"{points[key].adapter} and {path} both record {exposures:g} exposures; remove the one that is "
                "not the snapshot at that count (or re-train with --snapshots)"
            )
        record = json.loads((path / "snapshot.json").read_text(encoding="utf-8"))
        points[key] = CurvePoint(exposures, path, record.get("step"), f"snapshots/{path.name}")
    if is_complete(run_dir):
        try:
            outputs = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["outputs"]
            exposures = float(outputs["exposures"])
        except (OSError, ValueError, KeyError, TypeError):
            exposures, outputs = float("nan"), {}  # trained before exposures were recorded
        if math.isfinite(exposures) and exposures > 0 and round(exposures, 6) not in points:
            problem = adapter_problem(run_dir / "adapter")
            if problem:
                _skip(run_dir / "adapter", problem)
            else:
                points[round(exposures, 6)] = CurvePoint(
                    exposures, run_dir / "adapter", outputs.get("n_steps"), "adapter"
                )
    return [points[x] for x in sorted(points)]


def _snapshot_record(path: Path) -> tuple[float, str | None]:
    """The exposures a snapshot folder records, and why it cannot be scored (``None``: it can)."""
    try:
        record = json.loads((path / "snapshot.json").read_text(encoding="utf-8"))
        exposures = float(record["exposures"])
    except FileNotFoundError:
        return math.nan, "snapshot.json is missing (its save was cut short)"
    except (OSError, ValueError, KeyError, TypeError):
        return math.nan, "snapshot.json is unreadable or records no exposures"
    if not (math.isfinite(exposures) and exposures > 0):
        return exposures, f"snapshot.json records {exposures!r} exposures, not a finite count above 0"

    return exposures, adapter_problem(path)


def _skip(path: Path, problem: str) -> None:
    warnings.warn(
        f"adapter {path} is left out of the learning curve ({problem}); re-train the run with --snapshots to "
        "make it again",
        LexprobeWarning,
        stacklevel=3,
    )


def _choose(available: list[CurvePoint], checkpoints: str | Sequence[float], run_dir: Path) -> list[CurvePoint]:
    if isinstance(checkpoints, str):
        if checkpoints != "all":
            raise TrainingError(f"--checkpoints must be 'all' or exposure counts like 10,30, got {checkpoints!r}")
        chosen = available
    else:
        odd = [x for x in checkpoints if not (math.isfinite(float(x)) and float(x) > 0)]
        if odd:
            raise TrainingError(f"--checkpoints takes exposure counts above 0, got {odd[0]!r}; give e.g. 10,30")
        by = {round(p.exposures, 6): p for p in available}
        missing = [x for x in checkpoints if round(float(x), 6) not in by]
        if missing:
            have = ", ".join(f"{p.exposures:g}" for p in available) or "none"
            raise TrainingError(
                f"{run_dir} has no snapshot at {', '.join(f'{x:g}' for x in missing)} exposures (it has: {have}); "
                "train with --snapshots to save them"
            )
        chosen = [by[round(float(x), 6)] for x in sorted(set(checkpoints))]
    if not chosen:
        raise TrainingError(
            f"{run_dir} has no adapter snapshots and no finished adapter; train it with --snapshots 10,20,30"
        )
    return chosen


def target_losses(
    model: Any, tokenizer: Any, pairs: pd.DataFrame, template: Any, *, batch_size: int = 16
) -> np.ndarray:
    """Teacher-forced loss of each pair's target after its prompt: nats summed over the target's tokens (the
    EOS that training also learns is left out), one value per pair, in order."""
    import torch

    examples = build_examples(pairs, [template], tokenizer)
    collate = completion_collator(tokenizer)
    device = next(model.parameters()).device
    order = np.argsort([len(e["input_ids"]) for e in examples], kind="stable")
    out = np.zeros(len(examples), dtype=np.float64)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate([examples[i] for i in chunk])
        labels = batch["labels"]
        # drop each row's last label (the EOS): the target's own tokens are scored
        ends = (labels != -100).long().cumsum(1).argmax(1)
        labels = labels.clone()
        labels[torch.arange(len(chunk)), ends] = -100
        with torch.inference_mode():
            logits = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            ).logits.float()
        shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
        target = labels[:, 1:].reshape(-1).to(device)
        nll = torch.nn.functional.cross_entropy(shifted, target, ignore_index=-100, reduction="none")
        out[chunk] = nll.view(len(chunk), -1).sum(1).cpu().numpy()
    return out


def evaluate_curve(
    run_dir: str | os.PathLike[str],
    *,
    checkpoints: str | Sequence[float] = "all",
    splits: Sequence[str] = SPLITS,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    device_map: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CurveResult:
    """Score the base model (0 exposures) and the run's adapter snapshots on its splits: a learning curve.

    Parameters
    ----------
    run_dir : path
        A ``lexprobe train`` run directory with snapshots (``--snapshots``) or a finished adapter.
    checkpoints : "all" or sequence of float
        Every snapshot and the finished adapter, or the snapshots at these exposure counts.
    splits, batch_size, max_new_tokens, device, dtype, device_map
        As for :func:`lexprobe.train.evaluate_run` (``dtype`` defaults to the run's training precision).
    progress : callable, optional
        ``progress("scoring snapshots", n_done, n_total)`` in generated replies, after each batch.

    Raises
    ------
    TrainingError
        No run directory or config, no snapshot at a requested exposure count, no adapter at all.

    Examples
    --------
    A run directory is checked before any model is loaded:

    >>> evaluate_curve("no-such-run")
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.TrainingError: run directory 'no-such-run' does not exist; make one with ...
    """
    from lexprobe.ontology import load_ontology

    run_dir = Path(run_dir)
    config = read_train_config(run_dir)
    splits = tuple(dict.fromkeys(splits))
    if not splits or any(s not in SPLITS for s in splits):
        raise TrainingError(f"`splits` must be from {', '.join(SPLITS)}, got {list(splits)}")
    points = _choose(snapshot_points(run_dir), checkpoints, run_dir)
    pairs = _read_split_pairs(run_dir, splits)
    started = time.perf_counter()
    ontology = load_ontology(config.ontology)
    task = get_task(ontology, config.task)
    template = prompt_templates(config.ontology, task, 1)[0]
    scorer = _Scorer(ontology, task.target)
    n_targets = int(task_pairs(ontology, task, categories=config.categories)["target"].nunique())
    ln_n = math.log(n_targets)
    budget = max_new_tokens or MAX_NEW_TOKENS.get(task.target, 32)
    lm = config.load_base(device=device, dtype=dtype, device_map=device_map)
    todo = [CurvePoint(0.0, None, 0, "baseline"), *points]
    tick = _scoring_ticker(progress, len(todo) * sum(len(p) for p in pairs.values()))
    item_rows: list[dict[str, Any]] = []
    curve_rows: list[dict[str, Any]] = []
    model = lm.model
    for point in todo:
        if point.adapter is not None:
            model = _load_point(model, point)
        for s, frame in pairs.items():
            prompts = [template.render(x) for x in frame["source"].astype(str)]
            replies = generate_replies(
                model, lm.tokenizer, prompts, max_new_tokens=budget, batch_size=batch_size, progress=tick
            )
            scored = pd.DataFrame(_score_frame(frame, replies, scorer, split=s, which=point.label))
            scored["loss"] = target_losses(model, lm.tokenizer, frame, template, batch_size=max(1, batch_size // 2))
            scored["exposures"] = point.exposures
            item_rows += scored.to_dict(orient="records")
            curve_rows.append(_curve_row(point, s, scored, ln_n))
    result = CurveResult(run_dir, pd.DataFrame(curve_rows), pd.DataFrame(item_rows), ln_n)
    _write_curve(result, config, lm, budget=budget, n_targets=n_targets, seconds=time.perf_counter() - started)
    return result


def _read_split_pairs(run_dir: Path, splits: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The pairs of each split of a run directory."""
    pairs = {}
    for s in splits:
        path = run_dir / "split" / f"{s}.csv"
        if not path.is_file():
            raise TrainingError(f"{str(run_dir)!r} has no split/{s}.csv; re-run `lexprobe train` on it")
        pairs[s] = pd.read_csv(path, dtype={"source": str, "target": str, "id": str})
    return pairs


def _scoring_ticker(progress: Callable[[str, int, int], None] | None, total: int) -> Callable[[int], None]:
    """``tick(n)``: ``n`` more replies scored, reported as ``progress("scoring snapshots", done, total)``."""
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress("scoring snapshots", done[0], total)

    return tick


def _curve_row(point: CurvePoint, split: str, scored: pd.DataFrame, ln_n: float) -> dict[str, Any]:
    """One point of the curve on one split: accuracy with its Wilson interval, matches, distinct replies, loss."""
    k, n = int(scored["correct"].sum()), len(scored)
    low, high = wilson_interval(k, n)
    return {
        "exposures": point.exposures,
        "point": point.label,
        "step": point.step,
        "split": split,
        "n": n,
        "n_correct": k,
        "accuracy": k / n if n else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "n_exact": int((scored["match_kind"] == "exact").sum()),
        "n_distinct": int(scored["parsed"].dropna().nunique()),
        "loss_mean": float(scored["loss"].mean()),
        "loss_median": float(scored["loss"].median()),
        "ln_n_targets": ln_n,
    }


def _load_point(model: Any, point: CurvePoint) -> Any:
    """The base model with ``point``'s adapter: a previous adapter is unloaded first (its LoRA layers removed,
    the base weights untouched), so each point is scored alone."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.unload()
    return _with_adapter(model, point.adapter)


def _write_curve(result: CurveResult, config: Any, lm: Any, *, budget: int, n_targets: int, seconds: float) -> None:
    run_dir = result.run_dir
    with atomic_path(run_dir / "learning_curve.csv") as tmp:
        result.curve.to_csv(tmp, index=False)
    with atomic_path(run_dir / "learning_curve_items.csv") as tmp:
        result.items.to_csv(tmp, index=False)
    _plot_curve(result, run_dir, title=f"{config.ontology} {config.task} ({config.model})")
    write_manifest(
        run_dir,
        make_manifest(
            stage="learning-curve",
            config={"max_new_tokens": budget, "prompt_template": 0, "points": sorted(set(result.curve["point"]))},
            inputs={"train_config": config.to_dict(), "model": lm.describe()},
            outputs={
                "learning_curve.csv": True,
                "learning_curve_items.csv": True,
                "n_targets": n_targets,
                "ln_n_targets": result.ln_n_targets,
                "seconds": seconds,
            },
            seed=config.seed,
        ),
        name="learning_curve_manifest.json",
    )


def _plot_curve(result: CurveResult, directory: Path, *, title: str) -> None:
    plot_learning_curve(result.curve, directory, ln_n_targets=result.ln_n_targets, title=title)
