"""Partner retrieval by rank: how often an item's partner is among its k nearest items of the other field.

The figure a reader of an alignment claim wants beside the per-layer metrics: at a pair's best layer, for
k = 1 ... 100, the share of items ``i`` of field A whose partner ``i`` of field B is among the k items of B
most cosine-similar to it (and the same from B to A), against chance k / n. Both fields come from the same
model layer and are preprocessed as the measurement was, so their cosine similarities are comparable.

Beside it, the surface-form control (:func:`with_surface_share`): the same curve from a representation that
holds nothing but each item's surface form, the covariates the alignment's surface control regresses out
(token count, digit share, punctuation share). Where that curve is as high as the model's, retrieval says no
more than that partners look alike on the surface (docs/alignment.md, "Retrieval by rank").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lexprobe.align._metrics import _faiss_index, _normalized32, validate_embeddings
from lexprobe.align._surface import surface_covariates
from lexprobe.exceptions import AlignmentError

#: The largest k the table reaches (capped at the number of items).
MAX_RANK = 100
#: Rows searched at a time, so memory stays at (block x MAX_RANK) however many items there are.
_BLOCK = 4096
#: The jitter (in standard deviations) that breaks ties between items of the same surface form at random.
_TIE_JITTER = 1e-4


def partner_ranks(X: np.ndarray, Y: np.ndarray, *, max_rank: int = MAX_RANK) -> np.ndarray:
    """For each row ``i`` of ``X``, the rank (1 = nearest) of ``Y[i]`` among the rows of ``Y`` by cosine
    similarity to ``X[i]``, or ``max_rank + 1`` when it is not among the ``max_rank`` nearest.

    Exact search (FAISS inner product on unit rows, on a GPU when there is one); ties keep FAISS's order.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.1]])
    >>> partner_ranks(X, X, max_rank=2)
    array([1, 1, 1, 1])
    >>> partner_ranks(X, X[[1, 0, 2, 3]], max_rank=2)  # the first two partners swapped: beyond rank 2
    array([3, 3, 1, 1])
    """
    X, Y = validate_embeddings(X), validate_embeddings(Y)
    if X.shape != Y.shape:
        raise AlignmentError(f"the two fields must have the same shape, got {X.shape} and {Y.shape}")
    n = X.shape[0]
    depth = min(max_rank, n)
    index = _faiss_index(Y.shape[1])
    index.add(_normalized32(Y))
    Xn = _normalized32(X)
    ranks = np.full(n, max_rank + 1, dtype=np.int64)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        _, ids = index.search(Xn[start:stop], depth)
        hit = ids == np.arange(start, stop)[:, None]
        found = hit.any(axis=1)
        ranks[start:stop][found] = hit.argmax(axis=1)[found] + 1
    return ranks


def retrieval_by_rank(
    X: np.ndarray, Y: np.ndarray, *, names: tuple[str, str], layer: int, max_rank: int = MAX_RANK
) -> pd.DataFrame:
    """The retrieval-by-rank table of one pair at one layer, both directions.

    Parameters
    ----------
    X, Y : arrays of shape (n_items, n_features)
        The two fields' embeddings, row ``i`` of one the partner of row ``i`` of the other.
    names : (str, str)
        The two fields' names, for the ``pair`` (``a:b``) and ``direction`` (``a -> b``) columns.
    layer : int
        The layer the embeddings come from (recorded).
    max_rank : int, default 100

    Returns
    -------
    pandas.DataFrame
        ``pair, layer, direction, k, share, chance, n_items``: ``share`` the fraction of items whose partner
        is among their k nearest of the other field, ``chance`` k / n (a random ordering's expected share).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 8))
    >>> table = retrieval_by_rank(X, X + 0.01 * rng.standard_normal((50, 8)), names=("name", "symbol"), layer=3)
    >>> table.groupby("direction")["share"].min().round(2).to_dict()
    {'name -> symbol': 1.0, 'symbol -> name': 1.0}
    >>> float(table["chance"].iloc[0])
    0.02
    """
    a, b = names
    n = len(X)
    ks = np.arange(1, min(max_rank, n) + 1)
    rows = []
    for direction, ranks in (
        (f"{a} -> {b}", partner_ranks(X, Y, max_rank=max_rank)),
        (f"{b} -> {a}", partner_ranks(Y, X, max_rank=max_rank)),
    ):
        counts = np.bincount(np.minimum(ranks, max_rank + 1), minlength=max_rank + 2)
        within = np.cumsum(counts)[ks] / n
        rows.append(
            pd.DataFrame(
                {
                    "pair": f"{a}:{b}",
                    "layer": int(layer),
                    "direction": direction,
                    "k": ks,
                    "share": within,
                    "chance": ks / n,
                    "n_items": n,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def surface_only(A: np.ndarray, B: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The surface-only representation of two fields' items: each side's surface covariates
    (:func:`lexprobe.align.surface_covariates`), standardized over both sides together so that the two share
    one coordinate system, with a seeded jitter of :data:`_TIE_JITTER` standard deviations so that items of
    the same surface form (all ids of one length, say) tie at random instead of in row order.

    Examples
    --------
    >>> A = np.array([[2.0, 0.0, 0.0], [5.0, 0.5, 0.1], [3.0, 0.0, 0.0]])  # n_tokens, digit and punct share
    >>> X, Y = surface_only(A, A)
    >>> X.shape, bool(np.allclose(np.vstack([X, Y]).mean(axis=0), 0, atol=1e-3))
    ((3, 3), True)
    """
    C = np.vstack([np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)])
    sd = C.std(axis=0)
    Z = (C - C.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    Z += np.random.default_rng(seed).normal(scale=_TIE_JITTER, size=Z.shape)
    return Z[: len(A)], Z[len(A) :]


def with_surface_share(table: pd.DataFrame, first: Any, second: Any, *, seed: int = 0) -> pd.DataFrame:
    """``table`` (one pair's :func:`retrieval_by_rank`) with ``surface_share``: the same share, per direction
    and k, when each item is represented by its surface form alone (:func:`surface_only`), searched by cosine
    as the model's states are.

    Parameters
    ----------
    table : pandas.DataFrame
        One pair's :func:`retrieval_by_rank` (its ``pair`` names the two fields, first and second).
    first, second : EmbeddingSet
        The two fields' embeddings; their ``texts`` and ``n_tokens`` (pooled tokens per item) are read.
    seed : int, default 0
        Seeds the tie-breaking jitter.

    Returns
    -------
    pandas.DataFrame
        ``table`` plus ``surface_share`` (NaN throughout when a field's token counts were not recorded: a
        cache entry written before extraction recorded them).

    Examples
    --------
    Partners whose surface forms match one for one and differ from every other item's are retrieved by surface
    form alone:

    >>> from types import SimpleNamespace
    >>> texts = [f"GO:{'7' * (i % 9 + 1)}{'-' * (i // 9)}" for i in range(27)]  # 27 distinct surface forms
    >>> first = SimpleNamespace(texts=texts, n_tokens=[len(t) // 2 for t in texts])
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((27, 8))
    >>> table = retrieval_by_rank(X, rng.standard_normal((27, 8)), names=("id", "alt_id"), layer=3)
    >>> shares = with_surface_share(table, first, first).query("k == 1")
    >>> shares[["share", "surface_share"]].round(2).values.tolist()  # the model's states: about chance
    [[0.04, 1.0], [0.07, 1.0]]
    """
    if first.n_tokens is None or second.n_tokens is None:
        return table.assign(surface_share=np.nan)
    A = surface_covariates(first.texts, first.n_tokens).to_numpy()
    B = surface_covariates(second.texts, second.n_tokens).to_numpy()
    X, Y = surface_only(A, B, seed=seed)
    a, b = str(table["pair"].iloc[0]).split(":")
    surface = retrieval_by_rank(X, Y, names=(a, b), layer=int(table["layer"].iloc[0]), max_rank=int(table["k"].max()))
    return table.assign(surface_share=surface["share"].to_numpy())
