"""Alignment metrics between paired embeddings X (n, d1) and Y (n, d2): row i of X belongs with row i of Y.

Every public metric returns an :class:`AlignmentScore`: a float (so arithmetic, comparisons, NumPy and JSON
use it as before) that carries the metric's chance level beside it. Each takes two paired matrices, or two
:class:`~lexprobe.embed.EmbeddingSet` with ``layer=``. The feature-space CKA forms never build an n x n
matrix: they accumulate d x d cross-products in float64 over row batches (:class:`CKAAccumulator`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lexprobe.exceptions import AlignmentError
from lexprobe.stats import rank_correlation

if TYPE_CHECKING:
    from lexprobe.embed import EmbeddingSet

__all__ = [
    "AlignmentScore",
    "validate_embeddings",
    "validate_pair",
    "preprocess",
    "PREPROCESSING",
    "knn_indices",
    "mutual_knn",
    "mutual_knn_per_item",
    "retrieval",
    "RETRIEVAL_MAPS",
    "CKAAccumulator",
    "linear_cka",
    "debiased_cka",
    "rsa",
]

PREPROCESSING = ("none", "center", "standardize", "clip")

#: RSA of a constant distance vector: its rank correlation is undefined, and RSA scores it as no alignment
#: (0.0) rather than NaN, so that a bootstrap resample holding two distinct items (one distance) does not make
#: the whole interval NaN. The rule for the other statistics is NaN (``lexprobe.stats``).
RSA_CONSTANT = 0.0


class AlignmentScore(float):
    """A metric's value, a float, with the metric's chance level beside it (``value``, ``chance``, ``metric``).

    It is a ``float`` subclass, so code that used the plain float the metrics returned before (arithmetic,
    comparisons, ``np.array`` of scores, ``json``, ``f"{score:.3f}"``) reads the value unchanged; ``float(score)``
    or ``score.value`` is the value alone. It is immutable. ``chance`` is the metric's mean over random
    pairings of the rows (what unrelated sides score): ``k / (n - 1)`` for mutual kNN, ``k / n_test`` for
    retrieval@k, the exact mean over all pairings for linear CKA, 0 for debiased CKA and about 0 for RSA
    (see each metric). ``above_chance`` is ``value - chance``.

    Examples
    --------
    >>> score = AlignmentScore(0.42, chance=0.1, metric="mknn")
    >>> score
    AlignmentScore(value=0.42, chance=0.1, metric='mknn')
    >>> float(score), score.value, round(score.above_chance, 2), score > 0.4
    (0.42, 0.42, 0.32, True)
    """

    __slots__ = ("chance", "metric")
    chance: float
    metric: str

    def __new__(cls, value: float, chance: float, metric: str) -> AlignmentScore:
        self = super().__new__(cls, value)
        object.__setattr__(self, "chance", float(chance))
        object.__setattr__(self, "metric", str(metric))
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"AlignmentScore is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"AlignmentScore is immutable; cannot delete {name!r}")

    def __reduce__(self):
        return (type(self), (float(self), self.chance, self.metric))

    @property
    def value(self) -> float:
        """The metric's value as a plain float."""
        return float(self)

    @property
    def above_chance(self) -> float:
        """``value - chance``: the metric's excess over unrelated sides."""
        return float(self) - self.chance

    def __repr__(self) -> str:
        return f"AlignmentScore(value={float(self)!r}, chance={self.chance!r}, metric={self.metric!r})"

    __str__ = float.__repr__  # str(score) and f"{score}" stay the plain number, as they were for a float


#: What an EmbeddingSet-shaped argument is told (see :func:`_matrix`).
_HOW_TO_GET_ONE = (
    "pass a (n_items, n_features) float array, e.g. EmbeddingSet.layer(i), or an EmbeddingSet with layer=i "
    "(lexprobe.embed.embed_field or extract_hidden_states make one)"
)


def _matrix(X: Any, name: str, layer: int | None) -> Any:
    """``X`` as the metrics take it: an EmbeddingSet's matrix at ``layer`` (or its only layer), else ``X`` itself.

    An object that is neither an EmbeddingSet nor array-like is an :class:`AlignmentError` saying how to get one
    (``np.asarray`` would make it a 0-d object array, whose "got shape ()" misleads).
    """
    from lexprobe.embed import EmbeddingSet  # below align; already loaded by `import lexprobe.align`

    if isinstance(X, EmbeddingSet):
        if layer is None:
            if len(X.layers) != 1:
                raise AlignmentError(
                    f"`{name}` is an EmbeddingSet of {len(X.layers)} layers ({_layer_span(X.layers)}); "
                    f"say which with layer=, e.g. layer={X.layers[len(X.layers) // 2]}"
                )
            layer = X.layers[0]
        if layer not in X.layers:
            raise AlignmentError(
                f"layer {layer} was not extracted for `{name}`; its layers are {_layer_span(X.layers)}"
            )
        return X.layer(layer)
    if layer is not None:
        raise AlignmentError(
            f"layer= applies to EmbeddingSets; `{name}` is a {type(X).__name__}, pass its matrix alone"
        )
    return X


