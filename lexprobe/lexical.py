"""Lexicalization: how far a field's strings (names, symbols, identifiers) are meaningful tokens to a model.

arXiv 2510.19036 explains why fine-tuning generalized only for gene name -> symbol by *lexicalization*, "the
extent to which a symbol functions as a meaningful token in embedding space": gene symbols are, GO / HPO /
HGNC identifiers are not. This module measures it per item and per field, for any tokenizer and model.

Tokenization measures (the model's own tokenizer, no forward pass)
    ``n_tokens``, ``chars_per_token``, ``single_token`` (the bare string is one token),
    ``single_token_spaced`` (the string after a space is one token: the ``Ġ`` / ``▁`` form a word takes
    inside a sentence), ``digit_punct_share`` (share of tokens that are only digits or punctuation),
    ``wordlike_share`` (share of tokens that are letters only, at least two of them), and ``log_rank``
    (mean over the item's tokens of log(1 + rank) / log(1 + max rank), in [0, 1]; see :func:`token_ranks`
    for how the rank is defined per tokenizer type). The rank is a frequency proxy: 0 is the base alphabet
    (single characters and digits, the most frequent units), and a learned merge or piece ranks higher the
    later (rarer, longer, more word-like) it was learned. A string that falls apart into characters and
    digits has ``log_rank`` near 0; one covered by learned vocabulary units reaches further.

Embedding measures (pooled hidden states from :mod:`lexprobe.embed`, sharing its cache)
    ``agreement``: per item, the share of its k nearest neighbours among this field's embeddings that are
    also its partner's neighbours among the reference field's (names): the per-item form of mutual kNN.
    ``crowding``: per item, mean cosine similarity to the other items of the field; per field,
    ``anisotropy`` (mean pairwise cosine of the raw states) and ``effective_rank`` (Roy & Vetterli 2007) of
    the preprocessed states: arbitrary identifiers tend to collapse together.
    ``probe``: a cross-validated linear probe (logistic regression) predicts the term's semantic category
    (GO namespace, HPO top-level branch under "Phenotypic abnormality", HGNC locus type) from the field's
    embeddings; its accuracy is compared with the majority-class baseline and with the same probe on the
    reference field. The probe runs at the chosen layer and at a few evenly spaced layers (``probe_layers``).
    Per item, ``probe_correct`` is 1 when the out-of-fold prediction is the item's category (see
    :func:`semantic_probe` for the probe).

The per-item score, in [0, 1] and non-decreasing in every component (:func:`lexicalization_score`)::

    tokenization = mean(1 / n_tokens, wordlike_share, 1 - digit_punct_share, log_rank)
    embedding    = mean(agreement, probe_correct)         # those that exist for the field
    score        = mean(tokenization, embedding)          # tokenization alone if no embedding part

Every component is kept in the output beside the score, so nobody has to trust the combination.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.config import StageConfig
from lexprobe.embed import ExtractionConfig, ExtractionFields, extract_hidden_states
from lexprobe.exceptions import LexicalizationError, LexprobeError
from lexprobe.figures import plot_lexicalization
from lexprobe.models import load_model
from lexprobe.progress import relabel
from lexprobe.runs import write_result_dir
from lexprobe.stats import bootstrap_mean_interval
from lexprobe.tasks import field_column, field_values, sample_terms

__all__ = [
    "LexicalConfig",
    "LexicalResult",
    "LexicalizationError",
    "ProbeResult",
    "anisotropy",
    "default_fields",
    "effective_rank",
    "item_crowding",
    "lexicalization_score",
    "measure_lexicalization",
    "semantic_probe",
    "token_ranks",
    "tokenization_measures",
    "tokenizer_kind",
    "write_lexicalization",
]

logger = logging.getLogger(__name__)

EMBEDDING_COMPONENTS = ("agreement", "probe_correct")


def default_fields(ontology: str) -> tuple[str, ...]:
    """Fields measured by default: name, symbol and id for HGNC; name and id otherwise."""
    return ("name", "symbol", "id") if ontology == "hgnc" else ("name", "id")


# --- tokenization -----------------------------------------------------------------------------------------


def _backend_model(tokenizer: Any) -> dict[str, Any] | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    return json.loads(backend.to_str())["model"]


def tokenizer_kind(tokenizer: Any) -> str:
    """``"bpe"``, ``"wordpiece"``, ``"unigram"``, ``"wordlevel"`` (fast tokenizers), or ``"other"``."""
    model = _backend_model(tokenizer)
    return str(model.get("type", "other")).lower() if model else "other"


def token_ranks(tokenizer: Any) -> tuple[np.ndarray, str]:
    """A frequency-proxy rank for every token id (0 = most basic / frequent), and how it was computed.

    - BPE: 1 + the index of the merge that creates the token (merges are learned most-frequent first);
      tokens no merge creates (the base alphabet, added tokens) get rank 0.
    - Unigram (SentencePiece): the token's position when pieces are sorted by descending log-probability.
    - WordPiece, WordLevel and anything else: the vocabulary index (WordPiece vocabularies list the
      alphabet first and then pieces roughly in the order they were added, i.e. by frequency).

    Returns
    -------
    ranks : ndarray of int64, shape (len(tokenizer),)
    method : str
    """
    size = len(tokenizer)
    ranks = np.arange(size, dtype=np.int64)
    model = _backend_model(tokenizer)
    kind = str(model.get("type", "")).lower() if model else "other"
    if kind == "bpe" and model.get("merges"):
        ranks = np.zeros(size, dtype=np.int64)
        vocab = model["vocab"]
        for index, merge in enumerate(model["merges"]):
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            token_id = vocab.get(left + right)
            if token_id is not None and token_id < size and ranks[token_id] == 0:
                ranks[token_id] = index + 1
        return ranks, "bpe merge order (1 + index of the merge creating the token; base alphabet 0)"
    if kind == "unigram" and model.get("vocab"):
        scores = np.array([float(score) for _piece, score in model["vocab"]])
        order = np.argsort(-scores, kind="stable")
        ranks = np.zeros(size, dtype=np.int64)
        ranks[order[order < size]] = np.arange(len(order))[order < size]
        return ranks, "unigram rank by descending piece log-probability"
    return ranks, f"vocabulary index ({kind or 'unknown'} tokenizer)"


def _piece_text(tokenizer: Any, token_id: int) -> str:
    piece = tokenizer.decode([token_id], clean_up_tokenization_spaces=False).strip()
    return piece[2:] if piece.startswith("##") else piece


def _is_digit_punct(piece: str) -> bool:
    return bool(piece) and all(ch.isdigit() or unicodedata.category(ch).startswith(("P", "S")) for ch in piece)


def _is_wordlike(piece: str) -> bool:
    return len(piece) >= 2 and piece.isalpha()


def tokenization_measures(texts: Sequence[str], tokenizer: Any) -> pd.DataFrame:
    """Tokenization measures of each text (see the module docstring), one row per text.

    Parameters
    ----------
    texts : sequence of str
    tokenizer : a Hugging Face tokenizer (fast or slow)

    Returns
    -------
    pandas.DataFrame
        Columns ``n_tokens, n_chars, chars_per_token, single_token, single_token_spaced,
        digit_punct_share, wordlike_share, log_rank``.
    """
    if len(texts) == 0:
        raise LexicalizationError("no texts to tokenize")
    ranks, _ = token_ranks(tokenizer)
    max_log = np.log1p(max(int(ranks.max()), 1))
    encode = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    spaced = tokenizer([" " + t for t in texts], add_special_tokens=False)["input_ids"]
    pieces: dict[int, str] = {}
    rows = []
    for text, ids, spaced_ids in zip(texts, encode, spaced):
        if not ids:
            raise LexicalizationError(f"text {text!r} has no tokens; empty strings cannot be measured")
        for token_id in ids:
            if token_id not in pieces:
                pieces[token_id] = _piece_text(tokenizer, token_id)
        texts_of = [pieces[i] for i in ids]
        rank = ranks[np.minimum(np.asarray(ids), len(ranks) - 1)]
        rows.append(
            {
                "n_tokens": len(ids),
                "n_chars": len(text),
                "chars_per_token": len(text) / len(ids),
                "single_token": len(ids) == 1,
                "single_token_spaced": len(spaced_ids) == 1,
                "digit_punct_share": float(np.mean([_is_digit_punct(p) for p in texts_of])),
                "wordlike_share": float(np.mean([_is_wordlike(p) for p in texts_of])),
                "log_rank": float(np.mean(np.log1p(rank)) / max_log),
            }
        )
    return pd.DataFrame(rows)


# --- embedding geometry ------------------------------------------------------------------------------------


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def item_crowding(X: np.ndarray) -> np.ndarray:
    """Per item, the mean cosine similarity to every other item, shape (n_items,). O(n d)."""
    U = _unit(X)
    n = U.shape[0]
    if n < 2:
        raise LexicalizationError("crowding needs at least 2 items")
    total = U.sum(axis=0)
    return (U @ total - np.einsum("ij,ij->i", U, U)) / (n - 1)


def anisotropy(X: np.ndarray) -> float:
    """Mean pairwise cosine similarity over distinct items (0: spread out; 1: all one direction)."""
    return float(item_crowding(X).mean())


def effective_rank(X: np.ndarray) -> float:
    """Effective rank of the centred rows: exp of the entropy of the normalized singular values.

    Roy & Vetterli 2007. Between 1 (everything on one line) and min(n_items, dim).
    """
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(axis=0)
    # singular values from the eigenvalues of the smaller Gram matrix (a GEMM and a symmetric
    # eigensolve: several times faster than an SVD of the rows)
    gram = Xc.T @ Xc if Xc.shape[0] >= Xc.shape[1] else Xc @ Xc.T
    s = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))
    s = s[s > s.max() * 1e-6] if s.size and s.max() > 0 else s[:0]
    if s.size == 0:
        return 1.0
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


@dataclasses.dataclass
class ProbeResult:
    """A cross-validated category probe on one embedding matrix.

    ``correct`` is per item: 1.0 when the out-of-fold prediction is the item's category, 0.0 when not, NaN
    for items left out (their category has too few members).
    """

    accuracy: float
    baseline: float
    n_items: int
    n_classes: int
    correct: np.ndarray


def semantic_probe(
    X: np.ndarray,
    labels: Sequence[Any],
    *,
    folds: int = 5,
    min_class: int = 10,
    seed: int = 0,
) -> ProbeResult:
    """Out-of-fold accuracy of a linear probe predicting ``labels`` from the rows of ``X``.

    The probe standardizes the features and fits a ridge classifier (one-vs-rest least squares) whose
    penalty is chosen inside each training fold by efficient leave-one-out cross-validation over
    10^-1 .. 10^6. With hundreds of dimensions and a few thousand items a logistic probe with a fixed
    penalty overfits and, on pure noise, scores *below* the majority baseline (measured here: 2 to 13 points
    at d = 40 to 576, n = 600, C = 0.01 to 1); with the penalty chosen per fold the probe falls back to the
    majority class on noise and scores the baseline, while planted signals are recovered.

    Categories with fewer than ``min_class`` items are left out. The baseline is the share of the most
    frequent remaining category (what predicting it for everyone scores).

    Raises
    ------
    LexicalizationError
        If fewer than two categories have ``min_class`` items, or the sizes disagree.
    """
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray([str(v) for v in labels], dtype=object)
    X = np.asarray(X, dtype=np.float64)
    if len(labels) != X.shape[0]:
        raise LexicalizationError(f"{X.shape[0]} embeddings but {len(labels)} labels")
    values, counts = np.unique(labels, return_counts=True)
    kept = set(values[counts >= max(min_class, folds)])
    mask = np.array([v in kept for v in labels])
    if len(kept) < 2:
        raise LexicalizationError(
            f"the probe needs at least 2 categories with >= {max(min_class, folds)} items; got {len(kept)} "
            "(raise --limit, or measure every category)"
        )
    classes, y = np.unique(labels[mask], return_inverse=True)
    probe = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-1, 6, 15)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(probe, X[mask], y, cv=cv)
    correct = np.full(len(labels), np.nan)
    correct[mask] = (predicted == y).astype(float)
    return ProbeResult(
        accuracy=float((predicted == y).mean()),
        baseline=float(np.bincount(y).max() / len(y)),
        n_items=int(mask.sum()),
        n_classes=len(classes),
        correct=correct,
    )


# --- the score ----------------------------------------------------------------------------------------------


def lexicalization_score(items: pd.DataFrame) -> pd.DataFrame:
    """Add ``tokenization_score``, ``embedding_score`` and ``score`` (all in [0, 1]) to per-item measures.

    ``items`` needs ``n_tokens, wordlike_share, digit_punct_share, log_rank``; ``agreement`` and
    ``probe_correct`` are used where present and not NaN. Each part is the mean of its components (see the
    module docstring), so the score rises (never falls) when any component moves towards "a meaningful
    token": fewer tokens, more word-like pieces, fewer digit / punctuation pieces, tokens further into the
    learned vocabulary (not bare characters), more neighbourhood agreement with the names, more category
    information.
    """
    missing = [c for c in ("n_tokens", "wordlike_share", "digit_punct_share", "log_rank") if c not in items]
    if missing:
        raise LexicalizationError(f"lexicalization_score needs columns {missing}")
    n_tokens = items["n_tokens"].astype(float)
    if (n_tokens < 1).any():
        raise LexicalizationError("n_tokens must be >= 1")
    parts = pd.DataFrame(
        {
            "inv_tokens": 1.0 / n_tokens,
            "wordlike_share": items["wordlike_share"].astype(float),
            "non_digit_punct_share": 1.0 - items["digit_punct_share"].astype(float),
            "learned_tokens": items["log_rank"].astype(float),
        }
    ).clip(0.0, 1.0)
    tokenization = parts.mean(axis=1)
    emb_cols = [c for c in EMBEDDING_COMPONENTS if c in items]
    embedding = (
        items[emb_cols].astype(float).clip(0.0, 1.0).mean(axis=1, skipna=True)
        if emb_cols
        else pd.Series(np.nan, index=items.index)
    )
    score = pd.concat([tokenization, embedding], axis=1).mean(axis=1, skipna=True)
    return items.assign(tokenization_score=tokenization, embedding_score=embedding, score=score)


# --- the run --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LexicalConfig(ExtractionFields, StageConfig):
    """What ``lexprobe lexicalization`` measures.

    Parameters
    ----------
    ontology : str
        Built-in name or path.
    fields : sequence of str, optional
        Fields to measure; default :func:`default_fields`.
    reference : str
        Field the neighbourhood agreement compares with, and whose probe is the comparison (``name``).
    model : str
    dtype : {"auto", "float32", "bfloat16", "float16"}
        The model's precision (:func:`lexprobe.models.load_model`); ``"auto"`` is bfloat16 where the hardware
        computes it natively.
    limit : int or None
        Popularity-balanced sample of terms.
    categories : sequence of str or None
        Term categories to sample from. ``None`` samples every category (the probe needs several; for HGNC
        that means every locus type, not only the protein-coding genes tasks use by default).
    layers, pool, template, prefix
        As :class:`lexprobe.embed.ExtractionConfig`, with its defaults (:attr:`extraction` is the one they make).
    layer : "best" or int
        Layer of the per-item embedding components: ``best`` is the layer where the mean agreement of the
        non-reference fields with the reference is highest (one layer for every field).
    k : int
        Neighbours for the agreement.
    preprocess : str
        As :func:`lexprobe.align.preprocess`, applied before agreement, effective rank and the probe.
    probe_layers : "auto", "all" or tuple of int
        Layers the category probe runs at, besides the chosen one: ``auto`` is 8 evenly spaced layers
        (each probe is a cross-validated fit, the costly part of a run).
    probe_folds, min_class : int
        Cross-validation folds of the probe; categories with fewer items are left out of it.
        See :func:`semantic_probe`.
    embeddings : bool
        Measure the embedding components (False: tokenization only, no model forward).
    seed : int
    batch_size : "auto" or int
        Items per forward pass (``"auto"``: as many as fit); changes the speed, not the result.
    """

    ontology: str
    fields: tuple[str, ...] | None = None
    reference: str = "name"
    model: str = "smollm2-135m"
    dtype: str = "auto"
    limit: int | None = 2000
    categories: tuple[str, ...] | None = None
    layers: str | tuple[int, ...] = ExtractionConfig.layers
    pool: str = ExtractionConfig.pool
    template: str = ExtractionConfig.template
    prefix: str = ExtractionConfig.prefix
    layer: str | int = "best"
    k: int = 10
    preprocess: str = "standardize"
    probe_layers: str | tuple[int, ...] = "auto"
    probe_folds: int = 5
    min_class: int = 10
    embeddings: bool = True
    seed: int = 0
    batch_size: int | str = ExtractionConfig.batch_size

    def __post_init__(self) -> None:
        from lexprobe.align import PREPROCESSING

        for field in (*(self.fields or ()), self.reference):
            try:
                field_column(field)
            except LexprobeError as exc:
                raise LexicalizationError(str(exc)) from None
        if self.fields is not None and len(self.fields) == 0:
            raise LexicalizationError("--fields is empty; give e.g. name,symbol,id")
        if self.limit is not None and self.limit < 20:
            raise LexicalizationError(f"--limit must be at least 20 terms, got {self.limit}")
        if self.k < 1:
            raise LexicalizationError(f"--k must be >= 1, got {self.k}")
        if self.probe_folds < 2:
            raise LexicalizationError(f"--probe-folds must be >= 2, got {self.probe_folds}")
        if self.preprocess not in PREPROCESSING:
            raise LexicalizationError(f"--preprocess must be one of {', '.join(PREPROCESSING)}")
        if not (self.probe_layers in ("auto", "all") or isinstance(self.probe_layers, tuple)):
            raise LexicalizationError(f"--probe-layers must be auto, all or a list of ints, got {self.probe_layers!r}")
        if not (self.layer == "best" or isinstance(self.layer, int)):
            raise LexicalizationError(f"--layer must be 'best' or an integer, got {self.layer!r}")

    def resolved_fields(self, ontology: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.fields or default_fields(ontology)))


@dataclasses.dataclass
class LexicalResult:
    """Per-item measures (``items``), per-field summary (``fields``), per-layer measures (``layers``)."""

    items: pd.DataFrame
    fields: pd.DataFrame
    layers: pd.DataFrame
    manifest: dict[str, Any]


def measure_lexicalization(
    config: LexicalConfig,
    *,
    model: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> LexicalResult:
    """Measure tokenization and embedding lexicalization of each field of a term sample.

    Parameters
    ----------
    config : LexicalConfig
    model : LoadedModel, optional
        A loaded model to reuse; default loads ``config.model``.
    progress : callable, optional
        ``progress(stage, done, total)``: ``"loading model"``, ``"tokenizing"`` per field, ``"embedding
        <field>"`` per batch of items, ``"geometry by layer"`` per layer and ``"category probe by layer"`` per
        probed layer.
    cache_dir : path, optional
        Embedding cache (default ``$LEXPROBE_CACHE/embeddings``).

    Returns
    -------
    LexicalResult
        ``items``: one row per (item, field) with ``id, field, text, category, popularity`` and every
        component plus the scores. ``fields``: one row per field (means, probe, geometry at the chosen
        layer). ``layers``: one row per (field, layer) with agreement, probe accuracy and geometry.
    """
    from lexprobe.ontology import load_ontology

    ontology = load_ontology(config.ontology)
    fields, terms = _lexical_sample(config, ontology)
    embed_fields = tuple(dict.fromkeys((*fields, config.reference))) if config.embeddings else ()
    n = len(terms)
    started = time.perf_counter()
    if config.embeddings and config.k > n - 1:
        raise LexicalizationError(f"--k must be at most n_items - 1 = {n - 1}, got {config.k}")
    if model is None and progress:
        progress("loading model", 0, 1)
    lm = model if model is not None else load_model(config.model, dtype=config.dtype)
    if model is None and progress:
        progress("loading model", 1, 1)
    texts = {f: field_values(terms, f) for f in dict.fromkeys((*fields, config.reference))}
    items = _tokenization_table(terms, texts, fields, lm.tokenizer, progress)
    layer_rows: list[dict[str, Any]] = []
    chosen_layer = None
    manifest_embeddings = {}
    if config.embeddings:
        chosen_layer, layer_rows, per_item_emb, manifest_embeddings = _embedding_measures(
            config, terms, texts, fields, embed_fields, lm, progress, cache_dir
        )
        for column in ("agreement", "crowding", "probe_correct"):
            items[column] = np.concatenate([per_item_emb[(f, chosen_layer)][column] for f in fields])
    items = lexicalization_score(items)
    field_table = _field_summary(items, fields, config, layer_rows, chosen_layer)
    manifest = {
        "stage": "lexicalization",
        "config": config.to_dict() | {"fields_resolved": list(fields)},
        "inputs": {
            "ontology": ontology.describe(),
            "model": lm.describe(),
            "tokenizer": {"kind": tokenizer_kind(lm.tokenizer), "rank": token_ranks(lm.tokenizer)[1]},
            "n_items": n,
            "layer": chosen_layer,
            "embeddings": manifest_embeddings,
        },
        "seed": config.seed,
        # wall-clock seconds of the measurement (model loading included when it loaded the model)
        "seconds": round(time.perf_counter() - started, 3),
    }
    return LexicalResult(items=items, fields=field_table, layers=pd.DataFrame(layer_rows), manifest=manifest)


def _lexical_sample(config: LexicalConfig, ontology: Any) -> tuple[tuple[str, ...], pd.DataFrame]:
    """The resolved fields and the sample of terms that have each of them and the reference; at least 20."""
    fields = config.resolved_fields(ontology.name)
    categories = () if config.categories is None else config.categories
    try:
        terms = sample_terms(
            ontology,
            config.limit,
            seed=config.seed,
            fields=tuple(dict.fromkeys((*fields, config.reference))),
            categories=categories,
        )
    except LexprobeError as exc:
        raise LexicalizationError(str(exc)) from None
    n = len(terms)
    if n < 20:
        raise LexicalizationError(f"only {n} terms have every field {list(fields)}; need at least 20")
    return fields, terms


def _tokenization_table(
    terms: pd.DataFrame,
    texts: dict[str, list[str]],
    fields: tuple[str, ...],
    tokenizer: Any,
    progress: Callable[[str, int, int], None] | None,
) -> pd.DataFrame:
    """One row per (item, field): ``id, field, text, category, popularity`` and the tokenization measures
    (``"tokenizing"`` per field)."""
    frames = []
    for number, field in enumerate(fields):
        if progress:
            progress("tokenizing", number, len(fields))
        measures = tokenization_measures(texts[field], tokenizer)
        frames.append(
            pd.concat(
                [
                    pd.DataFrame(
                        {
                            "id": terms["id"].astype(str).to_numpy(),
                            "field": field,
                            "text": texts[field],
                            "category": terms["category"].astype(str).to_numpy(),
                            "popularity": terms["popularity"].to_numpy(),
                        }
                    ),
                    measures,
                ],
                axis=1,
            )
        )
    if progress:
        progress("tokenizing", len(fields), len(fields))
    return pd.concat(frames, ignore_index=True)


def _probe_layer_set(spec: str | tuple[int, ...], layers: list[int], chosen: int) -> list[int]:
    if spec == "all":
        picked = set(layers)
    elif spec == "auto":
        count = min(8, len(layers))
        picked = {layers[int(round(i))] for i in np.linspace(0, len(layers) - 1, count)}
    else:
        resolved = {layers[i] if i < 0 else i for i in spec}  # type: ignore[union-attr]
        unknown = sorted(resolved - set(layers))
        if unknown:
            raise LexicalizationError(f"--probe-layers {unknown} are not among the extracted layers {layers}")
        picked = resolved
    return sorted(picked | {chosen})


def _embedding_measures(config, terms, texts, fields, embed_fields, lm, progress, cache_dir):
    from lexprobe.align import knn_indices, neighbour_overlap, preprocess

    extraction = config.extraction
    sets = {}
    for field in embed_fields:
        sets[field] = extract_hidden_states(
            texts[field],
            keys=list(terms["id"]),
            model=lm,
            config=extraction,
            cache_dir=cache_dir,
            progress=relabel(progress, f"embedding {field}"),
        )
    layers = list(sets[embed_fields[0]].layers)
    labels = terms["category"].astype(str).to_numpy()
    ref, n = config.reference, len(terms)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    per_item: dict[tuple[str, int], dict[str, np.ndarray]] = {}

    def layer_matrix(field: str, layer: int) -> np.ndarray:
        return preprocess(np.asarray(sets[field].layer(layer)), config.preprocess)

    # pass 1, every layer: neighbourhood agreement and geometry (cheap)
    for l_index, layer in enumerate(layers):
        if progress:
            progress("geometry by layer", l_index, len(layers))
        pre = {f: layer_matrix(f, layer) for f in embed_fields}
        ref_knn = knn_indices(pre[ref], config.k)
        for field in fields:
            crowd = item_crowding(np.asarray(sets[field].layer(layer)))
            if field == ref:
                agreement = np.full(n, np.nan)
            else:
                knn = knn_indices(pre[field], config.k)
                agreement = neighbour_overlap(knn, ref_knn) / config.k
            per_item[(field, layer)] = {"agreement": agreement, "crowding": crowd}
            rows[(field, layer)] = {
                "field": field,
                "layer": int(layer),
                "agreement": float(np.mean(agreement)) if field != ref else float("nan"),
                "agreement_chance": config.k / (n - 1),
                "anisotropy": float(crowd.mean()),
                "effective_rank": effective_rank(pre[field]),
            }
    if progress:
        progress("geometry by layer", len(layers), len(layers))
    chosen = _chosen_layer(config.layer, list(rows.values()), layers, ref)

    # pass 2, the chosen layer and a few others: the category probe (a cross-validated fit per field)
    probe_layers = _probe_layer_set(config.probe_layers, layers, chosen)
    probes: dict[tuple[str, int], ProbeResult | None] = {}
    for l_index, layer in enumerate(probe_layers):
        if progress:
            progress("category probe by layer", l_index, len(probe_layers))
        ref_probe = _probe_or_none(layer_matrix(ref, layer), labels, config)
        for field in fields:
            probe = ref_probe if field == ref else _probe_or_none(layer_matrix(field, layer), labels, config)
            probes[(field, layer)] = probe
            rows[(field, layer)] |= {
                "probe_accuracy": probe.accuracy if probe else float("nan"),
                "probe_baseline": probe.baseline if probe else float("nan"),
                "probe_reference": ref_probe.accuracy if ref_probe else float("nan"),
                "probe_classes": probe.n_classes if probe else 0,
            }
    for field in fields:
        probe = probes[(field, chosen)]
        per_item[(field, chosen)]["probe_correct"] = probe.correct if probe else np.full(n, np.nan)
    if progress:
        progress("category probe by layer", len(probe_layers), len(probe_layers))
    columns = ["probe_accuracy", "probe_baseline", "probe_reference", "probe_classes"]
    table = [{c: float("nan") for c in columns} | row for row in rows.values()]
    manifest = {f: s.manifest.get("inputs", {}) for f, s in sets.items()}
    return chosen, table, per_item, manifest


def _chosen_layer(layer: str | int, rows: list[dict[str, Any]], layers: list[int], ref: str) -> int:
    """The layer of the per-item components: ``best``, where the non-reference fields' mean agreement with the
    reference is highest (the middle layer when only the reference was measured), or the one asked for."""
    if layer == "best":
        targets = [r for r in rows if r["field"] != ref]
        if not targets:
            return layers[len(layers) // 2]
        return int(pd.DataFrame(targets).groupby("layer")["agreement"].mean().idxmax())
    chosen = layers[layer] if layer < 0 else layer
    if chosen not in layers:
        raise LexicalizationError(f"--layer {layer} is not among the extracted layers {layers}")
    return chosen


def _probe_or_none(X, labels, config) -> ProbeResult | None:
    try:
        return semantic_probe(X, labels, folds=config.probe_folds, min_class=config.min_class, seed=config.seed)
    except LexicalizationError as exc:
        logger.info("probe skipped: %s", exc)
        return None


def _field_summary(items, fields, config, layer_rows, layer) -> pd.DataFrame:
    rows = []
    by_layer = pd.DataFrame(layer_rows)
    rng = np.random.default_rng(config.seed)
    for field in fields:
        part = items[items["field"] == field]
        score = part["score"].to_numpy()
        low, high = bootstrap_mean_interval(score, rng=rng, n_boot=200)
        row: dict[str, Any] = {
            "field": field,
            "n_items": len(part),
            "tokens_mean": part["n_tokens"].mean(),
            "chars_per_token": part["chars_per_token"].mean(),
            "single_token_share": part["single_token"].mean(),
            "single_token_spaced_share": part["single_token_spaced"].mean(),
            "digit_punct_share": part["digit_punct_share"].mean(),
            "wordlike_share": part["wordlike_share"].mean(),
            "log_rank": part["log_rank"].mean(),
            "tokenization_score": part["tokenization_score"].mean(),
        }
        if layer is not None:
            at = by_layer[(by_layer["field"] == field) & (by_layer["layer"] == layer)].iloc[0]
            row |= {
                "layer": layer,
                "agreement": at["agreement"],
                "agreement_chance": at["agreement_chance"],
                "anisotropy": at["anisotropy"],
                "effective_rank": at["effective_rank"],
                "probe_accuracy": at["probe_accuracy"],
                "probe_baseline": at["probe_baseline"],
                "probe_reference": at["probe_reference"],
                "probe_best_accuracy": by_layer[by_layer["field"] == field]["probe_accuracy"].max(),
                "embedding_score": part["embedding_score"].mean(),
            }
        row |= {
            "score": float(score.mean()),
            "score_ci_low": low,
            "score_ci_high": high,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def write_lexicalization(result: LexicalResult, out: str | os.PathLike[str], *, figures: bool = True) -> list[Path]:
    """Write ``lexicalization_items.csv``, ``lexicalization_fields.csv``, ``lexicalization_layers.csv``, the
    manifest and figures into ``out``, each atomically."""

    def draw(directory: Path) -> list[Path]:
        title = result.manifest["inputs"]["ontology"]["name"]
        return plot_lexicalization(result.items, directory, layers=result.layers, title=title)

    tables = {"lexicalization_items.csv": result.items, "lexicalization_fields.csv": result.fields}
    if not result.layers.empty:
        tables["lexicalization_layers.csv"] = result.layers
    return write_result_dir(
        out, tables, stage="lexicalization", record=result.manifest, figures=draw if figures else None
    )
