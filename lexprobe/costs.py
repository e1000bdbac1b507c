"""What a long command will cost before it runs: items, tokens, disk, and time from speeds measured here.

Extraction (``embed``, ``align``, ``lexicalization``) is estimated with the tokenizer only: the same items the
command would choose, tokenized as :mod:`lexprobe.embed` tokenizes them (sink prefix included), looked up in the
embedding cache under the keys the command would use (a finished entry costs nothing; shards of an interrupted
run are resumed), and the new arrays' size (layers x items x hidden size x bytes). Time is the tokens left to
compute over the *measured* rate: every real extraction records its tokens per second (timed from the end of
its first batch, which carries the warm-up) in ``$LEXPROBE_CACHE/rates.json`` (:mod:`lexprobe.rates`) for its
(model, device type, precision), and an estimate takes the median of the last few. Without a measurement on
this machine, or with only runs too small to time (under :data:`MIN_RATE_WORK` tokens), there is no time,
never a guessed one.
Measured here (two CPU cores shared with other jobs, bfloat16, 1,000 HGNC names, about 10,000 tokens): 93
tokens/s in a fresh process (bfloat16 kernels are prepared for each new batch shape), 380 to 570 once warm; the
median of the two predicted 30 s for a run that took 26 s.

Training is estimated from finished training runs of the same model, device type and precision that the
caller names: the examples per second their manifests record (the training loop's own speed).
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lexprobe.embed import ExtractionConfig, cache_key, resolve_layers, token_counts
from lexprobe.models import auto_device, dtype_name, load_tokenizer, resolve_dtype
from lexprobe.plan import study_plan
from lexprobe.rates import (
    KEEP_RATES,
    MAX_RECORDS,
    MIN_RATE_WORK,
    RATES_FILE,
    matching_rates,
    measured_rates,
    record_rate,
)
from lexprobe.runs import cache_dir as user_cache_dir
from lexprobe.runs import read_json_object

if TYPE_CHECKING:
    from lexprobe.align import AlignmentConfig
    from lexprobe.lexical import LexicalConfig
    from lexprobe.ontology import Ontology
    from lexprobe.train import TrainConfig

__all__ = [
    "Cost",
    "estimate_embedding",
    "estimate_alignment",
    "estimate_lexicalization",
    "estimate_training",
    "estimate_study",
    "finished_training_runs",
    "total_lines",
    "record_rate",
    "measured_rates",
    "format_bytes",
    "format_seconds",
    "RATES_FILE",
    "KEEP_RATES",
    "MIN_RATE_WORK",
    "MAX_RECORDS",
]


def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as disks are sold and ``du --si`` counts)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns


def format_seconds(seconds: float) -> str:
    """``75`` -> ``"1 min 15 s"``; ``4000`` -> ``"1 h 6 min"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