def _layer_span(layers: list[int]) -> str:
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}..{layers[-1]}"
    return ", ".join(str(i) for i in layers)


def validate_embeddings(X: np.ndarray, name: str = "X", *, min_rows: int = 4) -> np.ndarray:
    """Check ``X`` is a finite 2-D float array with at least ``min_rows`` rows; return it as an array.

    Raises
    ------
    AlignmentError
        Wrong shape, too few rows, non-float or non-finite values; an EmbeddingSet or another object that is
        not a matrix (the message says how to get one).

    Examples
    --------
    >>> validate_embeddings(np.zeros((5, 3))).shape
    (5, 3)
    >>> validate_embeddings(np.zeros((2, 5, 3)))
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.AlignmentError: `X` must be 2-D (n_items, n_features), got shape (2, 5, 3): ...
    """
    from lexprobe.embed import EmbeddingSet

    if isinstance(X, EmbeddingSet):
        raise AlignmentError(
            f"`{name}` is an EmbeddingSet; pass one layer's (n_items, n_features) matrix, EmbeddingSet.layer(i) (the "
            "metrics mutual_knn, retrieval, linear_cka, debiased_cka and rsa also take the set with layer=i)"
        )
    kind = type(X).__name__
    try:
        X = np.asarray(X)
    except (ValueError, TypeError):  # a ragged list
        X = np.empty((), dtype=object)
    if X.dtype == object:
        raise AlignmentError(f"`{name}` must be an embedding matrix, got a {kind}; {_HOW_TO_GET_ONE}")
    if X.ndim == 3:
        raise AlignmentError(
            f"`{name}` must be 2-D (n_items, n_features), got shape {X.shape}: a (layers, items, dim) stack like "
            "EmbeddingSet.array; pass one layer, e.g. array[i] or EmbeddingSet.layer(i)"
        )
    if X.ndim != 2:
        raise AlignmentError(f"`{name}` must be 2-D (n_items, n_features), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise AlignmentError(f"`{name}` must hold floats, got dtype {X.dtype}")
    if X.shape[0] < min_rows:
        raise AlignmentError(f"`{name}` has {X.shape[0]} rows; at least {min_rows} are needed")
    if not np.isfinite(X).all():
        raise AlignmentError(f"`{name}` has {int((~np.isfinite(X)).sum())} non-finite values (nan or inf)")
    return X


def validate_pair(
    X: np.ndarray | EmbeddingSet, Y: np.ndarray | EmbeddingSet, *, min_rows: int = 4, layer: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate both matrices and check they are paired (same number of rows).

    ``X`` and ``Y`` may be EmbeddingSets, with ``layer`` the hidden-state index to take from both (it may be
    left out when each holds one layer); two sets must hold the same item keys in the same order.

    Examples
    --------
    >>> X, Y = validate_pair(np.ones((6, 4)), np.ones((6, 2)))
    >>> X.shape, Y.shape
    ((6, 4), (6, 2))
    """
    _check_keys(X, Y)
    X, Y = _matrix(X, "X", layer), _matrix(Y, "Y", layer)
    X = validate_embeddings(X, "X", min_rows=min_rows)
    Y = validate_embeddings(Y, "Y", min_rows=min_rows)
    if X.shape[0] != Y.shape[0]:
        raise AlignmentError(f"X and Y must be paired row by row; got {X.shape[0]} and {Y.shape[0]} rows")
    return X, Y


def _check_keys(X: Any, Y: Any) -> None:
    """Two EmbeddingSets are paired only when they hold the same items in the same order."""
    from lexprobe.embed import EmbeddingSet

    if not (isinstance(X, EmbeddingSet) and isinstance(Y, EmbeddingSet)):
        return
    keys_x, keys_y = list(X.keys), list(Y.keys)
    if keys_x != keys_y:
        first = next((i for i, (a, b) in enumerate(zip(keys_x, keys_y)) if a != b), min(len(keys_x), len(keys_y)))
        raise AlignmentError(
            f"the two EmbeddingSets are not paired item by item: their keys differ from row {first} on "
            f"({len(keys_x)} and {len(keys_y)} items); embed both fields of the same terms, in the same order"
        )


def preprocess(X: np.ndarray, method: str = "standardize", *, clip_sd: float = 5.0) -> np.ndarray:
    """Prepare hidden states for comparison.

    LLM hidden states carry a few "massive activation" dimensions (values 1e3-1e4 times the rest) that
    dominate cosine similarity and CKA in middle and late layers.

    Parameters
    ----------
    method : {"none", "center", "standardize", "clip"}
        ``center`` subtracts the mean; ``standardize`` also divides each dimension by its standard deviation
        (so no dimension dominates); ``clip`` centers, then clips each dimension to ``clip_sd`` times the
        median dimension's standard deviation (tames the massive dimensions, keeps the others' scale).

    Returns
    -------
    ndarray of float64, same shape

    Examples
    --------
    >>> X = np.array([[1.0, 100.0], [3.0, 300.0], [5.0, 500.0]])
    >>> preprocess(X, "center")
    array([[  -2., -200.],
           [   0.,    0.],
           [   2.,  200.]])
    >>> preprocess(X, "standardize").round(3)
    array([[-1.225, -1.225],
           [ 0.   ,  0.   ],
           [ 1.225,  1.225]])
    """
    if method not in PREPROCESSING:
        raise AlignmentError(f"`preprocess` must be one of {', '.join(PREPROCESSING)}, got {method!r}")
    X = np.asarray(X, dtype=np.float64)
    if method == "none":
        return X
    X = X - X.mean(axis=0)
    if method == "center":
        return X
    sd = X.std(axis=0)
    if method == "standardize":
        return X / np.where(sd > 0, sd, 1.0)
    limit = clip_sd * np.median(sd[sd > 0]) if (sd > 0).any() else 0.0
    return np.clip(X, -limit, limit)


def _normalized32(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def _gpu_count() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def _faiss_index(dim: int):
    import faiss

    index = faiss.IndexFlatIP(dim)
    if _gpu_count() > 0:  # pragma: no cover - GPU only
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def knn_indices(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's ``k`` nearest other rows by cosine similarity (FAISS exact inner product).

    The row itself is excluded by index (not by distance, so duplicates stay neighbours); ties are broken
    towards the lower index, so the result is deterministic.

    Returns
    -------
    ndarray of int64, shape (n_items, k)

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]])
    >>> knn_indices(X, 2)
    array([[1, 4],
           [0, 4],
           [3, 4],
           [2, 4],
           [1, 3]])
    """
    X = validate_embeddings(X)
    n = X.shape[0]
    if not 1 <= k <= n - 1:
        raise AlignmentError(f"`k` must be in [1, n_items - 1] = [1, {n - 1}], got {k}; lower --k or raise --limit")
    return _knn_ordered(X, k)[:, :k]


def _knn_depth(k: int, n: int) -> int:
    """How many ordered neighbours one search keeps: deep enough for k neighbours within a random half."""
    return min(n - 1, 4 * k + 16)


def _ordered_lists(scores: np.ndarray, ids: np.ndarray, depth: int, rows: np.ndarray) -> np.ndarray:
    """Search results -> each row's first ``depth`` other rows, by score (rounded to 1e-6), ties by index."""
    scores = np.round(scores.astype(np.float64), 6)
    order = np.lexsort((ids, -scores), axis=1)
    ids = np.take_along_axis(ids, order, axis=1)
    valid = (ids != rows[:, None]) & (ids >= 0)
    # the first `depth` valid entries of each row, in order (at least depth are valid: extra >= depth + 1)
    first_valid = np.argsort(~valid, axis=1, kind="stable")[:, :depth]
    return np.take_along_axis(ids, first_valid, axis=1).astype(np.int64)


def _knn_ordered(X: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``_knn_depth(k, n)`` nearest other rows, ordered as in :func:`knn_indices`, shape (n, depth).

    :func:`knn_indices` is the first k columns of this one search, so a deeper list never reorders them. The
    mutual-kNN interval reads each half-sample's neighbours off these lists (the first k entries that fall
    in the half are the half's own k nearest, with the same tie order).
    """
    return _knn_search(X, k, approximate=False)[0]


#: From this many items on (and without a GPU), neighbour lists come from an HNSW graph instead of exact search.
ANN_MIN_ITEMS = 20000
#: Queries of the exact search the approximate lists are checked against, and the recall asked of them.
RECALL_QUERIES = 1000
RECALL_TARGET = 0.95


def _knn_search(X: np.ndarray, k: int, *, approximate: bool | None = None) -> tuple[np.ndarray, float | None]:
    """Ordered neighbour lists as :func:`_knn_ordered`, exact or, for large n, approximate; and the recall.

    Exact search (FAISS ``IndexFlatIP``, on a GPU when there is one) costs O(n² d). From ``ANN_MIN_ITEMS``
    items on a CPU the lists come from an HNSW graph (``IndexHNSWFlat``, M = 16), built single-threaded so the
    same input gives the same graph. Its recall@k (the share of each row's k exact nearest neighbours found
    among its k approximate ones) is measured against exact search on ``RECALL_QUERIES`` seeded rows; the
    search widens (efSearch doubles) until the recall reaches ``RECALL_TARGET`` or efSearch reaches 1,024.

    Returns
    -------
    lists : int64 array of shape (n, depth)
    recall : float or None
        Measured recall@k of the approximate lists; None when the search was exact.
    """
    import faiss

    n = X.shape[0]
    depth = _knn_depth(k, n)
    extra = min(n, depth + 1 + 8)  # a few more than needed, so ties at the last place resolve by index
    Xn = _normalized32(X)
    rows = np.arange(n)
    if approximate is None:
        approximate = n >= ANN_MIN_ITEMS and _gpu_count() == 0
    exact = _faiss_index(Xn.shape[1])
    exact.add(Xn)
    if not approximate:
        scores, ids = exact.search(Xn, extra)
        return _ordered_lists(scores, ids, depth, rows), None
    threads = faiss.omp_get_max_threads()
    graph = faiss.IndexHNSWFlat(Xn.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = 40
    faiss.omp_set_num_threads(1)  # parallel insertion makes the graph depend on thread timing
    try:
        graph.add(Xn)
    finally:
        faiss.omp_set_num_threads(threads)
    probe = np.sort(np.random.default_rng(0x6B6E6E).choice(n, size=min(RECALL_QUERIES, n), replace=False))
    truth = _ordered_lists(*exact.search(Xn[probe], extra), depth, probe)[:, :k]
    ef = max(96, 2 * extra)
    while True:
        graph.hnsw.efSearch = ef
        lists = _ordered_lists(*graph.search(Xn, extra), depth, rows)
        recall = float(_overlap(lists[probe, :k], truth).mean() / k)
        if recall >= RECALL_TARGET or ef >= 1024:
            return lists, recall
        ef *= 2


def neighbour_overlap(NX: np.ndarray, NY: np.ndarray) -> np.ndarray:
    """Per-row |NX[i] ∩ NY[i]| for neighbour index arrays of equal width (e.g. from :func:`knn_indices`).

    Examples
    --------
    >>> neighbour_overlap(np.array([[1, 2], [0, 3]]), np.array([[2, 3], [3, 0]]))
    array([1, 2])
    """
    return (NX[:, :, None] == NY[:, None, :]).any(axis=2).sum(axis=1)


_overlap = neighbour_overlap


def mutual_knn_per_item(
    X: np.ndarray | EmbeddingSet, Y: np.ndarray | EmbeddingSet, *, k: int = 10, layer: int | None = None
) -> np.ndarray:
    """Per-item neighbourhood agreement: |kNN_X(i) ∩ kNN_Y(i)| / k, shape (n_items,).

    Its mean is :func:`mutual_knn`. ``X``, ``Y`` and ``layer`` as in :func:`mutual_knn`.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((30, 8))
    >>> mutual_knn_per_item(X, 2 * X, k=5)[:4]
    array([1., 1., 1., 1.])
    """
    X, Y = validate_pair(X, Y, layer=layer)
    return _overlap(knn_indices(X, k), knn_indices(Y, k)) / k


def mutual_knn(
    X: np.ndarray | EmbeddingSet, Y: np.ndarray | EmbeddingSet, *, k: int = 10, layer: int | None = None
) -> AlignmentScore:
    """Mutual k-nearest-neighbour alignment: mean over items of |kNN_X(i) ∩ kNN_Y(i)| / k.

    Parameters
    ----------
    X, Y : array of shape (n_items, d1) and (n_items, d2), or EmbeddingSet
        Paired rows; two EmbeddingSets (the same item keys, in order) are read at ``layer``.
    k : int
        Neighbours per item, in [1, n_items - 1].
    layer : int, optional
        The hidden-state index to compare when ``X`` and ``Y`` are EmbeddingSets (may be left out when they
        hold one layer each).

    Returns
    -------
    AlignmentScore
        The value in [0, 1], a float; ``chance`` = k / (n - 1), exactly the mean over random pairings (a
        shuffled pairing makes item i's Y-neighbours a uniform k-subset of the other n - 1 items).

    Notes
    -----
    The metric of Huh et al. 2024 ("The Platonic Representation Hypothesis"), with cosine neighbours and
    the item itself excluded.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 16))
    >>> score = mutual_knn(X, X + 0.1 * rng.standard_normal((100, 16)), k=10)
    >>> round(score.value, 2), round(score.chance, 4)
    (0.89, 0.101)
    """
    values = mutual_knn_per_item(X, Y, k=k, layer=layer)
    return AlignmentScore(float(values.mean()), chance=k / (len(values) - 1), metric="mknn")


RETRIEVAL_MAPS = ("ridge", "procrustes", "none")


def _ridge_operator(X: np.ndarray, alpha: float) -> np.ndarray:
    """(XᵀX + αI)⁻¹Xᵀ: the ridge solution is this times the targets, for any targets."""
    from scipy.linalg import solve

    gram = X.T @ X
    gram[np.diag_indices_from(gram)] += alpha * max(np.trace(gram) / gram.shape[0], 1e-12)
    return solve(gram, X.T, assume_a="pos")


def _hit_vector(pred: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per row i: 1.0 if target i is among the k targets most cosine-similar to prediction i, else 0.0."""
    sims = _normalized32(pred) @ _normalized32(targets).T
    own = sims[np.arange(len(pred)), np.arange(len(pred))]
    return ((sims > own[:, None]).sum(axis=1) < k).astype(np.float64)


class _RetrievalScorer:
    """Held-out retrieval in both directions, with what a shuffled pairing does not change precomputed.

    ``per_item(train_order, test_order)`` scores the pairing in which train row r of X goes with train row
    ``train_order[r]`` of Y (and the same for test rows). For ridge, the operator (YᵀY + αI)⁻¹Yᵀ of a
    row-permuted Y is the operator of Y with its columns permuted, so no permutation needs a new solve; for
    Procrustes the Y -> X rotation is the transpose of the X -> Y one (one SVD per pairing).
    """

    def __init__(self, X, Y, train, test, *, k: int, method: str, alpha: float) -> None:
        if method not in RETRIEVAL_MAPS:
            raise AlignmentError(f"`method` must be ridge, procrustes or none, got {method!r}")
        if method != "ridge" and X.shape[1] != Y.shape[1]:
            raise AlignmentError(
                f"retrieval with method={method!r} needs equal dimensions; got {X.shape[1]} and {Y.shape[1]}; "
                "use method='ridge'"
            )
        if not 1 <= k <= len(test):
            raise AlignmentError(f"retrieval `k` must be in [1, n_test] = [1, {len(test)}], got {k}")
        self.k, self.method = k, method
        if method == "ridge":  # solved in float64 once; the products per pairing run in float32
            self.op_x = _ridge_operator(np.asarray(X[train], np.float64), alpha).astype(np.float32)
            self.op_y = _ridge_operator(np.asarray(Y[train], np.float64), alpha).astype(np.float32)
        self.Xtr, self.Xte = np.asarray(X[train], np.float32), np.asarray(X[test], np.float32)
        self.Ytr, self.Yte = np.asarray(Y[train], np.float32), np.asarray(Y[test], np.float32)

    def per_item(self, train_order: np.ndarray | None = None, test_order: np.ndarray | None = None) -> np.ndarray:
        """Hit (1/0) per held-out item, averaged over the two directions, shape (n_test,)."""
        Ytr = self.Ytr if train_order is None else self.Ytr[train_order]
        Yte = self.Yte if test_order is None else self.Yte[test_order]
        if self.method == "ridge":
            op_y = self.op_y if train_order is None else self.op_y[:, train_order]
            pred_xy, pred_yx = self.Xte @ (self.op_x @ Ytr), Yte @ (op_y @ self.Xtr)
        elif self.method == "procrustes":
            from scipy.linalg import orthogonal_procrustes

            R, _ = orthogonal_procrustes(self.Xtr, Ytr)
            pred_xy, pred_yx = self.Xte @ R, Yte @ R.T
        else:
            pred_xy, pred_yx = self.Xte, Yte
        return (_hit_vector(pred_xy, Yte, self.k) + _hit_vector(pred_yx, self.Xte, self.k)) / 2


def retrieval(
    X: np.ndarray | EmbeddingSet,
    Y: np.ndarray | EmbeddingSet,
    *,
    k: int = 1,
    method: str = "ridge",
    alpha: float = 1.0,
    test_size: float = 0.5,
    seed: int = 0,
    layer: int | None = None,
) -> AlignmentScore:
    """Cross-modal retrieval: how often row i finds its partner among the k nearest rows of the other side.

    A map is fitted on a random train split and scored on the held-out rows, in both directions (X -> Y and
    Y -> X), and the two hit rates are averaged.

    Parameters
    ----------
    X, Y : array of shape (n_items, d1) and (n_items, d2), or EmbeddingSet
        Paired rows (EmbeddingSets read at ``layer``, as in :func:`mutual_knn`).
    k : int
        Hit if the partner is among the ``k`` most cosine-similar held-out candidates.
    method : {"ridge", "procrustes", "none"}
        Ridge regression (any dimensions); orthogonal Procrustes (d1 == d2); or no map (d1 == d2, the same
        space, e.g. two fields embedded by one model).
    alpha : float
        Ridge penalty, relative to the mean eigenvalue of XᵀX.
    test_size : float
        Share of rows held out for scoring.
    seed : int
        Seed of the train / test split.
    layer : int, optional
        The hidden-state index when ``X`` and ``Y`` are EmbeddingSets.

    Returns
    -------
    AlignmentScore
        Hit rate in [0, 1], a float; ``chance`` = k / n_test, the hit rate of a random pairing (the partner's
        rank among the n_test candidates is then uniform).

    Raises
    ------
    AlignmentError
        Invalid inputs, ``k`` outside [1, n_test], unequal dimensions for procrustes / none.

    Notes
    -----
    Orthogonal Procrustes: Schönemann 1966; the held-out protocol follows cross-lingual embedding mapping
    (Mikolov et al. 2013, "Exploiting similarities among languages").

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 8))
    >>> score = retrieval(X, X @ rng.standard_normal((8, 12)), k=1)
    >>> score
    AlignmentScore(value=0.97, chance=0.01, metric='retrieval')
    """
    X, Y = validate_pair(X, Y, layer=layer)
    train, test = _split(X.shape[0], test_size, seed)
    scorer = _RetrievalScorer(X, Y, train, test, k=k, method=method, alpha=alpha)
    return AlignmentScore(float(scorer.per_item().mean()), chance=k / len(test), metric="retrieval")


def _split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < test_size < 1:
        raise AlignmentError(f"`test_size` must be in (0, 1), got {test_size}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 2, max(2, int(round(n * test_size))))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


class CKAAccumulator:
    """Streams paired row batches into the sums linear and debiased CKA need, in float64.

    Memory is O(d1 d2 + d1² + d2²) whatever the number of rows; time O(n d²).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1000, 6))
    >>> acc = CKAAccumulator()
    >>> for start in range(0, 1000, 250):            # four batches of paired rows
    ...     acc = acc.update(X[start : start + 250], 3 * X[start : start + 250])
    >>> acc.n, round(acc.linear(), 6), round(acc.debiased(), 6)
    (1000, 1.0, 1.0)
    """

    def __init__(self) -> None:
        self.n = 0
        self._s: dict[str, np.ndarray | float] = {}

    def _add(self, name: str, value) -> None:
        self._s[name] = self._s[name] + value if name in self._s else value

    def update(self, X: np.ndarray, Y: np.ndarray) -> CKAAccumulator:
        """Add a batch of paired rows; returns ``self``."""
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        if X.shape[0] != Y.shape[0]:
            raise AlignmentError(f"batch rows differ: {X.shape[0]} and {Y.shape[0]}")
        a = np.einsum("ij,ij->i", X, X)  # K_ii = ||x_i||²
        b = np.einsum("ij,ij->i", Y, Y)
        self.n += X.shape[0]
        self._add("XtY", X.T @ Y)
        self._add("XtX", X.T @ X)
        self._add("YtY", Y.T @ Y)
        self._add("sx", X.sum(0))
        self._add("sy", Y.sum(0))
        for name, u, v in (("ab", a, b), ("aa", a, a), ("bb", b, b)):
            self._add(name, float(u @ v))
        self._add("a", float(a.sum()))
        self._add("b", float(b.sum()))
        self._add("bX", b @ X)  # Σ b_i x_i
        self._add("aY", a @ Y)
        self._add("aX", a @ X)
        self._add("bY", b @ Y)
        return self

    def linear(self) -> float:
        """Linear CKA (Kornblith et al. 2019) of the accumulated rows, centered internally."""
        s, n = self._s, self.n
        mx, my = s["sx"] / n, s["sy"] / n
        cxy = s["XtY"] - n * np.outer(mx, my)
        cxx = s["XtX"] - n * np.outer(mx, mx)
        cyy = s["YtY"] - n * np.outer(my, my)
        denom = np.linalg.norm(cxx) * np.linalg.norm(cyy)
        return float(np.linalg.norm(cxy) ** 2 / denom) if denom > 0 else 0.0

    def _linear_chance(self) -> float:
        """Linear CKA's exact mean over all n! pairings of the rows: tr K tr L / ((n - 1) ||K||_F ||L||_F).

        With K = X̃X̃ᵀ, L = ỸỸᵀ of the centred rows (K1 = 0), E_p Σ_ij K_ij L_p(i)p(j) = tr K tr L / n +
        (Σ_{i≠j} K_ij)(Σ_{i≠j} L_ij) / (n (n - 1)) and Σ_{i≠j} K_ij = -tr K; tr K = tr(X̃ᵀX̃). The same mean as
        :func:`lexprobe.align.cka_null_moments` gives (tested), from the sums already accumulated.
        """
        s, n = self._s, self.n
        mx, my = s["sx"] / n, s["sy"] / n
        cxx = s["XtX"] - n * np.outer(mx, mx)
        cyy = s["YtY"] - n * np.outer(my, my)
        denom = np.linalg.norm(cxx) * np.linalg.norm(cyy)
        return float(np.trace(cxx) * np.trace(cyy) / ((n - 1) * denom)) if denom > 0 else 0.0

    def _hsic1(self, C, sx, sy, ab, a, b, bX, aY) -> float:
        # Unbiased HSIC (Song et al. 2012, eq. 5) with linear kernels K = XXᵀ, L = YYᵀ, written in feature
        # space: K̃ is K with its diagonal set to zero.
        n = self.n
        tr = float(np.sum(C * C)) - ab  # tr(K̃ L̃)
        one_k = float(sx @ sx) - a  # 1ᵀK̃1
        one_l = float(sy @ sy) - b
        # 1ᵀK̃L̃1 = Σ_i (x_i·sx - a_i)(y_i·sy - b_i)
        cross = float(sx @ C @ sy) - float(bX @ sx) - float(aY @ sy) + ab
        return (tr + one_k * one_l / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))

    def debiased(self) -> float:
        """Debiased CKA (Kornblith et al. 2019 with the unbiased HSIC estimator of Song et al. 2012)."""
        s = self._s
        if self.n < 4:
            raise AlignmentError(f"debiased CKA needs at least 4 rows, got {self.n}")
        xy = self._hsic1(s["XtY"], s["sx"], s["sy"], s["ab"], s["a"], s["b"], s["bX"], s["aY"])
        xx = self._hsic1(s["XtX"], s["sx"], s["sx"], s["aa"], s["a"], s["a"], s["aX"], s["aX"])
        yy = self._hsic1(s["YtY"], s["sy"], s["sy"], s["bb"], s["b"], s["b"], s["bY"], s["bY"])
        denom = np.sqrt(xx * yy) if xx > 0 and yy > 0 else 0.0
        return float(xy / denom) if denom > 0 else 0.0


def _accumulate(X: np.ndarray, Y: np.ndarray, batch: int = 4096) -> CKAAccumulator:
    acc = CKAAccumulator()
    for start in range(0, X.shape[0], batch):
        acc.update(X[start : start + batch], Y[start : start + batch])
    return acc


def linear_cka(
    X: np.ndarray | EmbeddingSet, Y: np.ndarray | EmbeddingSet, *, layer: int | None = None
) -> AlignmentScore:
    """Linear centered kernel alignment, feature-space form: ||XᵀY||²_F / (||XᵀX||_F ||YᵀY||_F), X, Y centered.

    ``X``, ``Y`` and ``layer`` as in :func:`mutual_knn`.

    Returns
    -------
    AlignmentScore
        The value in [0, 1], a float; ``chance`` = tr K tr L / ((n - 1) ||K||_F ||L||_F) (K, L the centred
        linear kernels), linear CKA's exact mean over all pairings of the rows: well above 0 when n is not much
        larger than the dimensions (the bias that debiased CKA removes).

    Notes
    -----
    Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited", eq. 5 (linear kernel).
    Equal to the Gram form HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)); O(n d²) time, O(d²) memory.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> score = linear_cka(rng.standard_normal((50, 20)), rng.standard_normal((50, 20)))
    >>> round(score.value, 2), round(score.chance, 2)
    (0.3, 0.28)
    """
    X, Y = validate_pair(X, Y, layer=layer)
    acc = _accumulate(X, Y)
    return AlignmentScore(acc.linear(), chance=acc._linear_chance(), metric="cka")


def debiased_cka(
    X: np.ndarray | EmbeddingSet, Y: np.ndarray | EmbeddingSet, *, layer: int | None = None
) -> AlignmentScore:
    """Debiased linear CKA in feature space: CKA with the unbiased HSIC estimator.

    ``X``, ``Y`` and ``layer`` as in :func:`mutual_knn`.

    Returns
    -------
    AlignmentScore
        The value, a float (it can be slightly negative); ``chance`` = 0, its exact mean over all pairings of
        the rows (the unbiased HSIC's mean over pairings is 0; its denominator does not depend on the pairing).

    Notes
    -----
    Song et al. 2012, "Feature Selection via Dependence Maximization", eq. 5 (unbiased HSIC), as used for
    debiased CKA by Kornblith et al. 2019 (section 3). Linear CKA is biased upwards when n is not much
    larger than d; the debiased form is near 0 for independent X and Y.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> score = debiased_cka(rng.standard_normal((50, 20)), rng.standard_normal((50, 20)))
    >>> abs(score.value) < 0.05, score.chance
    (True, 0.0)
    """
    X, Y = validate_pair(X, Y, layer=layer)
    return AlignmentScore(_accumulate(X, Y).debiased(), chance=0.0, metric="dcka")


def _pair_sample(n: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j: every pair i < j when there are at most ``n_pairs``, else a seeded sample."""
    if n * (n - 1) // 2 <= n_pairs:
        i, j = np.triu_indices(n, k=1)
        return i.astype(np.int64), j.astype(np.int64)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=n_pairs * 2)
    j = rng.integers(0, n, size=n_pairs * 2)
    keep = i != j
    return i[keep][:n_pairs], j[keep][:n_pairs]


def _pair_distances(Zn: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine distances 1 - z_i·z_j of L2-normalised rows, for index pairs (never an n x n matrix)."""
    return 1.0 - np.einsum("ij,ij->i", Zn[i], Zn[j], dtype=np.float64)


def rsa(
    X: np.ndarray | EmbeddingSet,
    Y: np.ndarray | EmbeddingSet,
    *,
    n_pairs: int = 20000,
    seed: int = 0,
    layer: int | None = None,
) -> AlignmentScore:
    """Representational similarity: Spearman correlation of pairwise cosine distances, sampled pairs.

    Parameters
    ----------
    X, Y : array of shape (n_items, d1) and (n_items, d2), or EmbeddingSet
        Paired rows (EmbeddingSets read at ``layer``, as in :func:`mutual_knn`).
    n_pairs : int
        Pairs (i, j), i != j, drawn with ``seed`` (every pair when there are fewer); the same pairs in X and Y.
    layer : int, optional
        The hidden-state index when ``X`` and ``Y`` are EmbeddingSets.

    Returns
    -------
    AlignmentScore
        Spearman's rho in [-1, 1], a float; ``chance`` = 0: exactly the mean over all pairings of the rows when
        every pair is used (n (n - 1) / 2 <= n_pairs; a Mantel statistic of centred ranks), about 0 for sampled
        pairs.

    Notes
    -----
    Kriegeskorte et al. 2008, "Representational similarity analysis". Sampling pairs keeps time and memory
    O(n_pairs d) instead of O(n² d).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 8))
    >>> score = rsa(X, X @ rng.standard_normal((8, 8)))
    >>> score.value > 0.5, score.chance
    (True, 0.0)
    """
    X, Y = validate_pair(X, Y, layer=layer)
    if n_pairs < 10:
        raise AlignmentError(f"`n_pairs` must be at least 10, got {n_pairs}")
    i, j = _pair_sample(X.shape[0], n_pairs, seed)
    value = _spearman(_pair_distances(_normalized32(X), i, j), _pair_distances(_normalized32(Y), i, j))
    return AlignmentScore(value, chance=0.0, metric="rsa")


def _spearman(a: np.ndarray, b: np.ndarray, ranked_a: np.ndarray | None = None) -> float:
    """RSA's Spearman rho of two distance vectors (``ranked_a``: ``a``'s ranks, computed once for many ``b``);
    :data:`RSA_CONSTANT` when one is constant (``lexprobe.stats`` gives the rule)."""
    from scipy.stats import rankdata

    ra = rankdata(a) if ranked_a is None else ranked_a
    return rank_correlation(ra, rankdata(b), constant=RSA_CONSTANT)
