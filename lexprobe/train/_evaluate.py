"""Evaluation: greedy replies of the baseline and the tuned model, scored, summarised and written."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import TrainingError
from lexprobe.runs import atomic_path, atomic_write_json, make_manifest, write_manifest
from lexprobe.stats import paired_bootstrap_interval, wilson_interval
from lexprobe.train._config import SPLITS, TrainConfig, is_complete, read_train_config
from lexprobe.train._data import _encode_prompt
from lexprobe.train._scoring import MAX_NEW_TOKENS, _Scorer, outcome_category


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Baseline and tuned exact-match accuracy of a run, per split, bin and item.

    Attributes
    ----------
    run_dir : Path
    predictions : pandas.DataFrame
        One row per split, model and item: raw ``reply``, ``parsed``, ``well_formed``, ``hallucinated``,
        ``match_kind``, ``correct``.
    outcomes : pandas.DataFrame
        One row per item and split: baseline and tuned results side by side and the ``category``.
    summary : pandas.DataFrame
        Accuracy with a Wilson interval per split, model and popularity bin (``bin == "all"`` overall).
    gains : dict
        Per split: baseline and tuned accuracy, ``gain`` (tuned - baseline) with a paired-bootstrap interval,
        and category counts. Empty for a baseline-only evaluation.
    """

    run_dir: Path
    predictions: pd.DataFrame
    outcomes: pd.DataFrame
    summary: pd.DataFrame
    gains: dict[str, dict[str, Any]]

    @property
    def memorization_gain(self) -> float:
        return float(self.gains.get("train", {}).get("gain", float("nan")))

    @property
    def generalization_gain(self) -> float:
        return float(self.gains.get("withheld", {}).get("gain", float("nan")))


