"""Pretraining exposure measured on the model itself: how familiar the base model already is with each pair.

The paper (arXiv 2510.19036) calls popularity "a proxy for pretraining exposure to term-identifier pairs"; the
proxies an ontology file offers (annotation, synonym or descendant counts) rank what a model already knows
barely above chance. These scores ask the model instead, by teacher forcing only (no generation), per item:

``target_logprob``, ``target_logprob_mean``
    log p(target + EOS | K-shot prompt + source), summed and per token: the prompt is the task's evaluation
    template with the same K worked train pairs as the K-shot baseline (:func:`lexprobe.train.draw_shots`), the
    completion exactly the tokens training teaches (target, then EOS).
``target_rank``, ``target_rank_score``, ``candidate_prob``
    The item's target among ``n_candidates`` targets of the task (itself and others drawn from the task's
    pairs, seeded) ranked by that log-probability: its mid-rank (1 = most probable), ``1 - (rank - 1) /
    (n - 1)`` (1 = first, 0 = last) and its probability renormalised over the candidates.
``source_mink``, ``target_mink``
    Min-K% Prob (Shi et al. 2023, "Detecting pretraining data from large language models"): the mean of the
    lowest ``min_k`` share of the token log-probabilities of the text alone.
``source_minkpp``, ``target_minkpp``
    Min-K%++ (Zhang et al. 2024): the same over standardised log-probabilities,
    ``(log p(x_t) - mu_t) / sigma_t`` with ``mu_t``, ``sigma_t`` the mean and standard deviation of
    ``log p(z)`` under the model's next-token distribution at ``t``.

Each score is higher for a pair the model finds more familiar. :func:`validate_exposure` checks them within
tasks against what the model does (its K-shot and zero-shot answers, what training taught it), beside the
ontology's popularity column and the surface forms they could be measuring (token counts).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.config import StageConfig
from lexprobe.exceptions import PredictionError, TrainingError
from lexprobe.runs import atomic_path, make_manifest, read_json_object, sha256_file, write_manifest
from lexprobe.stats import cluster_bootstrap, pooled_auc, within_auc
from lexprobe.tasks import field_pair_label, get_task, prompt_templates, run_ontology_name
from lexprobe.train import (
    draw_shots,
    encode_completion,
    encode_formatted,
    few_shot_prompt,
    read_train_config,
    shots_for,
)

__all__ = [
    "EXPOSURE_SCORES",
    "ExposureConfig",
    "ExposureValidation",
    "exposure_dir",
    "measure_exposure",
    "read_exposure",
    "score_exposure",
    "validate_exposure",
    "write_validation",
]

logger = logging.getLogger(__name__)

#: The per-item scores, each higher for a more familiar pair, and what each is.
EXPOSURE_SCORES: dict[str, str] = {
    "target_logprob": "log p(target + EOS | K-shot prompt), summed over tokens",
    "target_logprob_mean": "log p(target + EOS | K-shot prompt), per token",
    "target_rank_score": "1 - (rank - 1) / (n - 1) of the target among the candidates (1 = most probable)",
    "candidate_prob": "the target's probability renormalised over the candidates",
    "source_mink": "Min-K% Prob of the source text alone",
    "target_mink": "Min-K% Prob of the target text alone",
    "source_minkpp": "Min-K%++ of the source text alone",
    "target_minkpp": "Min-K%++ of the target text alone",
}


@dataclasses.dataclass(frozen=True)
class ExposureConfig(StageConfig):
    """How exposure is scored.

    Parameters
    ----------
    shots : int
        Worked train pairs before each query (the K-shot baseline's prompt; 0: the training prompt alone).
    seed : int
        Draws the shots (as :func:`lexprobe.train.evaluate_run` does with the same seed) and the candidates.
    n_candidates : int
        Targets the item's own is ranked among (itself included); fewer when the task has fewer distinct ones.
    min_k : float
        The share of lowest token log-probabilities Min-K% and Min-K%++ average, in (0, 1].
    batch_size : int
        Candidate continuations (and texts) per forward pass.
    """

    shots: int = 5
    seed: int = 0
    n_candidates: int = 20
    min_k: float = 0.2
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name in ("shots", "seed", "n_candidates", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise PredictionError(f"`{name}` must be a whole number >= 0, got {value!r}")
        if self.n_candidates < 2:
            raise PredictionError(
                f"`n_candidates` must be at least 2 (the target and one other), got {self.n_candidates}"
            )
        if self.batch_size < 1:
            raise PredictionError(f"`batch_size` must be at least 1, got {self.batch_size}")
        if not (isinstance(self.min_k, (int, float)) and 0 < float(self.min_k) <= 1):
            raise PredictionError(f"`min_k` must be in (0, 1], got {self.min_k!r}")


# --- scoring ----------------------------------------------------------------------------------------------------


def _token_logprobs(logits: Any, targets: Any) -> tuple[Any, Any]:
    """Log-probabilities of ``targets`` under ``logits`` (..., vocab), and their Min-K%++ standardised form."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    var = (p * logp.square()).sum(-1) - mu.square()
    z = (chosen - mu) / var.clamp_min(1e-12).sqrt()
    return chosen, z


def _lowest_mean(values: np.ndarray, share: float) -> float:
    """Mean of the lowest ``ceil(share * n)`` values (at least one); NaN for none."""
    if len(values) == 0:
        return float("nan")
    k = max(1, int(np.ceil(share * len(values))))
    return float(np.sort(values)[:k].mean())


def _text_scores(model: Any, tokenizer: Any, texts: Sequence[str], *, min_k: float, batch_size: int) -> np.ndarray:
    """Min-K% and Min-K%++ of each text alone, shape (n_texts, 2): the first token follows BOS (or EOS where the
    tokenizer has no BOS), so every token of the text is scored."""
    import torch

    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if start is None:
        raise TrainingError("the tokenizer has neither a BOS nor an EOS token to start a text from")
    encoded = [[start] + list(tokenizer(str(t), add_special_tokens=False)["input_ids"]) for t in texts]
    out = np.full((len(texts), 2), np.nan)
    device = next(model.parameters()).device
    order = np.argsort([len(e) for e in encoded])  # similar lengths together: less padding
    for lo in range(0, len(order), batch_size):
        rows = order[lo : lo + batch_size]
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), start, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[r, : len(encoded[i])] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        chosen, z = _token_logprobs(logits[:, :-1], ids[:, 1:].to(device))
        chosen, z = chosen.cpu().numpy(), z.cpu().numpy()
        for r, i in enumerate(rows):
            n = len(encoded[i]) - 1
            out[i] = (_lowest_mean(chosen[r, :n], min_k), _lowest_mean(z[r, :n], min_k))
    return out