@dataclasses.dataclass
class Cost:
    """An estimate of what a stage will compute, store and take.

    Attributes
    ----------
    stage : str
        ``"embed"``, ``"align"``, ``"train"``...
    description : str
        What is estimated (ontology, fields, model, precision, device).
    n_items : int
        Items the stage works on (per field for extraction, summed over fields), or training examples.
    n_items_cached : int
        Of those, the ones already computed (finished cache entries, resumable shards, a finished run).
    work : int
        Units of work left: tokens to run through the model, or optimiser steps.
    total_work : int
        Units of work of the whole selection, cached or not.
    unit : str
        ``"tokens"`` or ``"steps"``.
    disk_bytes : int
        New bytes the results will take (embedding arrays, assembled after their shards).
    rate : float or None
        Measured units per second on this machine (median of ``n_rates`` measurements); None when there is none.
    n_rates : int
    seconds : float or None
        ``work / rate``; None without a measured rate.
    parts : list of dict
        Per field (or per run) details.
    notes : list of str
        What the reader should know (no measured rate yet, where a rate came from).
    """

    stage: str
    description: str
    n_items: int
    n_items_cached: int
    work: int
    total_work: int
    unit: str
    disk_bytes: int = 0
    rate: float | None = None
    n_rates: int = 0
    seconds: float | None = None
    parts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def n_items_to_compute(self) -> int:
        """Items not cached yet."""
        return self.n_items - self.n_items_cached

    def lines(self) -> list[str]:
        """The estimate as a few lines for people."""
        noun = "examples" if self.unit == "steps" else "items"
        out = [
            f"{self.stage}: {self.description}",
            f"  {noun}: {self.n_items:,}, {self.n_items_cached:,} already done, {self.n_items_to_compute:,} to compute",
            f"  work: {self.work:,} of {self.total_work:,} {self.unit} left",
        ]
        if self.unit == "tokens":
            out.append(f"  disk: {format_bytes(self.disk_bytes)} new")
        if self.work == 0:
            out.append("  time: none (everything is done already)")
        elif self.seconds is not None and self.rate is not None:
            runs = f"{self.n_rates} measurement{'s' if self.n_rates != 1 else ''}"
            rate = f"{self.rate:,.0f} {self.unit}/s" if self.rate >= 10 else f"{self.rate:.3g} {self.unit}/s"
            out.append(f"  time: about {format_seconds(self.seconds)} at {rate} (median of {runs} on this machine)")
        else:
            out.append("  time: unknown")
        out += [f"  note: {n}" for n in self.notes]
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record (with ``n_items_to_compute``)."""
        return dataclasses.asdict(self) | {"n_items_to_compute": self.n_items_to_compute}


# --- measured rates (kept by lexprobe.rates) ---------------------------------------------------------------


def _timed(cost: Cost, rates: list[float], what: str, *, small_only: bool = False) -> Cost:
    if rates and small_only:
        if cost.work:
            cost.notes.append(
                f"only small runs measured yet on this machine for {what} (under {MIN_RATE_WORK:,} {cost.unit}, too "
                f"short to time reliably; median {statistics.median(rates):,.0f} {cost.unit}/s); a larger run "
                "records a usable rate"
            )
    elif rates:
        cost.rate, cost.n_rates = statistics.median(rates), len(rates)
        cost.seconds = cost.work / cost.rate
    elif cost.work:
        cost.notes.append(f"no measured rate yet on this machine for {what}; a first real run records one")
    return cost


# --- embedding ------------------------------------------------------------------------------------------------


def _profile(model: Any, *, device: str | None, dtype: str | None) -> Any:
    """A loaded model as it is, or a spec as :func:`lexprobe.models.load_tokenizer` reads it (no weights)."""
    if hasattr(model, "tokenizer") and hasattr(model, "checksum"):
        return model

    return load_tokenizer(model, device=device, dtype=dtype)


def _done_in_shards(work: Path) -> set[int]:
    """Items the shards of an interrupted extraction hold (read from each shard's small ``items`` array)."""
    done: set[int] = set()
    for shard in sorted(work.glob("shard-*.npz")):
        try:
            with np.load(shard) as data:
                done.update(int(i) for i in data["items"])
        except Exception:  # noqa: BLE001 - a damaged shard is recomputed by the run, so it counts as not done
            continue
    return done


def estimate_embedding(
    ontology: Ontology | str,
    fields: Sequence[str],
    *,
    model: Any = "smollm2-135m",
    limit: int | None = None,
    seed: int = 0,
    categories: Sequence[str] | None = None,
    config: ExtractionConfig | None = None,
    dtype: str | None = "auto",
    device: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    stage: str = "embed",
) -> Cost:
    """What extracting the hidden states of ``fields`` will cost, with the tokenizer only (no forward pass).

    The items are the ones the stages choose: ``sample_terms(ontology, limit, seed=seed, fields=fields,
    categories=categories)`` (terms that have every field; ``embed`` gives one field, ``align`` every field of
    its pairs), each field's values tokenized as :mod:`lexprobe.embed` does and looked up under its cache key.

    Parameters
    ----------
    ontology : Ontology or str
    fields : sequence of str
    model : str or LoadedModel
        A spec (read without loading the weights: its config, tokenizer and checksum) or a loaded model.
    limit, seed, categories
        The term sample, as the command takes them.
    config : ExtractionConfig, optional
    dtype, device : str, optional
        As ``--dtype`` and ``--device``: the precision and device type select the measured rate and the cache key.
    cache_dir : path, optional
        The embedding cache (default ``$LEXPROBE_CACHE/embeddings``).
    stage : str
        The stage named in the summary.

    Returns
    -------
    Cost
        ``unit="tokens"``; one part per field with its items, tokens, cache key and state (``cached``,
        ``partial`` or ``new``).

    Raises
    ------
    LexprobeError
        What the stage itself would raise for these inputs (unknown ontology, field or model, empty selection).
    """
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import field_values, sample_terms

    config = config or ExtractionConfig()
    ont = load_ontology(ontology) if isinstance(ontology, str) else ontology
    fields = tuple(dict.fromkeys(fields))
    terms = sample_terms(ont, limit, seed=seed, fields=fields, categories=categories)
    profile = _profile(model, device=device, dtype=dtype)
    layers = resolve_layers(config.layers, profile.n_layers + 1)
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir("embeddings")
    keys = [str(k) for k in terms["id"]]
    parts = [_field_part(field_values(terms, field), field, keys, profile, config, layers, root) for field in fields]
    precision = dtype_name(profile.dtype)
    device_type = getattr(profile.device, "type", str(profile.device))
    what = f"{profile.name} ({precision} on {device_type})"
    cost = Cost(
        stage=stage,
        description=f"{ont.name} {', '.join(fields)}: {len(terms):,} terms x {len(layers)} layers on {what}",
        n_items=sum(p["n_items"] for p in parts),
        n_items_cached=sum(p["n_items_cached"] for p in parts),
        work=sum(p["n_tokens_to_compute"] for p in parts),
        total_work=sum(p["n_tokens"] for p in parts),
        unit="tokens",
        disk_bytes=sum(p["disk_bytes"] for p in parts),
        parts=parts,
    )
    rates, small_only = matching_rates("embed", profile, profile.device, profile.dtype)
    return _timed(cost, rates, what, small_only=small_only)


def _field_part(
    texts: Sequence[str],
    field: str,
    keys: Sequence[str],
    profile: Any,
    config: ExtractionConfig,
    layers: Sequence[int],
    root: Path,
) -> dict[str, Any]:
    """One field's part of an embedding's cost: its items and tokens, cached or to compute, and its disk size."""
    itemsize = np.dtype(config.storage_dtype).itemsize
    tokens = token_counts(texts, profile, config)
    key = cache_key(texts, keys, profile, config, layers)
    if (root / key / "manifest.json").is_file() and (root / key / "embeddings.npy").is_file():
        done, state = set(range(len(texts))), "cached"
    else:
        done = _done_in_shards(root / f"{key}.partial")
        state = "partial" if done else "new"
    return {
        "field": field,
        "key": key,
        "state": state,
        "n_items": len(texts),
        "n_items_cached": len(done),
        "n_tokens": sum(tokens),
        "n_tokens_to_compute": sum(t for i, t in enumerate(tokens) if i not in done),
        "disk_bytes": 0 if state == "cached" else len(layers) * len(texts) * profile.hidden_size * itemsize,
    }


def estimate_alignment(
    config: AlignmentConfig, *, device: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Cost:
    """The extraction cost of :func:`lexprobe.align.run_alignment` with ``config`` (the fields of its pairs,
    its sample, pooling and precision). The measurement after it is not estimated: see ``docs/benchmarks.md``."""
    from lexprobe.ontology import load_ontology

    ont = load_ontology(config.ontology)
    fields = tuple(dict.fromkeys(f for pair in config.resolved_pairs(ont.name) for f in pair))
    extraction = config.extraction
    return estimate_embedding(
        ont,
        fields,
        model=config.model,
        limit=config.limit,
        seed=config.seed,
        categories=config.categories,
        config=extraction,
        dtype=config.dtype,
        device=device,
        cache_dir=cache_dir,
        stage="align",
    )


def estimate_lexicalization(
    config: LexicalConfig, *, device: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Cost:
    """The extraction cost of :func:`lexprobe.lexical.measure_lexicalization` with ``config`` (its fields and the
    reference field, on its sample; every category unless ``config.categories``). Without embedding measures
    (``config.embeddings`` off) nothing is extracted; the probes after extraction are not estimated."""
    from lexprobe.ontology import load_ontology

    ont = load_ontology(config.ontology)
    fields = tuple(dict.fromkeys((*config.resolved_fields(ont.name), config.reference)))
    extraction = config.extraction
    cost = estimate_embedding(
        ont,
        fields,
        model=config.model,
        limit=config.limit,
        seed=config.seed,
        categories=() if config.categories is None else config.categories,
        config=extraction,
        dtype=config.dtype,
        device=device,
        cache_dir=cache_dir,
        stage="lexicalization",
    )
    if not config.embeddings:
        cost = dataclasses.replace(
            cost, n_items_cached=cost.n_items, work=0, disk_bytes=0, seconds=None, rate=None, n_rates=0, notes=[]
        )
        cost.notes.append("embedding measures are off: nothing is extracted, only tokenized")
    return cost


# --- training -------------------------------------------------------------------------------------------------


def _seconds_per_step(run: Path) -> tuple[float, dict[str, Any]] | None:
    """Seconds per optimiser step of a finished training run, with its model record; None when ``run`` is not
    a finished training run or does not say.

    From the manifest: examples per second of the training loop (examples per step over it), or, for a run
    that was not resumed and recorded no speed, its wall time over its steps (which includes loading).
    """
    manifest = read_json_object(run / "manifest.json") or {}
    if manifest.get("stage") != "train":
        return None
    outputs = manifest.get("outputs") or {}
    model = (manifest.get("inputs") or {}).get("model") or {}
    n_steps, n_examples = outputs.get("n_steps") or 0, outputs.get("n_examples") or 0
    epochs = (manifest.get("config") or {}).get("epochs") or 0
    eps = outputs.get("examples_per_second")
    if outputs.get("compute_dtype"):  # on a CPU the weights load in float32 and autocast computes in bfloat16
        model = {**model, "dtype": outputs["compute_dtype"]}
    if not n_steps:
        return None
    if isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0 and n_examples and epochs:
        return n_examples * epochs / n_steps / eps, model
    seconds = outputs.get("seconds")
    if outputs.get("resumed_from") is None and isinstance(seconds, (int, float)) and seconds > 0:
        return float(seconds) / n_steps, model
    return None


def _training_steps(config: TrainConfig) -> tuple[int, int]:
    """(optimiser steps, examples per epoch) of a training run with ``config`` on one process, for a split of
    ``bins x per_bin`` train pairs (fewer when the ontology has fewer eligible terms)."""
    n_examples = config.bins * config.per_bin * config.templates
    per_epoch = math.ceil(n_examples / (config.batch_size * config.grad_accum))
    steps = config.max_steps if config.max_steps > 0 else math.ceil(per_epoch * config.epochs)
    return int(steps), int(n_examples)


def estimate_training(
    config: TrainConfig,
    *,
    runs: Iterable[str | os.PathLike[str]],
    model: Any = None,
) -> Cost:
    """How long training with ``config`` will take, from finished training runs on this machine.

    Parameters
    ----------
    config : TrainConfig
        Steps are ``ceil(bins x per_bin x templates / (batch_size x grad_accum)) x epochs`` (or ``max_steps``).
    runs : iterable of path
        Finished training run directories to take the speed from (earlier runs, a study's ``train/`` folders);
        runs of another model, device type or precision are left out.
    model : LoadedModel, optional
        The loaded model (matched by checksum); default ``config.model`` matched by name.

    Returns
    -------
    Cost
        ``unit="steps"``, ``rate`` in steps per second (median over matching runs), or no time and a note
        when none matches. Batch size and prompt length change the speed too: a note says so.
    """
    if model is not None:
        name, checksum, dev, precision = model.name, model.checksum, model.device, dtype_name(model.dtype)
    else:
        name, checksum = config.model, ""
        dev = auto_device(config.device)
        precision = dtype_name(resolve_dtype(config.dtype, dev))
    device_type = getattr(dev, "type", str(dev))
    n_steps, n_examples = _training_steps(config)
    rates, used = [], []
    for run in runs:
        found = _seconds_per_step(Path(run))
        if found is None:
            continue
        seconds, recorded = found
        same_model = bool(checksum and recorded.get("checksum") == checksum) or recorded.get("name") == name
        same_device = str(recorded.get("device", "")).split(":")[0] == device_type
        if same_model and same_device and recorded.get("dtype", "float32") == precision:
            rates.append(1.0 / seconds)
            used.append({"run": str(run), "seconds_per_step": round(seconds, 4)})
    what = f"{name} ({precision} on {device_type})"
    cost = Cost(
        stage="train",
        description=f"{config.ontology} {config.task}: {n_steps:,} steps of {config.batch_size * config.grad_accum} "
        f"examples on {what}",
        n_items=int(n_examples),
        n_items_cached=0,
        work=n_steps,
        total_work=n_steps,
        unit="steps",
        parts=used,
    )
    if rates:
        cost.notes.append("speeds of the runs given; batch size and prompt length change them")
    return _timed(cost, rates, what + " among the training runs given")


# --- a study --------------------------------------------------------------------------------------------------


def finished_training_runs(*roots: str | os.PathLike[str], depth: int = 3) -> list[Path]:
    """Training run folders (a ``train_config.json`` beside a ``manifest.json``) at most ``depth`` levels under
    each of ``roots`` that exist: the runs :func:`estimate_training` can take a speed from."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for level in range(depth + 1):
            for config in root.glob("/".join(["*"] * level + ["train_config.json"])):
                if (config.parent / "manifest.json").is_file() and config.parent not in found:
                    found.append(config.parent)
    return found


def estimate_study(
    ontologies: Sequence[str],
    *,
    model: str = "smollm2-135m",
    size: str = "small",
    tasks: Sequence[str] | None = None,
    stages: Sequence[str] = ("align", "lexicalization", "train"),
    seed: int = 0,
    device: str | None = None,
    dtype: str = "auto",
    runs: Iterable[str | os.PathLike[str]] = (),
    out: str | os.PathLike[str] | None = None,
) -> list[Cost]:
    """What :func:`lexprobe.study.run_study` would compute (:func:`lexprobe.plan.study_plan`): the extraction of
    each ontology's alignment and lexicalization and the steps of each task's training (timed from ``runs``,
    finished training runs on this machine), one :class:`Cost` each. Evaluation, correlation and the report are
    not estimated.

    With ``out`` (the study folder), what it already holds is left out of the work: a finished part costs
    nothing, and a training run stopped at a checkpoint costs only its steps after it (the study resumes
    there). Whether a finished part's settings match is checked when the study runs."""
    reference = list(runs)
    costs = []
    for stage, where, config in study_plan(
        ontologies, model=model, size=size, tasks=tasks, seed=seed, device=device, dtype=dtype
    ):
        if stage not in stages:
            continue
        if stage == "align":
            cost = estimate_alignment(config, device=device)
        elif stage == "lexicalization":
            cost = estimate_lexicalization(config, device=device)
        else:
            cost = estimate_training(config, runs=reference)
        if out is not None:
            cost = _less_what_is_done(cost, Path(out) / where if stage == "train" else Path(out) / where / stage)
        costs.append(dataclasses.replace(cost, description=f"{where}: {cost.description}"))
    return costs


def _less_what_is_done(cost: Cost, folder: Path) -> Cost:
    """``cost`` less what a study's ``folder`` already holds: all of it when the part is finished there, the
    steps up to its latest checkpoint for a training run stopped part way."""
    if cost.stage == "train":
        import warnings

        from lexprobe.train import is_complete, last_good_checkpoint

        if is_complete(folder):
            done = cost.total_work
        else:
            with warnings.catch_warnings():  # a damaged checkpoint is passed over here, removed by the run
                warnings.simplefilter("ignore")
                last = last_good_checkpoint(folder / "checkpoints", remove=False)
            done = min(int(Path(last).name.split("-")[1]), cost.total_work) if last else 0
    else:
        done = cost.total_work if (folder / "manifest.json").is_file() else 0
    if not done:
        return cost
    left = cost.total_work - done
    seconds = 0.0 if not left else (None if cost.rate is None else left / cost.rate)
    cached = cost.n_items if not left else cost.n_items_cached
    note = "finished in the study folder" if not left else f"resumes at step {done:,} (its latest checkpoint)"
    return dataclasses.replace(
        cost,
        work=min(cost.work, left),
        n_items_cached=cached,
        seconds=seconds,
        disk_bytes=0 if not left else cost.disk_bytes,
        notes=[*cost.notes, note],
    )


def total_lines(costs: Sequence[Cost]) -> list[str]:
    """Each estimate's lines, then one line with the known total time (and how many parts have none)."""
    lines = [line for cost in costs for line in cost.lines()]
    known = [c.seconds for c in costs if c.work and c.seconds is not None]
    unknown = sum(1 for c in costs if c.work and c.seconds is None)
    total = f"total: about {format_seconds(sum(known))} for {len(known)} part(s) with a measured rate"
    if unknown:
        total += f"; {unknown} part(s) with no measured rate yet on this machine"
    return [*lines, total]