def generate_replies(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy replies to ``prompts`` (formatted as in training), batched with left padding.

    Prompts are sorted by length so batches carry little padding; the replies come back in input order.
    """
    import torch
    from transformers import GenerationConfig

    encoded = [_encode_prompt(tokenizer, p) for p in prompts]
    order = np.argsort([len(e) for e in encoded], kind="stable")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    generation = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id
    )
    device = next(model.parameters()).device
    replies: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            n = len(encoded[i])
            input_ids[row, width - n :] = torch.tensor(encoded[i])
            attention[row, width - n :] = 1
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model.generate(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), generation_config=generation
            )
        for row, i in enumerate(chunk):
            replies[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True)
        if progress is not None:
            progress(len(chunk))
    return replies


def _summary_rows(frame: pd.DataFrame, split: str, which: str, field: str) -> list[dict[str, Any]]:
    rows = []
    groups = [("all", frame)] + [(str(b), g) for b, g in frame.groupby("bin", sort=True)]
    for label, g in groups:
        n, k = len(g), int(g["correct"].sum())
        low, high = wilson_interval(k, n)
        well = int(g["well_formed"].sum())
        hall = int(g["hallucinated"].sum())
        rows.append(
            {
                "split": split,
                "model": which,
                "bin": label,
                "n": n,
                "n_correct": k,
                "accuracy": k / n if n else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "n_exact": int((g["match_kind"] == "exact").sum()),
                "n_alt": int((g["match_kind"] == "alt").sum()),
                "n_well_formed": well,
                "n_hallucinated": hall if field == "id" else 0,
                "hallucinated_share": (hall / well if well else float("nan")) if field == "id" else float("nan"),
            }
        )
    return rows


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    splits: Sequence[str] = SPLITS,
    baseline_only: bool = False,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    device: str | None = None,
    dtype: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Exact-match accuracy of the base model (baseline) and the model with the run's adapter (tuned).

    Template 0 is the prompt, formatted as in training; replies are greedy. Writes ``predictions.csv``,
    ``outcomes.csv``, ``evaluation_summary.csv``, ``evaluation.json``, ``evaluation_manifest.json`` and
    ``accuracy_by_bin.png/.svg`` into ``run_dir``.

    Parameters
    ----------
    run_dir : path
        A run directory made by :func:`train_lora`.
    splits : sequence of {"train", "withheld"}
    baseline_only : bool
        Evaluate the model without the adapter only (the run need not have finished training).
    batch_size, max_new_tokens
        Generation batch and budget (default by target field, :data:`MAX_NEW_TOKENS`).
    n_boot, seed
        Paired-bootstrap resamples for the gain intervals, and their seed.
    device, dtype : str, optional
    progress : callable, optional
        Called as ``progress(n_done_now, n_total)`` after each generation batch.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    TrainingError
        Missing run directory or config, no adapter for a tuned evaluation, an unknown or empty split.
    """
    run_dir = Path(run_dir)
    config = read_train_config(run_dir)
    splits = tuple(dict.fromkeys(splits))
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise TrainingError(f"`splits` must be from {', '.join(SPLITS)}, got {list(splits)}")
    if not baseline_only and not is_complete(run_dir):
        raise TrainingError(
            f"{str(run_dir)!r} has no finished adapter; run `lexprobe train` on it to finish, or pass --baseline"
        )
    if not baseline_only:
        _check_adapter(run_dir)  # now, not after the baseline's generation
    pairs = {}
    for s in splits:
        path = run_dir / "split" / f"{s}.csv"
        if not path.is_file():
            raise TrainingError(f"{str(run_dir)!r} has no split/{s}.csv; re-run `lexprobe train` on it")
        frame = pd.read_csv(path, dtype={"source": str, "target": str, "id": str})
        if frame.empty:
            raise TrainingError(f"split {s!r} of {str(run_dir)!r} has no pairs; evaluate another --split")
        pairs[s] = frame
    started = time.perf_counter()
    from lexprobe.models import load_model
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import get_task, prompt_templates

    ontology = load_ontology(config.ontology)
    task = get_task(ontology, config.task)
    template = prompt_templates(config.ontology, task, 1)[0]
    scorer = _Scorer(ontology, task.target)
    budget = max_new_tokens or MAX_NEW_TOKENS.get(task.target, 32)
    lm = load_model(config.model, device=device or config.device, dtype=dtype or config.dtype, head=True)
    models = ["baseline"] if baseline_only else ["baseline", "tuned"]
    total = sum(len(p) for p in pairs.values()) * len(models)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    records = []
    model = lm.model
    for which in models:
        if which == "tuned":
            model = _with_adapter(lm.model, run_dir / "adapter")
        for s, frame in pairs.items():
            prompts = [template.render(x) for x in frame["source"].astype(str)]
            replies = generate_replies(
                model, lm.tokenizer, prompts, max_new_tokens=budget, batch_size=batch_size, progress=tick
            )
            records += _score_frame(frame, replies, scorer, split=s, which=which)
    predictions = pd.DataFrame(records)
    result = _assemble(run_dir, predictions, splits, models, task.target, n_boot=n_boot, seed=seed)
    seconds = time.perf_counter() - started
    _write_evaluation(
        run_dir, result, config, lm, budget=budget, baseline_only=baseline_only, seed=seed, seconds=seconds
    )
    return result


def _retrain(run_dir: Path) -> str:
    return f"re-train it: delete {run_dir / 'adapter'} and re-run the `lexprobe train` command that made {run_dir}"


def _check_adapter(run_dir: Path) -> None:
    """Read the adapter's config and the headers of its weights, so a damaged adapter is told before any work.

    Raises
    ------
    TrainingError
        An unreadable ``adapter_config.json`` or one without ``peft_type``; missing, truncated or corrupt weights.
    """
    adapter = run_dir / "adapter"
    path = adapter / "adapter_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"the adapter of {run_dir} is damaged: {path} cannot be read ({_short(exc)}); {_retrain(run_dir)}"
        ) from None
    if not isinstance(data, dict) or not data.get("peft_type"):
        raise TrainingError(f"the adapter of {run_dir} is damaged: {path} has no peft_type; {_retrain(run_dir)}")
    weights = sorted(adapter.glob("adapter_model*.safetensors"))
    if not weights and not any(adapter.glob("adapter_model*.bin")):
        raise TrainingError(f"the adapter of {run_dir} has no weights (adapter_model.safetensors); {_retrain(run_dir)}")
    from safetensors import safe_open

    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as fh:
                fh.keys()
        except Exception as exc:  # SafetensorError (truncated, bad header) derives from Exception only
            raise TrainingError(
                f"the adapter of {run_dir} is damaged: {file} is truncated or corrupt ({_short(exc)}); "
                f"{_retrain(run_dir)}"
            ) from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _with_adapter(model: Any, adapter: Path) -> Any:
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API deprecated for v6
        try:
            tuned = PeftModel.from_pretrained(model, str(adapter))
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # an adapter that does not fit this model, or damaged past the headers
            raise TrainingError(
                f"cannot load the adapter {adapter} ({_short(exc)}); {_retrain(adapter.parent)}"
            ) from None
    return tuned.eval()


def _score_frame(frame: pd.DataFrame, replies: list[str], scorer: _Scorer, *, split: str, which: str) -> list[dict]:
    records = []
    for row, reply in zip(frame.itertuples(index=False), replies):
        score = scorer.score(reply, str(row.target), str(row.id))
        records.append(
            {
                "split": split,
                "model": which,
                "id": row.id,
                "source": row.source,
                "target": row.target,
                "popularity": row.popularity,
                "bin": int(row.bin),
                "reply": reply,
                "parsed": score.parsed,
                "well_formed": score.well_formed,
                "hallucinated": score.hallucinated,
                "match_kind": score.match_kind,
                "correct": score.correct,
            }
        )
    return records