def _continuation_logprobs(
    model: Any, prompt: list[int], continuations: list[list[int]], *, batch_size: int
) -> np.ndarray:
    """Summed log p(continuation | prompt) of each continuation: the prompt runs once, its key/value cache is
    repeated for a batch of right-padded continuations (a pad only follows the tokens that are scored, so no
    mask is needed under causal attention)."""
    import copy

    import torch

    device = next(model.parameters()).device
    with torch.no_grad(), warnings.catch_warnings():
        # transformers 5.2x renames `past_key_values` to `cache`; the old name works on every release we admit
        warnings.simplefilter("ignore", FutureWarning)
        first = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
    past = getattr(first, "past_key_values", None) or getattr(first, "cache", None)
    last = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
    totals = np.empty(len(continuations))
    for lo in range(0, len(continuations), batch_size):
        chunk = continuations[lo : lo + batch_size]
        width = max(len(c) for c in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        for r, c in enumerate(chunk):
            ids[r, : len(c)] = torch.tensor(c, device=device)
        cache = copy.deepcopy(past)
        if len(chunk) > 1:
            cache.batch_repeat_interleave(len(chunk))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            logits = model(input_ids=ids, past_key_values=cache, use_cache=True).logits
        # token 0 of every continuation is scored by the prompt's last position, token j by position j - 1
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1) if width > 1 else None
        for r, c in enumerate(chunk):
            total = float(last[c[0]])
            if len(c) > 1:
                total += float(logp[r, torch.arange(len(c) - 1), torch.tensor(c[1:], device=device)].sum())
            totals[lo + r] = total
    return totals


