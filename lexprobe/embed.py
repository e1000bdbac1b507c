"""Per-layer hidden states of texts, pooled, streamed to an on-disk cache, resumable, data-parallel.

Items are sorted by token length and batched (little padding), run through the base transformer (no LM
head), pooled per layer over the item's own tokens only, and written batch by batch as shards.

Attention sinks. From some layer on, a causal LM gives the first position of every sequence a hidden state
tens to hundreds of times the norm of the others (SmolLM2-135M: about 24,000 against 150 from layer 12; Gemma 3
270M: its BOS). A mean over an item's few tokens is then that one position. By default every item is
preceded by a *sink prefix* that takes the sink and is left out of the pool: the tokenizer's own BOS where
it adds one, otherwise a newline. Special tokens (BOS, EOS, padding, chat markers) never enter a pooled
vector unless ``include_special=True``. Each run records, per layer, the largest pooled token norm against
the median (``token_norms`` in the manifest) and warns when one position still dominates. An interrupted run
resumes from its finished shards; the finished array is assembled in the original item order and cached
under a key of (model and its precision, texts, template, pooling, sink prefix, layers, storage dtype), so a
repeated call returns at once. A cache entry records its array's size and SHA-256 and is checked on every
load; a damaged shard or entry is dropped and computed again, and a file lock per key lets two processes
share one cache.
Under ``torchrun`` / ``accelerate launch`` each process takes every N-th batch and rank 0 assembles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lexprobe.config import StageConfig
from lexprobe.exceptions import EmbeddingError, ResourceError
from lexprobe.models import load_model
from lexprobe.progress import relabel
from lexprobe.rates import record_rate
from lexprobe.runs import (
    atomic_path,
    atomic_write_json,
    config_key,
    disk_full_as_error,
    make_manifest,
    sha256_file,
    sha256_text,
)
from lexprobe.runs import (
    cache_dir as user_cache_dir,
)

if TYPE_CHECKING:
    from lexprobe.models import LoadedModel
    from lexprobe.ontology import Ontology

__all__ = [
    "ExtractionConfig",
    "ExtractionFields",
    "EXTRACTION_FIELDS",
    "EmbeddingSet",
    "extract_hidden_states",
    "cache_key",
    "token_counts",
    "pooled_token_counts",
    "embed_field",
    "resolve_layers",
    "token_norm_summary",
    "sink_warnings",
]

logger = logging.getLogger(__name__)

#: The stage name :func:`extract_hidden_states` reports progress under.
_STAGE = "embedding"

Pool = Literal["mean", "last", "first"]
_FORMAT_VERSION = 2
#: a pooled token whose norm exceeds this many times the layer's median pooled norm is reported
SINK_RATIO_WARN = 20.0


@dataclasses.dataclass(frozen=True)
class ExtractionConfig(StageConfig):
    """How hidden states are extracted.

    Parameters
    ----------
    layers : "all" or sequence of int
        Hidden-state indices to keep: 0 is the embedding output, ``n_layers`` the last block; negative
        indices count from the end (-1 is the last).
    pool : {"mean", "last", "first"}
        Mean over real tokens (attention mask), the last real token, or the first real token.
    template : str
        Text around each item, with ``{text}`` where the item goes.
    prefix : str
        Tokens before each item that take the attention sink and are never pooled: ``"auto"`` (the
        tokenizer's BOS where it adds one itself, otherwise a newline; nothing for an encoder), ``"bos"``
        (the BOS token; a newline when the tokenizer has none), ``"none"`` (no prefix: the item's first
        token becomes the sink, the pooling of lexprobe 0.x), or any other text, used literally.
    include_special : bool
        Pool special tokens (BOS, EOS, padding, chat markers) that the tokenizer or the template put in; off
        by default. ``prefix="none", include_special=True`` is the old pooling.
    batch_size : int or "auto"
        Items per batch; ``"auto"`` starts large and halves on out-of-memory.
    storage_dtype : {"float32", "float16"}
        dtype of the arrays on disk.
    max_length : int
        Tokens per item at most (longer items are truncated, and counted in the manifest).
    """

    layers: str | tuple[int, ...] = "all"
    pool: Pool = "mean"
    template: str = "{text}"
    prefix: str = "auto"
    include_special: bool = False
    batch_size: int | Literal["auto"] = "auto"
    storage_dtype: Literal["float32", "float16"] = "float32"
    max_length: int = 64

    def __post_init__(self) -> None:
        if self.pool not in ("mean", "last", "first"):
            raise EmbeddingError(f"`pool` must be mean, last or first, got {self.pool!r}")
        if not isinstance(self.prefix, str) or not self.prefix:
            raise EmbeddingError(f"`prefix` must be auto, bos, none or a non-empty text, got {self.prefix!r}")
        if "{text}" not in self.template:
            raise EmbeddingError(f"`template` must contain '{{text}}', got {self.template!r}")
        if self.storage_dtype not in ("float32", "float16"):
            raise EmbeddingError(f"`storage_dtype` must be float32 or float16, got {self.storage_dtype!r}")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise EmbeddingError(f"`batch_size` must be 'auto' or a positive int, got {self.batch_size!r}")
        if self.max_length < 1:
            raise EmbeddingError(f"`max_length` must be >= 1, got {self.max_length}")
        if self.layers != "all":
            if isinstance(self.layers, str) or not all(isinstance(i, (int, np.integer)) for i in self.layers):
                raise EmbeddingError(f"`layers` must be 'all' or a list of ints, got {self.layers!r}")
            if not self.layers:
                raise EmbeddingError("`layers` is empty; give 'all' or at least one index")
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))

    @classmethod
    def parse_layers(cls, text: str) -> str | tuple[int, ...]:
        """Parse the CLI form of ``layers``: ``all``, ``0,4,8`` or ``-1``."""
        text = text.strip().lower()
        if text == "all":
            return "all"
        try:
            return tuple(int(p) for p in text.split(",") if p.strip())
        except ValueError:
            raise EmbeddingError(f"--layers must be 'all' or comma-separated ints like 0,4,-1, got {text!r}") from None


#: The extraction settings a stage's config carries as flat fields of its own, with the defaults of
#: :class:`ExtractionConfig` (alignment, lexicalization and features configs; their manifests record them flat).
EXTRACTION_FIELDS: tuple[str, ...] = ("layers", "pool", "template", "prefix", "batch_size")


class ExtractionFields:
    """Mixin for a stage config dataclass whose fields include :data:`EXTRACTION_FIELDS`: :attr:`extraction`."""

    @property
    def extraction(self) -> ExtractionConfig:
        """The extraction this config asks for: its :data:`EXTRACTION_FIELDS`, the others at their defaults.

        Examples
        --------
        >>> from lexprobe.align import AlignmentConfig
        >>> AlignmentConfig(ontology="hgnc", layers=(0, -1), pool="last").extraction
        ExtractionConfig(layers=(0, -1), pool='last', template='{text}', prefix='auto', include_special=False, ...)
        """
        return ExtractionConfig(**{name: getattr(self, name) for name in EXTRACTION_FIELDS})


@dataclasses.dataclass
class EmbeddingSet:
    """Pooled hidden states: ``array`` of shape (n_layers_kept, n_items, dim), rows in ``keys`` order."""

    array: np.ndarray
    keys: list[str]
    texts: list[str]
    layers: list[int]
    manifest: dict[str, Any]
    #: Pooled tokens per item (the item's own, no prefix or specials); None for a cache entry written before
    #: extraction recorded them (:func:`pooled_token_counts` gives them from the tokenizer).
    n_tokens: list[int] | None = None

    def layer(self, index: int) -> np.ndarray:
        """The (n_items, dim) matrix of hidden-state index ``index`` (as in ``layers``)."""
        try:
            return np.asarray(self.array[self.layers.index(index)], dtype=np.float32)
        except ValueError:
            raise EmbeddingError(f"layer {index} was not extracted; extracted layers are {self.layers}") from None


def resolve_layers(layers: str | Sequence[int], n_states: int) -> list[int]:
    """Absolute, sorted, unique hidden-state indices in ``[0, n_states)``.

    Raises
    ------
    EmbeddingError
        An index outside ``[-n_states, n_states)``.
    """
    if layers == "all":
        return list(range(n_states))
    out = []
    for i in layers:
        if not -n_states <= i < n_states:
            raise EmbeddingError(
                f"layer {i} is out of range: this model has {n_states} hidden states (0 = embeddings, "
                f"{n_states - 1} = last block); use 0..{n_states - 1} or negative indices"
            )
        out.append(i % n_states)
    return sorted(set(out))


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            import torch

            dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return world, rank


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _prefix_ids(lm: LoadedModel, prefix: str, adds_bos: bool) -> list[int]:
    """Token ids of the sink prefix, before whatever the tokenizer adds itself."""
    tokenizer = lm.tokenizer
    bos = tokenizer.bos_token_id
    if prefix == "none" or (prefix == "auto" and (adds_bos or not lm.is_causal)):
        return []  # an encoder sees the whole item from every position: no causal sink to take
    if prefix == "bos" and bos is not None:
        return [] if adds_bos else [bos]
    text = "\n" if prefix in ("auto", "bos") else prefix
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise EmbeddingError(f"the sink prefix {prefix!r} tokenizes to nothing; give another --prefix")
    return ids


def _tokenize(
    texts: Sequence[str], lm: LoadedModel, config: ExtractionConfig
) -> tuple[list[tuple[list[int], list[bool]]], list[int], int]:
    """Per item: token ids and which positions are pooled (the item's own tokens, no prefix or specials); the
    ids of the tokens that take the sink (the prefix, or the tokenizer's own BOS); and how many items were cut
    at ``max_length``.

    The item is tokenized as the tokenizer does it (with its own BOS where it adds one); the sink prefix goes
    first. ``max_length`` bounds the item's tokens, not the prefix.
    """
    from lexprobe.tasks import fill_template

    tokenizer = lm.tokenizer
    encoded = tokenizer([fill_template(config.template, t) for t in texts], add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and bool(encoded) and all(ids and ids[0] == bos for ids in encoded)
    prefix = _prefix_ids(lm, config.prefix, adds_bos)
    special = set(tokenizer.all_special_ids or ())
    out = []
    n_truncated = sum(len(ids) >= config.max_length for ids in encoded)
    for ids in encoded:
        ids = list(ids)[: config.max_length]
        keep = [config.include_special or i not in special for i in ids]
        if config.prefix == "auto" and adds_bos and ids and ids[0] == bos:
            keep[0] = False  # the tokenizer's BOS is the sink prefix
        if not any(keep):
            raise EmbeddingError(
                "an item has no tokens of its own to pool (empty, or only special tokens); give non-empty texts"
            )
        out.append(([*prefix, *ids], [False] * len(prefix) + keep))
    sink = prefix or ([bos] if config.prefix in ("auto", "bos") and adds_bos else [])  # the tokenizer's own BOS
    return out, sink, n_truncated


def _forward(
    lm: LoadedModel, batch: list[tuple[list[int], list[bool]]], layers: list[int], pool: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled states of one batch, (n_layers_kept, batch, dim) float32, and token-norm statistics.

    The statistics are, per kept layer: the largest and the median norm of the pooled tokens, and the largest
    norm of the real tokens left out of the pool (prefix, specials), as an array (n_layers_kept, 3).
    """
    import torch

    n, width = len(batch), max(len(ids) for ids, _ in batch)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    pooled_mask = torch.zeros((n, width), dtype=torch.bool)
    for row, (ids, keep) in enumerate(batch):  # right padding: real tokens never see a pad under a causal mask
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        pooled_mask[row, : len(ids)] = torch.tensor(keep)
    device = lm.device
    input_ids, mask, pooled_mask = input_ids.to(device), mask.to(device), pooled_mask.to(device)
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask, "output_hidden_states": True}
    if lm.is_causal:
        # explicit positions count real tokens only, so either padding side gives the same positions
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        states = lm.model(**kwargs).hidden_states
        m = pooled_mask.unsqueeze(-1).to(torch.float32)
        lengths = pooled_mask.sum(-1)
        positions = torch.arange(width, device=device).expand(n, width)
        last = torch.where(pooled_mask, positions, -1).max(-1).values
        first = torch.where(pooled_mask, positions, width).min(-1).values
        excluded = mask.bool() & ~pooled_mask
        pooled, norms = [], []
        for index in layers:
            h = states[index].to(torch.float32)
            if pool == "mean":
                pooled.append((h * m).sum(1) / lengths.unsqueeze(-1))
            elif pool == "last":
                pooled.append(h[torch.arange(n, device=device), last])
            else:
                pooled.append(h[torch.arange(n, device=device), first])
            token_norm = h.norm(dim=-1)
            kept = token_norm[pooled_mask]
            left_out = token_norm[excluded]
            norms.append(
                [
                    float(kept.max()),
                    float(kept.median()),
                    float(left_out.max()) if left_out.numel() else float("nan"),
                ]
            )
        return torch.stack(pooled).cpu().numpy(), np.asarray(norms, dtype=np.float64)


def token_norm_summary(shard_norms: Sequence[np.ndarray], layers: Sequence[int]) -> list[dict[str, Any]]:
    """Per layer: the largest pooled token norm, the median pooled norm, their ratio, and the largest norm
    of the left-out positions (prefix, special tokens), over batches (the median is the median of batch
    medians)."""
    stacked = np.stack(shard_norms)  # (batches, layers, 3)
    out = []
    for j, layer in enumerate(layers):
        top = float(np.max(stacked[:, j, 0]))
        median = float(np.median(stacked[:, j, 1]))
        left = stacked[:, j, 2]
        out.append(
            {
                "layer": int(layer),
                "max_pooled_norm": round(top, 3),
                "median_pooled_norm": round(median, 3),
                "max_over_median": round(top / median, 3) if median > 0 else None,
                "max_left_out_norm": round(float(np.nanmax(left)), 3) if np.isfinite(left).any() else None,
            }
        )
    return out


def sink_warnings(summary: Sequence[dict[str, Any]], threshold: float = SINK_RATIO_WARN) -> list[str]:
    """One line per layer where a pooled token's norm is over ``threshold`` times the median."""
    bad = [row for row in summary if row["max_over_median"] is not None and row["max_over_median"] > threshold]
    if not bad:
        return []
    worst = max(bad, key=lambda row: row["max_over_median"])
    return [
        f"a pooled token's hidden-state norm is over {threshold:g}x the median in {len(bad)} layer(s) "
        f"({', '.join(str(r['layer']) for r in bad)}; worst {worst['max_over_median']:.0f}x at layer "
        f"{worst['layer']}): an attention sink or massive activation may dominate the pooled states; "
        "give a sink prefix (--prefix auto, bos or a text) or check the per-layer curves for steps"
    ]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def extract_hidden_states(
    texts: Sequence[str],
    *,
    keys: Sequence[str] | None = None,
    model: LoadedModel | str = "smollm2-135m",
    config: ExtractionConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    use_cache: bool = True,
) -> EmbeddingSet:
    """Pooled per-layer hidden states of ``texts``.

    Parameters
    ----------
    texts : sequence of str
        The items (names, symbols, ids...), formatted with ``config.template``.
    keys : sequence of str, optional
        One key per item (term ids); default the texts' positions.
    model : LoadedModel or str
        A loaded model or a spec for :func:`lexprobe.models.load_model`.
    config : ExtractionConfig, optional
    cache_dir : path, optional
        Where finished arrays and in-progress shards live; default ``$LEXPROBE_CACHE/embeddings``.
    progress : callable, optional
        Called as ``progress("embedding", n_done, n_total)`` after each batch, once at the start (with the
        items resumed from shards) and once with ``n_done == n_total`` when a finished cached result is found.
    use_cache : bool
        Return a finished cached result when there is one.

    Returns
    -------
    EmbeddingSet
        ``array`` of shape (n_layers_kept, n_items, dim), in the order of ``texts``.

    Raises
    ------
    EmbeddingError
        No items, mismatched keys, a bad layer index.
    ResourceError
        Out of memory even at batch size 1.
    """
    config = config or ExtractionConfig()
    texts = [str(t) for t in texts]
    if not texts:
        raise EmbeddingError("no items to embed; the selection is empty (check --ontology, --field and --limit)")
    keys = [str(k) for k in keys] if keys is not None else [str(i) for i in range(len(texts))]
    if len(keys) != len(texts):
        raise EmbeddingError(f"got {len(keys)} keys for {len(texts)} texts; give one key per text")
    lm = load_model(model) if isinstance(model, str) else model
    layers = resolve_layers(config.layers, lm.n_layers + 1)
    key = cache_key(texts, keys, lm, config, layers)
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir("embeddings")
    final = root / key
    if use_cache:
        cached = _load_verified(final)
        if cached is not None:
            if progress:
                progress(_STAGE, len(texts), len(texts))
            return cached
    world, rank = _dist_info()
    # one process at a time per cache key (two identical runs on one cache); under torchrun the ranks share
    # the work of one key instead, and rank 0 assembles
    lock = _key_lock(root, key) if world == 1 else contextlib.nullcontext()
    with lock:
        if use_cache:
            cached = _load_verified(final)  # another process may have finished it while this one waited
            if cached is not None:
                if progress:
                    progress(_STAGE, len(texts), len(texts))
                return cached
        _extract(texts, keys, lm, config, layers, root, key, progress, world, rank)
    _barrier(world)
    result = _load_verified(final, checksum=False)  # just written and hashed by rank 0
    if result is None:
        raise EmbeddingError(f"the finished embeddings in {final} are incomplete right after writing; re-run")
    return result


def cache_key(
    texts: Sequence[str], keys: Sequence[str], model: LoadedModel, config: ExtractionConfig, layers: Sequence[int]
) -> str:
    """The cache key of an extraction: model (checksum, name, precision), items, pooling and resolved layers.

    ``model`` needs only ``checksum``, ``name`` and ``dtype`` (:func:`lexprobe.models.load_tokenizer` gives
    them without the weights, so :mod:`lexprobe.costs` finds what is cached without loading the model).
    """
    return config_key(
        _FORMAT_VERSION,
        model.checksum,
        model.name,
        str(model.dtype),  # the precision of the forward pass (bfloat16 states differ from float32 ones)
        sha256_text("\x1f".join(texts)),
        sha256_text("\x1f".join(keys)),
        config.template,
        config.pool,
        list(layers),
        config.prefix,
        config.include_special,
        config.storage_dtype,
        config.max_length,
        # 4-bit weights give other states than the same dtype unquantized; keys of unquantized models are unchanged
        *([model.quantization] if getattr(model, "quantization", None) else []),
    )


def token_counts(texts: Sequence[str], model: LoadedModel, config: ExtractionConfig) -> list[int]:
    """Tokens the model runs per item (sink prefix and special tokens included, padding not), as extraction
    tokenizes them; ``model`` needs only its tokenizer and ``is_causal``."""
    return [len(ids) for ids, _ in _tokenize([str(t) for t in texts], model, config)[0]]


def pooled_token_counts(texts: Sequence[str], model: LoadedModel, config: ExtractionConfig) -> list[int]:
    """Tokens pooled per item (the item's own: no sink prefix, no special tokens unless ``include_special``), as
    extraction tokenizes them; ``model`` needs only its tokenizer and ``is_causal``."""
    return [sum(keep) for _, keep in _tokenize([str(t) for t in texts], model, config)[0]]


def _key_lock(root: Path, key: str) -> Any:
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    return FileLock(str(root / f"{key}.lock"))


def _extract(texts, keys, lm, config, layers, root, key, progress, world, rank) -> None:
    """Run the model over the items not yet in a shard, then (rank 0) assemble the finished array."""
    work = root / f"{key}.partial"
    work.mkdir(parents=True, exist_ok=True)
    token_ids, sink, n_truncated = _tokenize(texts, lm, config)
    done = _finished_items(work)
    _barrier(world)  # every process lists the finished work before any process adds to it
    todo = [i for i in sorted(range(len(texts)), key=lambda i: (len(token_ids[i][0]), i)) if i not in done]
    todo = todo[rank::world] if world > 1 else todo
    batch_size = config.batch_size if config.batch_size != "auto" else (256 if lm.device.type == "cuda" else 64)
    n_total = len(texts)
    n_done = len(done)
    if progress:
        progress(_STAGE, n_done, n_total)
    logger.debug("embedding %d items (%d resumed) in batches of %d", n_total, n_done, batch_size)
    position, n_tokens_run, t_start = 0, 0, None  # the measured rate lexprobe.costs reads
    while position < len(todo):
        chunk = todo[position : position + batch_size]
        try:
            pooled, norms = _forward(lm, [token_ids[i] for i in chunk], layers, config.pool)
        except (RuntimeError, MemoryError) as exc:
            if not _is_oom(exc):
                raise
            _free_memory()
            if batch_size == 1:
                raise ResourceError(
                    "out of memory at batch size 1; use a smaller model, --max-length, or a larger machine"
                ) from None
            batch_size = max(1, batch_size // 2)
            logger.info("out of memory; batch size now %d", batch_size)
            continue
        _write_shard(work, chunk, pooled.astype(config.storage_dtype), norms)
        position += len(chunk)
        if t_start is None:  # the first batch carries the warm-up (about 10 s here): timed from its end
            t_start = time.perf_counter()
        else:
            n_tokens_run += sum(len(token_ids[i][0]) for i in chunk)
        n_done += len(chunk) * world
        if progress:
            progress(_STAGE, min(n_done, n_total), n_total)
    if world == 1 and n_tokens_run and t_start is not None:
        record_rate("embed", lm, n_tokens_run, time.perf_counter() - t_start)
    _barrier(world)
    if rank != 0:
        return
    manifest = make_manifest(
        stage="embed",
        config=config.to_dict() | {"layers_resolved": layers},
        inputs={
            "model": lm.describe(),
            "n_items": n_total,
            "texts_sha256": sha256_text("\x1f".join(texts)),
            "n_truncated": n_truncated,
            "n_tokens": int(sum(sum(keep) for _, keep in token_ids)),
            "n_tokens_left_out": int(sum(len(keep) - sum(keep) for _, keep in token_ids)),
            "sink_prefix": lm.tokenizer.convert_ids_to_tokens(sink),
        },
        outputs={"array_shape": [len(layers), n_total, lm.hidden_size]},
        world_size=world,
    )
    pooled_counts = [int(sum(keep)) for _, keep in token_ids]
    _assemble(work, root / key, keys, texts, layers, manifest, config.storage_dtype, pooled_counts)


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _write_shard(work: Path, items: list[int], pooled: np.ndarray, norms: np.ndarray) -> None:
    name = f"shard-{items[0]:08d}-{len(items):05d}-{os.getpid()}.npz"
    with atomic_path(work / name) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, items=np.asarray(items, dtype=np.int64), pooled=pooled, norms=norms)


def _read_shard(shard: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A shard's items, pooled states and token norms, fully read (so a bad CRC shows), or None if damaged."""
    try:
        with np.load(shard) as data:
            items, pooled, norms = data["items"], data["pooled"], data["norms"]
        if items.ndim != 1 or pooled.ndim != 3 or pooled.shape[1] != len(items) or not np.isfinite(pooled).all():
            raise ValueError("inconsistent shapes or non-finite values")
        return items, pooled, norms
    except Exception as exc:  # noqa: BLE001 - zipfile, CRC, pickle-free npz and shape errors alike
        logger.warning("dropping damaged shard %s (%s); its items are embedded again", shard.name, exc)
        shard.unlink(missing_ok=True)
        return None


def _finished_items(work: Path) -> set[int]:
    done: set[int] = set()
    for shard in sorted(work.glob("shard-*.npz")):
        read = _read_shard(shard)
        if read is not None:
            done.update(int(i) for i in read[0])
    return done


def _assemble(
    work: Path,
    final: Path,
    keys: list[str],
    texts: list[str],
    layers: list[int],
    manifest: dict,
    dtype: str,
    n_tokens: list[int],
) -> None:
    """Join the shards in ``work`` into the finished entry ``final`` (built beside it, renamed into place).

    Anything that goes wrong (a full disk: one :class:`OutputError` naming the file) removes the half-built
    entry and keeps the shards, so the next run assembles again without recomputing."""
    tmp_dir = final.parent / f".{final.name}.assembling"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        with disk_full_as_error(tmp_dir):
            tmp_dir.mkdir(parents=True)
            _assemble_into(tmp_dir, work, keys, texts, layers, manifest, dtype, n_tokens)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp_dir, final)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)


def _assemble_into(
    tmp_dir: Path,
    work: Path,
    keys: list[str],
    texts: list[str],
    layers: list[int],
    manifest: dict,
    dtype: str,
    n_tokens: list[int],
) -> None:
    array: np.ndarray | None = None
    filled = np.zeros(len(keys), dtype=bool)
    norms = []
    npy = tmp_dir / "embeddings.npy"
    for shard in sorted(work.glob("shard-*.npz")):
        read = _read_shard(shard)
        if read is None:
            continue
        items, pooled, shard_norms = read
        if array is None:
            array = _open_allocated(npy, dtype, (len(layers), len(keys), pooled.shape[-1]))
        array[:, items, :] = pooled
        filled[items] = True
        norms.append(shard_norms)
    if array is None or not filled.all():
        raise EmbeddingError(f"{int((~filled).sum())} items have no embedding after extraction; re-run to resume")
    array.flush()
    del array
    summary = token_norm_summary(norms, layers)
    warnings_ = sink_warnings(summary)
    for line in warnings_:
        logger.warning(line)
    manifest = manifest | {
        "outputs": manifest.get("outputs", {})
        | {
            "embeddings.npy": {"bytes": npy.stat().st_size, "sha256": sha256_file(npy)},
            "token_norms": summary,
        },
        "warnings": warnings_,
    }
    (tmp_dir / "items.json").write_text(
        json.dumps({"keys": keys, "texts": texts, "layers": layers, "n_tokens": n_tokens}), encoding="utf-8"
    )
    atomic_write_json(tmp_dir / "manifest.json", manifest)


def _open_allocated(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A new ``.npy`` file as a writable memory map whose blocks are allocated before any is written.

    ``open_memmap`` makes a sparse file: on a full disk the kernel finds no block for a page written into it
    only later, and ends the process with SIGBUS (no message, a half-written array). Allocating the whole file
    first turns that into an ``OSError`` (``ENOSPC``) here, before any work is written."""
    with disk_full_as_error(path):
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            try:
                os.posix_fallocate(fh.fileno(), 0, size)
            except (AttributeError, OSError) as exc:  # no posix_fallocate here, or a file system without it
                if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                _write_zeros(fh, array.offset, size)
    return array


def _write_zeros(fh: Any, start: int, end: int, chunk: int = 1 << 24) -> None:
    """Give the bytes ``start:end`` of ``fh`` real blocks by writing zeros over them (what fallocate does)."""
    zeros = bytes(min(chunk, max(end - start, 0)))
    fh.seek(start)
    for position in range(start, end, chunk):
        fh.write(zeros[: min(chunk, end - position)])
    fh.flush()


def _load_verified(final: Path, *, checksum: bool = True) -> EmbeddingSet | None:
    """The finished entry in ``final`` if it is whole (manifest, items, array of the recorded size and, unless
    ``checksum=False``, SHA-256); a damaged entry is removed with a warning and ``None`` returned, so it is
    computed again."""
    if not (final / "manifest.json").is_file():
        return None
    try:
        manifest = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
        record = manifest["outputs"]["embeddings.npy"]
        npy = final / "embeddings.npy"
        if npy.stat().st_size != record["bytes"]:
            raise ValueError(f"embeddings.npy has {npy.stat().st_size} bytes, {record['bytes']} recorded")
        if checksum and sha256_file(npy) != record["sha256"]:
            raise ValueError("embeddings.npy fails its checksum")
        items = json.loads((final / "items.json").read_text(encoding="utf-8"))
        array = np.load(npy, mmap_mode="r")
    except Exception as exc:  # noqa: BLE001 - any damage means: recompute
        logger.warning("dropping damaged cached embeddings %s (%s); computing them again", final.name, exc)
        shutil.rmtree(final, ignore_errors=True)
        return None
    return EmbeddingSet(
        array=array,
        keys=items["keys"],
        texts=items["texts"],
        layers=items["layers"],
        manifest=manifest,
        n_tokens=items.get("n_tokens"),
    )


def embed_field(
    ontology: Ontology,
    field: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    model: LoadedModel | str = "smollm2-135m",
    config: ExtractionConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> EmbeddingSet:
    """Hidden states of one field (``"name"``, ``"symbol"``, ``"id"``) of a popularity-balanced term sample."""
    from lexprobe.tasks import field_values, sample_terms

    terms = sample_terms(ontology, limit, seed=seed, fields=(field,))
    result = extract_hidden_states(
        field_values(terms, field),
        keys=list(terms["id"]),
        model=model,
        config=config,
        cache_dir=cache_dir,
        progress=relabel(progress, f"embedding {field}"),
    )
    result.manifest = result.manifest | {
        "ontology": {"name": ontology.name, "source": ontology.source, "checksum": ontology.checksum},
        "field": field,
        "limit": limit,
        "seed": seed,
    }
    return result