def _assemble(
    run_dir: Path, predictions: pd.DataFrame, splits: Sequence[str], models: Sequence[str], field: str, **boot: Any
) -> EvaluationResult:
    keys = ["split", "id", "source", "target", "popularity", "bin"]
    summary_rows: list[dict[str, Any]] = []
    outcomes = predictions[predictions["model"] == "baseline"][keys].reset_index(drop=True)
    for which in models:
        part = predictions[predictions["model"] == which].reset_index(drop=True)
        for column in ("parsed", "match_kind", "correct"):
            outcomes[f"{which}_{column}"] = part[column].to_numpy()
        if field == "id":
            outcomes[f"{which}_hallucinated"] = part["hallucinated"].to_numpy()
        for s in splits:
            summary_rows += _summary_rows(part[part["split"] == s], s, which, field)
    gains: dict[str, dict[str, Any]] = {}
    if "tuned" in models:
        outcomes["category"] = [
            outcome_category(b, t) for b, t in zip(outcomes["baseline_correct"], outcomes["tuned_correct"])
        ]
        for s in splits:
            o = outcomes[outcomes["split"] == s]
            b, t = o["baseline_correct"].to_numpy(bool), o["tuned_correct"].to_numpy(bool)
            low, high = paired_bootstrap_interval(b, t, **boot)
            counts = o["category"].value_counts()
            gains[s] = {
                "n": len(o),
                "baseline": float(b.mean()),
                "tuned": float(t.mean()),
                "gain": float(t.mean() - b.mean()),
                "gain_ci_low": low,
                "gain_ci_high": high,
                **{c: int(counts.get(c, 0)) for c in ("gained", "lost", "correct both", "incorrect both")},
            }
    return EvaluationResult(
        run_dir=run_dir, predictions=predictions, outcomes=outcomes, summary=pd.DataFrame(summary_rows), gains=gains
    )


def _write_evaluation(
    run_dir: Path,
    result: EvaluationResult,
    config: TrainConfig,
    lm: Any,
    *,
    budget: int,
    baseline_only: bool,
    seed: int,
    seconds: float,
) -> None:
    for name, frame in (
        ("predictions.csv", result.predictions),
        ("outcomes.csv", result.outcomes),
        ("evaluation_summary.csv", result.summary),
    ):
        with atomic_path(run_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
    overall = result.summary[result.summary["bin"] == "all"]
    by_bin = result.summary[result.summary["bin"] != "all"]
    report = {
        "ontology": config.ontology,
        "task": config.task,
        "model": config.model,
        "accuracy": overall.to_dict(orient="records"),
        "accuracy_by_bin": by_bin.to_dict(orient="records"),
        "gains": result.gains,
        "memorization_gain": result.gains.get("train", {}).get("gain"),
        "generalization_gain": result.gains.get("withheld", {}).get("gain"),
        "scoring": "exact match; ids after CURIE normalization, names and symbols case-insensitive; "
        "alternative ids, previous/alias symbols and synonyms count as correct (match_kind 'alt')",
        "intervals": "accuracy: Wilson score 95%; gain: paired bootstrap percentile 95% over items",
    }
    atomic_write_json(run_dir / "evaluation.json", report)
    _plot_accuracy_by_bin(by_bin, run_dir, title=f"{config.ontology} {config.task}")
    config_record = {"baseline_only": baseline_only, "max_new_tokens": budget, "prompt_template": 0, "seed": seed}
    write_manifest(
        run_dir,
        make_manifest(
            stage="evaluate",
            config=config_record,
            inputs={"train_config": config.to_dict(), "model": lm.describe(), "adapter": not baseline_only},
            outputs={n: True for n in ("predictions.csv", "outcomes.csv", "evaluation_summary.csv", "evaluation.json")}
            | {"seconds": seconds},
            seed=seed,
        ),
        name="evaluation_manifest.json",
    )


def _plot_accuracy_by_bin(by_bin: pd.DataFrame, directory: Path, *, title: str) -> None:
    from lexprobe.figures import OKABE_ITO, pyplot, save_figure

    if by_bin.empty:
        return
    plt = pyplot()
    splits = list(dict.fromkeys(by_bin["split"]))
    fig, axes = plt.subplots(1, len(splits), figsize=(4.4 * len(splits), 3.2), squeeze=False, sharey=True)
    for ax, s in zip(axes[0], splits):
        for colour, (which, g) in zip(OKABE_ITO, by_bin[by_bin["split"] == s].groupby("model", sort=False)):
            x = g["bin"].astype(int).to_numpy()
            y = g["accuracy"].to_numpy()
            # clip: a Wilson bound can sit a rounding error on the wrong side of 0 or 1 accuracy
            err = np.clip(np.vstack([y - g["ci_low"].to_numpy(), g["ci_high"].to_numpy() - y]), 0, None)
            ax.errorbar(x, y, yerr=err, color=colour, marker="o", markersize=3, capsize=2, linewidth=1, label=which)
        ax.set_xlabel("popularity bin (0 = least popular)")
        ax.set_title(f"{title}: {s}")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("exact-match accuracy (Wilson 95%)")
    axes[0][0].legend(frameon=False)
    save_figure(fig, directory, "accuracy_by_bin")
