"""Per-layer hidden states of texts, pooled, streamed to an on-disk cache, resumable, data-parallel.

Items are sorted by token length and batched (little padding), run through the base transformer (no LM
head), pooled per layer over real tokens only, and written batch by batch as shards. An interrupted run
resumes from its finished shards; the finished array is assembled in the original item order and cached
under a key of (model, texts, template, pooling, layers, BOS, storage dtype), so a repeated call returns at
once. Under ``torchrun`` / ``accelerate launch`` each process takes every N-th batch and rank 0 assembles.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lexprobe.exceptions import EmbeddingError, ResourceError
from lexprobe.runs import (
    atomic_path,
    atomic_write_json,
    config_key,
    make_manifest,
    sha256_text,
)
from lexprobe.runs import (
    cache_dir as user_cache_dir,
)

if TYPE_CHECKING:
    from lexprobe.models import LoadedModel
    from lexprobe.ontology import Ontology

__all__ = ["ExtractionConfig", "EmbeddingSet", "extract_hidden_states", "embed_field", "resolve_layers"]

logger = logging.getLogger(__name__)

Pool = Literal["mean", "last", "first"]
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ExtractionConfig:
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
    add_bos : bool or None
        Prepend the tokenizer's BOS token; ``None`` keeps the tokenizer's own behaviour. Recorded.
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
    add_bos: bool | None = None
    batch_size: int | Literal["auto"] = "auto"
    storage_dtype: Literal["float32", "float16"] = "float32"
    max_length: int = 64

    def __post_init__(self) -> None:
        if self.pool not in ("mean", "last", "first"):
            raise EmbeddingError(f"`pool` must be mean, last or first, got {self.pool!r}")
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


@dataclasses.dataclass
class EmbeddingSet:
    """Pooled hidden states: ``array`` of shape (n_layers_kept, n_items, dim), rows in ``keys`` order."""

    array: np.ndarray
    keys: list[str]
    texts: list[str]
    layers: list[int]
    manifest: dict[str, Any]

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


def _tokenize(texts: Sequence[str], lm: LoadedModel, config: ExtractionConfig) -> list[list[int]]:
    tokenizer = lm.tokenizer
    encoded = tokenizer([config.template.format(text=t) for t in texts], add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    out = []
    for ids in encoded:
        ids = list(ids)
        if config.add_bos is True and bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        elif config.add_bos is False and bos is not None and ids and ids[0] == bos:
            ids = ids[1:]
        if not ids:
            raise EmbeddingError("an item tokenizes to nothing; give non-empty texts")
        out.append(ids[: config.max_length])
    return out


def _forward(lm: LoadedModel, batch: list[list[int]], layers: list[int], pool: str) -> np.ndarray:
    """Pooled states of one batch: (n_layers_kept, batch, dim) float32."""
    import torch

    n, width = len(batch), max(len(ids) for ids in batch)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for row, ids in enumerate(batch):  # right padding: real tokens never see a pad under a causal mask
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    device = lm.device
    input_ids, mask = input_ids.to(device), mask.to(device)
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask, "output_hidden_states": True}
    if lm.is_causal:
        # explicit positions count real tokens only, so either padding side gives the same positions
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        states = lm.model(**kwargs).hidden_states
        m = mask.unsqueeze(-1).to(torch.float32)
        lengths = mask.sum(-1)
        positions = torch.arange(width, device=device).expand(n, width)
        last = torch.where(mask.bool(), positions, -1).max(-1).values
        first = torch.where(mask.bool(), positions, width).min(-1).values
        pooled = []
        for index in layers:
            h = states[index].to(torch.float32)
            if pool == "mean":
                pooled.append((h * m).sum(1) / lengths.unsqueeze(-1))
            elif pool == "last":
                pooled.append(h[torch.arange(n, device=device), last])
            else:
                pooled.append(h[torch.arange(n, device=device), first])
        return torch.stack(pooled).cpu().numpy()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def extract_hidden_states(
    texts: Sequence[str],
    *,
    keys: Sequence[str] | None = None,
    model: LoadedModel | str = "smollm2-135m",
    config: ExtractionConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
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
        Called as ``progress(n_done, n_total)`` after each batch (and once at the start with resumed work).
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
    from lexprobe.models import load_model

    config = config or ExtractionConfig()
    texts = [str(t) for t in texts]
    if not texts:
        raise EmbeddingError("no items to embed; the selection is empty (check --ontology, --field and --limit)")
    keys = [str(k) for k in keys] if keys is not None else [str(i) for i in range(len(texts))]
    if len(keys) != len(texts):
        raise EmbeddingError(f"got {len(keys)} keys for {len(texts)} texts; give one key per text")
    lm = load_model(model) if isinstance(model, str) else model
    layers = resolve_layers(config.layers, lm.n_layers + 1)
    key = config_key(
        _FORMAT_VERSION,
        lm.checksum,
        lm.name,
        sha256_text("\x1f".join(texts)),
        sha256_text("\x1f".join(keys)),
        config.template,
        config.pool,
        layers,
        config.add_bos,
        config.storage_dtype,
        config.max_length,
    )
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir("embeddings")
    final = root / key
    if use_cache and (final / "manifest.json").is_file():
        return _load_final(final)

    world, rank = _dist_info()
    work = root / f"{key}.partial"
    work.mkdir(parents=True, exist_ok=True)
    token_ids = _tokenize(texts, lm, config)
    done = _finished_items(work)
    _barrier(world)  # every process lists the finished work before any process adds to it
    todo = [i for i in sorted(range(len(texts)), key=lambda i: (len(token_ids[i]), i)) if i not in done]
    todo = todo[rank::world] if world > 1 else todo
    batch_size = config.batch_size if config.batch_size != "auto" else (256 if lm.device.type == "cuda" else 64)
    n_total = len(texts)
    n_done = len(done)
    if progress:
        progress(n_done, n_total)
    position = 0
    while position < len(todo):
        chunk = todo[position : position + batch_size]
        try:
            pooled = _forward(lm, [token_ids[i] for i in chunk], layers, config.pool)
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
        _write_shard(work, chunk, pooled.astype(config.storage_dtype))
        position += len(chunk)
        n_done += len(chunk) * world
        if progress:
            progress(min(n_done, n_total), n_total)
    _barrier(world)
    if rank == 0:
        manifest = make_manifest(
            stage="embed",
            config=dataclasses.asdict(config) | {"layers_resolved": layers},
            inputs={
                "model": lm.describe(),
                "n_items": n_total,
                "texts_sha256": sha256_text("\x1f".join(texts)),
                "n_truncated": sum(len(ids) >= config.max_length for ids in token_ids),
                "n_tokens": int(sum(len(ids) for ids in token_ids)),
            },
            outputs={"array_shape": [len(layers), n_total, lm.hidden_size]},
            world_size=world,
        )
        _assemble(work, final, keys, texts, layers, manifest, config.storage_dtype)
    _barrier(world)
    return _load_final(final)


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _write_shard(work: Path, items: list[int], pooled: np.ndarray) -> None:
    name = f"shard-{items[0]:08d}-{len(items):05d}-{os.getpid()}.npz"
    with atomic_path(work / name) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, items=np.asarray(items, dtype=np.int64), pooled=pooled)


def _finished_items(work: Path) -> set[int]:
    done: set[int] = set()
    for shard in sorted(work.glob("shard-*.npz")):
        try:
            with np.load(shard) as data:
                done.update(int(i) for i in data["items"])
        except (OSError, ValueError, KeyError):
            logger.warning("dropping unreadable shard %s", shard)
            shard.unlink(missing_ok=True)
    return done


def _assemble(
    work: Path, final: Path, keys: list[str], texts: list[str], layers: list[int], manifest: dict, dtype: str
) -> None:
    shards = sorted(work.glob("shard-*.npz"))
    array: np.ndarray | None = None
    filled = np.zeros(len(keys), dtype=bool)
    tmp_dir = final.parent / f".{final.name}.assembling"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    for shard in shards:
        with np.load(shard) as data:
            items, pooled = data["items"], data["pooled"]
        if array is None:
            array = np.lib.format.open_memmap(
                tmp_dir / "embeddings.npy",
                mode="w+",
                dtype=dtype,
                shape=(len(layers), len(keys), pooled.shape[-1]),
            )
        array[:, items, :] = pooled
        filled[items] = True
    if array is None or not filled.all():
        raise EmbeddingError(f"{int((~filled).sum())} items have no embedding after extraction; re-run to resume")
    array.flush()
    del array
    (tmp_dir / "items.json").write_text(json.dumps({"keys": keys, "texts": texts, "layers": layers}), encoding="utf-8")
    atomic_write_json(tmp_dir / "manifest.json", manifest)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp_dir, final)
    shutil.rmtree(work, ignore_errors=True)


def _load_final(final: Path) -> EmbeddingSet:
    items = json.loads((final / "items.json").read_text(encoding="utf-8"))
    manifest = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
    array = np.load(final / "embeddings.npy", mmap_mode="r")
    return EmbeddingSet(
        array=array, keys=items["keys"], texts=items["texts"], layers=items["layers"], manifest=manifest
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
    progress: Callable[[int, int], None] | None = None,
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
        progress=progress,
    )
    result.manifest = result.manifest | {
        "ontology": {"name": ontology.name, "source": ontology.source, "checksum": ontology.checksum},
        "field": field,
        "limit": limit,
        "seed": seed,
    }
    return result