def _mid_rank(values: np.ndarray, index: int) -> float:
    """1 + the number of values above ``values[index]`` + half the others equal to it."""
    v = values[index]
    return 1.0 + float((values > v).sum()) + 0.5 * float((values == v).sum() - 1)


def score_exposure(
    lm: Any,
    template: Any,
    items: pd.DataFrame,
    shot_pool: pd.DataFrame,
    *,
    config: ExposureConfig | None = None,
    candidates: Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> pd.DataFrame:
    """Exposure scores of each item (the module's columns), in the items' order.

    Parameters
    ----------
    lm : LoadedModel
        A causal LM loaded with its head (``load_model(..., head=True)``).
    template : PromptTemplate
        The task's evaluation prompt (``prompt_templates(ontology, task, 1)[0]``).
    items : pandas.DataFrame
        Columns ``source``, ``target``, ``id``: the pairs to score.
    shot_pool : pandas.DataFrame
        Pairs the K shots are drawn from (a run's train split), columns ``source``, ``target``, ``id``.
    config : ExposureConfig, optional
    candidates : sequence of str, optional
        Targets to rank each item's own among (default: the distinct targets of ``items`` and ``shot_pool``).
    progress : callable, optional
        Called as ``progress("scoring exposure", n_done, n_items)``.

    Returns
    -------
    pandas.DataFrame
        ``id``, ``source``, ``target``, ``completion_tokens``, ``target_logprob``, ``target_logprob_mean``,
        ``target_rank``, ``n_candidates``, ``target_rank_score``, ``candidate_prob``, ``source_mink``,
        ``source_minkpp``, ``target_mink``, ``target_minkpp``.

    Raises
    ------
    TrainingError
        No items, a tokenizer without EOS, or fewer train pairs than shots (plus one spare).
    """
    config = config or ExposureConfig()
    if items.empty:
        raise TrainingError("no items to score; give a split with pairs")
    tokenizer, model = lm.tokenizer, lm.model
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TrainingError("the tokenizer has no EOS token; an answer's end cannot be scored")
    items = items[["source", "target", "id"]].astype(str).reset_index(drop=True)
    pool = shot_pool[["source", "target", "id"]].astype(str).reset_index(drop=True)
    drawn = _drawn_shots(pool, config)
    targets = list(dict.fromkeys(candidates if candidates is not None else [*items["target"], *pool["target"]]))
    rng = np.random.default_rng(config.seed)
    rows = []
    for n, (source, target, term_id) in enumerate(items.itertuples(index=False)):
        rows.append(_score_item(lm, template, config, drawn, targets, rng, source, target, term_id))
        if progress is not None:
            progress("scoring exposure", n + 1, len(items))
    frame = pd.DataFrame(rows)
    for side in ("source", "target"):
        scored = _text_scores(model, tokenizer, items[side].tolist(), min_k=config.min_k, batch_size=config.batch_size)
        frame[f"{side}_mink"], frame[f"{side}_minkpp"] = scored[:, 0], scored[:, 1]
    return frame


def _drawn_shots(pool: pd.DataFrame, config: ExposureConfig) -> pd.DataFrame | None:
    """The K train pairs every prompt shows (``None`` without shots), checked against the pool's size."""
    if not config.shots:
        return None
    if config.shots >= len(pool):
        raise TrainingError(f"`shots` must be smaller than the number of train pairs ({len(pool)}), got {config.shots}")
    return draw_shots(pool, config.shots, config.seed)


def _score_item(
    lm: Any,
    template: Any,
    config: ExposureConfig,
    drawn: pd.DataFrame | None,
    targets: Sequence[str],
    rng: np.random.Generator,
    source: str,
    target: str,
    term_id: str,
) -> dict[str, Any]:
    """One item's answer scores: its target's log-probability and its rank among sampled other targets."""
    tokenizer, model, eos = lm.tokenizer, lm.model, lm.tokenizer.eos_token_id
    examples = []
    if drawn is not None:
        examples = [(drawn["source"][j], drawn["target"][j]) for j in shots_for(drawn, config.shots, source, term_id)]
    text = few_shot_prompt(tokenizer, template, examples, source)
    prompt = encode_formatted(tokenizer, text)
    others = [t for t in targets if t.casefold() != target.casefold()]
    k = min(config.n_candidates - 1, len(others))
    picked = [others[i] for i in np.sort(rng.choice(len(others), size=k, replace=False))] if k else []
    options = [target, *picked]
    completions = [encode_completion(tokenizer, text, prompt, t) + [eos] for t in options]
    scores = _continuation_logprobs(model, prompt, completions, batch_size=config.batch_size)
    rank = _mid_rank(scores, 0)
    shifted = np.exp(scores - scores.max())
    return {
        "id": term_id,
        "source": source,
        "target": target,
        "completion_tokens": len(completions[0]),
        "target_logprob": scores[0],
        "target_logprob_mean": scores[0] / len(completions[0]),
        "target_rank": rank,
        "n_candidates": len(options),
        "target_rank_score": 1 - (rank - 1) / (len(options) - 1) if len(options) > 1 else float("nan"),
        "candidate_prob": float(shifted[0] / shifted.sum()),
    }


# --- a run's exposure -------------------------------------------------------------------------------------------


def exposure_dir(run_dir: str | os.PathLike[str], shots: int) -> Path:
    """Where a run's exposure scores under ``shots``-shot prompts live: ``run_dir/exposure-K``."""
    return Path(run_dir) / f"exposure-{int(shots)}"


def _split_checksums(run_dir: Path) -> dict[str, str]:
    return {s: sha256_file(run_dir / "split" / f"{s}.csv") for s in ("train", "withheld")}


def _reusable(out: Path, config: ExposureConfig, splits: dict[str, str], model: dict[str, Any]) -> bool:
    manifest = read_json_object(out / "manifest.json")
    if manifest is None or not (out / "exposure.csv").is_file():
        return False
    inputs = manifest.get("inputs", {})
    return (
        manifest.get("config") == config.to_dict()
        and inputs.get("splits") == splits
        and inputs.get("model", {}).get("checksum") == model.get("checksum")
    )


def measure_exposure(
    run_dir: str | os.PathLike[str],
    *,
    config: ExposureConfig | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    lm: Any = None,
) -> pd.DataFrame:
    """Score every pair of a training run's split (train and withheld) with its base model, into
    ``run_dir/exposure-K/exposure.csv`` with a manifest; a finished result for the same split, model and
    settings is read back instead of scored again.

    Parameters
    ----------
    run_dir : path
        A run made by :func:`lexprobe.train.train_lora` (only its ``split/`` and config are read: the run need
        not have trained).
    config : ExposureConfig, optional
    device, dtype : str, optional
        Default: the run's own.
    progress : callable, optional
    lm : LoadedModel, optional
        The run's base model already loaded (with its head), to score several runs of one model.

    Returns
    -------
    pandas.DataFrame
        :func:`score_exposure`'s columns with ``split``.

    Raises
    ------
    TrainingError
        Not a run directory, or a split missing.
    """
    from lexprobe.ontology import load_ontology

    config = config or ExposureConfig()
    run_dir = Path(run_dir)
    train_config = read_train_config(run_dir)
    pairs = _read_run_pairs(run_dir)
    splits = _split_checksums(run_dir)
    out = exposure_dir(run_dir, config.shots)
    if lm is None:
        lm = train_config.load_base(device=device, dtype=dtype)
    described = lm.describe()
    if _reusable(out, config, splits, described):
        logger.info("exposure of %s read back from %s", run_dir, out)
        return read_exposure(run_dir, shots=config.shots)
    started = time.perf_counter()
    ontology = load_ontology(train_config.ontology)
    task = get_task(ontology, train_config.task)
    template = prompt_templates(train_config.ontology, task, 1)[0]
    items = pd.concat(
        [pairs["train"].assign(split="train"), pairs["withheld"].assign(split="withheld")], ignore_index=True
    )
    frame = score_exposure(lm, template, items, pairs["train"], config=config, progress=progress)
    frame.insert(0, "split", items["split"].to_numpy())
    seconds = time.perf_counter() - started
    _write_exposure(out, frame, config, run_dir, train_config, described, splits, seconds)
    return frame


def _read_run_pairs(run_dir: Path) -> dict[str, pd.DataFrame]:
    """A run's train and withheld pairs."""
    pairs = {}
    for split in ("train", "withheld"):
        path = run_dir / "split" / f"{split}.csv"
        if not path.is_file():
            raise TrainingError(f"{str(run_dir)!r} has no split/{split}.csv; re-run `lexprobe train` on it")
        pairs[split] = pd.read_csv(path, dtype={"source": str, "target": str, "id": str}, keep_default_na=False)
    return pairs


def _write_exposure(
    out: Path,
    frame: pd.DataFrame,
    config: ExposureConfig,
    run_dir: Path,
    train_config: Any,
    described: dict[str, Any],
    splits: dict[str, str],
    seconds: float,
) -> None:
    """``exposure.csv`` (written to a temporary file, then renamed), then the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "exposure.csv") as tmp:
        frame.to_csv(tmp, index=False)
    write_manifest(
        out,
        make_manifest(
            stage="exposure",
            config=config,
            inputs={
                "run": str(run_dir),
                "task": train_config.task,
                "ontology": train_config.ontology,
                "model": described,
                "splits": splits,
                "prompt_template": 0,
            },
            outputs={"exposure.csv": True, "n_items": len(frame), "seconds": seconds, "scores": EXPOSURE_SCORES},
            seed=config.seed,
        ),
    )


def read_exposure(run_dir: str | os.PathLike[str], *, shots: int = 5) -> pd.DataFrame:
    """A run's exposure scores as :func:`measure_exposure` wrote them.

    Raises
    ------
    PredictionError
        The run has no exposure scores under ``shots``-shot prompts, or they do not read.
    """
    path = exposure_dir(run_dir, shots) / "exposure.csv"
    if not path.is_file():
        raise PredictionError(
            f"{run_dir} has no exposure scores ({path} is missing); run `lexprobe exposure {run_dir}`"
        )
    try:
        frame = pd.read_csv(path, dtype={"id": str, "source": str, "target": str}, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise PredictionError(
            f"{path} does not read as a table ({exc}); run `lexprobe exposure {run_dir}` again"
        ) from None
    missing = [c for c in ("split", "id", *EXPOSURE_SCORES) if c not in frame]
    if missing:
        raise PredictionError(f"{path} lacks the columns {missing}; run `lexprobe exposure {run_dir}` again")
    return frame


# --- validation -------------------------------------------------------------------------------------------------

#: What each score is checked against: an item outcome, the items it is defined on, and what it means.
OUTCOMES: dict[str, str] = {
    "fewshot_correct": "the base model's K-shot answer is right (every item)",
    "zeroshot_correct": "the base model's zero-shot answer is right (every item)",
    "learned": "a train item answered wrong before tuning is answered right after it (memorization)",
    "generalized": "a withheld item answered wrong before tuning is answered right after it",
}

#: Columns set beside the exposure scores: the ontology's popularity and the surface forms a score could measure.
REFERENCES: dict[str, str] = {
    "log_popularity": "log(1 + the ontology's popularity column), as the split used it",
    "completion_tokens": "target tokens + EOS after the prompt (surface form)",
    "neg_completion_tokens": "minus that count: shorter answers first (surface form)",
    "source_chars": "characters of the source (surface form)",
    "target_logprob_length_residual": "target_logprob with a per-unit linear fit on completion_tokens removed",
}


@dataclasses.dataclass(frozen=True)
class ExposureValidation:
    """Exposure scores against outcomes, within tasks.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (model, outcome, score): ``within_auc`` (over pairs of items of one unit, one with the
        outcome and one without: the share the score puts in the right order, ties half), ``ci_low``,
        ``ci_high`` (percentile bootstrap over field pairs), ``pooled_auc``, ``n_items``, ``n_positive``,
        ``n_units``, ``n_units_ranked`` (units with both outcomes), ``n_clusters``, ``kind`` (exposure,
        popularity, surface).
    items : pandas.DataFrame
        Every scored item with its unit, outcomes and scores.
    shots : int
    """

    table: pd.DataFrame
    items: pd.DataFrame
    shots: int


def _run_items(run: Path, shots: int) -> pd.DataFrame:
    try:
        config = json.loads((run / "train_config.json").read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PredictionError(
            f"{run} is not a `lexprobe train` run directory (no readable train_config.json)"
        ) from None
    frame = read_exposure(run, shots=shots)
    ontology = run_ontology_name(config)
    frame["model"] = str(config["model"])
    frame["label"] = f"{ontology} {config['task']}"
    frame["field_pair"] = field_pair_label(ontology, str(config["task"]))
    key = ["split", "id", "source"]

    def outcomes(path: Path, columns: list[str]) -> pd.DataFrame | None:
        if not path.is_file():
            return None
        table = pd.read_csv(path, dtype={"id": str, "source": str}, keep_default_na=False)
        if not set(key + columns) <= set(table.columns):
            return None
        return table[key + columns]

    shot = outcomes(run / f"shots-{shots}" / "outcomes.csv", ["baseline_correct"])
    if shot is not None:
        frame = frame.merge(shot.rename(columns={"baseline_correct": "fewshot_correct"}), on=key, how="left")
    zero = outcomes(run / "outcomes.csv", ["baseline_correct", "tuned_correct", "popularity"])
    if zero is not None:
        frame = frame.merge(zero.rename(columns={"baseline_correct": "zeroshot_correct"}), on=key, how="left")
        wrong = ~frame["zeroshot_correct"].astype(bool)
        tuned = frame["tuned_correct"].astype(bool)
        frame["learned"] = np.where((frame["split"] == "train") & wrong, tuned, np.nan)
        frame["generalized"] = np.where((frame["split"] == "withheld") & wrong, tuned, np.nan)
        frame["log_popularity"] = np.log1p(frame["popularity"].astype(float).clip(lower=0))
    return frame


def _add_references(items: pd.DataFrame) -> pd.DataFrame:
    items = items.copy()
    items["neg_completion_tokens"] = -items["completion_tokens"].astype(float)
    items["source_chars"] = items["source"].astype(str).str.len().astype(float)
    resid = np.full(len(items), np.nan)
    for _, idx in items.groupby(["model", "label"]).indices.items():
        x = items["completion_tokens"].to_numpy(float)[idx]
        y = items["target_logprob"].to_numpy(float)[idx]
        if np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            resid[idx] = y - (slope * x + intercept)
        else:
            resid[idx] = y - y.mean()
    items["target_logprob_length_residual"] = resid
    return items


def _kind(score: str) -> str:
    if score in EXPOSURE_SCORES or score == "target_logprob_length_residual":
        return "exposure"
    return "popularity" if score == "log_popularity" else "surface"


def validate_exposure(
    run_dirs: Sequence[str | os.PathLike[str]], *, shots: int = 5, n_boot: int = 1000, seed: int = 0
) -> ExposureValidation:
    """Each exposure score, the ontology's popularity and the surface controls against each outcome, within
    tasks (AUC over pairs of items of one unit), with intervals from a bootstrap over field pairs (a task, its
    reverse and every model's runs of them resampled together, so no two clusters share an item).

    Parameters
    ----------
    run_dirs : sequence of path
        Runs with exposure scores (:func:`measure_exposure`), evaluated (zero-shot, and ``shots``-shot for the
        K-shot outcome).
    shots : int
    n_boot, seed

    Raises
    ------
    PredictionError
        No runs, or a run without exposure scores.
    """
    if not run_dirs:
        raise PredictionError("give at least one run directory with exposure scores")
    items = _add_references(pd.concat([_run_items(Path(r), shots) for r in run_dirs], ignore_index=True))
    scores = [*EXPOSURE_SCORES, *REFERENCES]
    rows = []
    for model in [*sorted(items["model"].unique()), "all"]:
        part = items if model == "all" else items[items["model"] == model]
        for outcome in OUTCOMES:
            if outcome not in part:
                continue
            have = part[part[outcome].notna()]
            for score in scores:
                if score not in have:
                    continue
                clusters: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
                for (pair, _, _), g in have.groupby(["field_pair", "model", "label"], sort=True):
                    y = g[outcome].astype(bool).to_numpy()
                    s = g[score].to_numpy(float)
                    keep = np.isfinite(s)
                    clusters.setdefault(pair, []).append((y[keep], s[keep]))
                grouped = list(clusters.values())

                def within(drawn: list[list[tuple[np.ndarray, np.ndarray]]]) -> float:
                    return within_auc([u for c in drawn for u in c])

                units = [u for c in grouped for u in c]
                ranked = sum(1 for y, _ in units if 0 < y.sum() < len(y))
                ranked_clusters = sum(1 for c in grouped if any(0 < y.sum() < len(y) for y, _ in c))
                low, high = (
                    cluster_bootstrap(within, grouped, n_boot=n_boot, seed=seed)
                    if ranked_clusters >= 2
                    else (np.nan,) * 2
                )
                y_all = np.concatenate([y for y, _ in units]) if units else np.array([], bool)
                rows.append(
                    {
                        "model": model,
                        "outcome": outcome,
                        "score": score,
                        "kind": _kind(score),
                        "within_auc": within(grouped),
                        "ci_low": low,
                        "ci_high": high,
                        "pooled_auc": pooled_auc(units),
                        "n_items": int(len(y_all)),
                        "n_positive": int(y_all.sum()),
                        "n_units": len(units),
                        "n_units_ranked": ranked,
                        "n_clusters": len(grouped),
                        "n_clusters_ranked": ranked_clusters,
                    }
                )
    return ExposureValidation(table=pd.DataFrame(rows), items=items, shots=shots)


def write_validation(result: ExposureValidation, out: str | os.PathLike[str], *, runs: Sequence[str]) -> Path:
    """Write ``exposure_validation.csv``, ``exposure_items.csv`` and ``manifest.json`` (stage
    ``exposure-validation``) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("exposure_validation.csv", result.table), ("exposure_items.csv", result.items)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    write_manifest(
        out,
        make_manifest(
            stage="exposure-validation",
            config={
                "shots": result.shots,
                "scores": EXPOSURE_SCORES,
                "references": REFERENCES,
                "outcomes": OUTCOMES,
                "statistic": "within-unit AUC; percentile bootstrap over field pairs",
            },
            inputs={"runs": list(runs)},
            outputs={"exposure_validation.csv": True, "exposure_items.csv": True},
            seed=0,
        ),
    )
    return out
