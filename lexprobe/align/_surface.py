"""The surface-form control: each side's states with its items' length and character make-up regressed out.

Newer identifiers have more digits and their terms longer names, so two fields can align through length alone
(issue 29: on an unseen OBO ontology name:id debiased CKA fell from 0.241 to 0.037 once token counts were
regressed out). The control measures every metric a second time on the residuals of a least-squares fit, with
intercept, of each side's preprocessed states on that side's surface covariates (:func:`surface_covariates`):

    R = X - C̃ (C̃ᵀ C̃)⁺ C̃ᵀ X,   C̃ = [1, C]   (one fit per side and layer, O(n d c))

so whatever a linear function of token count, digit share and punctuation share explains is gone from both
sides before the metric sees them (docs/alignment.md, "The surface-form control").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.align._null import summarize_null
from lexprobe.embed import pooled_token_counts
from lexprobe.exceptions import AlignmentError

__all__ = [
    "SURFACE_ALPHA",
    "SURFACE_COVARIATES",
    "SURFACE_KEEP",
    "explained_share",
    "residualize",
    "surface_covariates",
    "surface_warnings",
]

#: Suffix of the surface-controlled columns (``value_ctl``, ``z_ctl``...) and of their nulls' keys.
CONTROLLED = "_ctl"

#: The covariates regressed out of each side, in the order of :func:`surface_covariates`' columns.
SURFACE_COVARIATES = ("n_tokens", "digit_share", "punct_share")


def surface_covariates(texts: Sequence[str], n_tokens: Sequence[int]) -> pd.DataFrame:
    """The surface covariates of each text: its token count, and the share of its characters that are digits
    and that are punctuation.

    Parameters
    ----------
    texts : sequence of str
        The items as the model saw them (before the template).
    n_tokens : sequence of int
        Tokens of each item under the model's tokenizer (the pooled tokens: no sink prefix, no special tokens).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SURFACE_COVARIATES`, one row per text: ``n_tokens``; ``digit_share``, the share of
        characters that are decimal digits (``str.isdigit``); ``punct_share``, the share of characters that are
        neither letters, digits nor whitespace (``:``, ``-``, ``_``, ``.``, brackets, symbols). An empty text
        has shares 0.

    Raises
    ------
    AlignmentError
        ``n_tokens`` of another length than ``texts``.

    Examples
    --------
    >>> surface_covariates(["BRCA1", "HGNC:1100", "insulin"], [2, 5, 1])
       n_tokens  digit_share  punct_share
    0       2.0     0.200000     0.000000
    1       5.0     0.444444     0.111111
    2       1.0     0.000000     0.000000
    """
    texts = [str(t) for t in texts]
    if len(n_tokens) != len(texts):
        raise AlignmentError(f"`n_tokens` must give one count per text: got {len(n_tokens)} for {len(texts)} texts")
    lengths = np.array([max(len(t), 1) for t in texts], dtype=np.float64)
    digits = np.array([sum(c.isdigit() for c in t) for t in texts], dtype=np.float64)
    other = np.array([sum(not (c.isalnum() or c.isspace()) for c in t) for t in texts], dtype=np.float64)
    return pd.DataFrame(
        {
            "n_tokens": np.asarray(n_tokens, dtype=np.float64),
            "digit_share": digits / lengths,
            "punct_share": other / lengths,
        }
    )


def residualize(X: np.ndarray, covariates: np.ndarray | pd.DataFrame) -> np.ndarray:
    """``X`` less its least-squares fit, with intercept, on ``covariates``: the part of each column that no
    affine function of the covariates explains.

    Parameters
    ----------
    X : array of shape (n_items, n_features)
    covariates : array or DataFrame of shape (n_items, n_covariates)
        Constant or collinear columns are allowed (the minimum-norm fit gives the same residuals).

    Returns
    -------
    array of shape (n_items, n_features), in ``X``'s float dtype
        Orthogonal to the intercept and to every covariate column (computed in float64).

    Raises
    ------
    AlignmentError
        Not 2-D, or another number of rows than ``X``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lengths = rng.integers(1, 9, size=(50, 1)).astype(float)
    >>> X = np.hstack([3 * lengths + 1, rng.standard_normal((50, 2))])
    >>> R = residualize(X, lengths)
    >>> float(np.abs(R[:, 0]).max()) < 1e-9  # the column that was all length is gone
    True
    """
    X = np.asarray(X)
    C = np.asarray(covariates, dtype=np.float64)
    C = C.reshape(-1, 1) if C.ndim == 1 else C
    if X.ndim != 2 or C.ndim != 2 or len(C) != len(X):
        raise AlignmentError(
            f"residualize needs X of shape (n, d) and covariates of shape (n, c); got {X.shape} and {C.shape}"
        )
    X64 = np.asarray(X, dtype=np.float64)
    design = np.column_stack([np.ones(len(C)), C - C.mean(0)])  # centred columns: a better-conditioned fit
    coef, *_ = np.linalg.lstsq(design, X64, rcond=None)
    R = X64 - design @ coef
    return R.astype(X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64, copy=False)


def explained_share(X: np.ndarray, residuals: np.ndarray) -> float:
    """The share of ``X``'s total (centred) variance that the fit removed: 1 - ||R||² / ||X - mean(X)||².

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lengths = rng.integers(1, 9, size=(200, 1)).astype(float)
    >>> X = np.hstack([lengths, rng.standard_normal((200, 1)) * lengths.std()])
    >>> round(explained_share(X, residualize(X, lengths)), 2)
    0.48
    """
    X = np.asarray(X, dtype=np.float64)
    total = float(np.sum((X - X.mean(0)) ** 2))
    return float(1.0 - np.sum(np.asarray(residuals, dtype=np.float64) ** 2) / total) if total > 0 else 0.0


#: The warning rule (docs/alignment.md): a pair's metric is flagged when its raw best-layer value is significant
#: against the layer-max null (p <= SURFACE_ALPHA) and the controlled one, at its own best layer, is not, or keeps
#: less than SURFACE_KEEP of the raw effect (value minus the layer-max null mean).
SURFACE_ALPHA = 0.05
SURFACE_KEEP = 0.5

#: The rule in words, for the manifest.
SURFACE_RULE = (
    f"raw p <= {SURFACE_ALPHA} and (controlled p > {SURFACE_ALPHA} or controlled effect < {SURFACE_KEEP} x raw "
    "effect), each at its own best layer against its own layer-max null"
)


def surface_warnings(summary: pd.DataFrame) -> list[str]:
    """One line per pair whose alignment the surface-form control removes (:data:`SURFACE_RULE`).

    Parameters
    ----------
    summary : pandas.DataFrame
        ``alignment_summary.csv``: ``pair, metric, effect, p_value`` and the controlled ``effect_ctl,
        p_value_ctl``. Rows without a null (no permutations) are never flagged.

    Examples
    --------
    >>> summary = pd.DataFrame({"pair": ["name:id"], "metric": ["mknn"], "effect": [0.04], "p_value": [0.01],
    ...                         "effect_ctl": [0.01], "p_value_ctl": [0.3]})
    >>> lines = surface_warnings(summary)  # the effect drops from 0.04 to 0.01: flagged
    >>> len(lines), lines[0].startswith("name:id: the surface-form control")
    (1, True)
    >>> surface_warnings(summary.assign(effect_ctl=0.035, p_value_ctl=0.01))
    []
    """
    if "effect_ctl" not in summary:
        return []
    lines = []
    for pair, group in summary.groupby("pair", sort=False):
        flagged = [
            f"{row.metric} {row.effect:+.3f} -> {row.effect_ctl:+.3f} (p {row.p_value_ctl:.2g})"
            for row in group.itertuples(index=False)
            if row.p_value <= SURFACE_ALPHA
            and (row.p_value_ctl > SURFACE_ALPHA or row.effect_ctl < SURFACE_KEEP * row.effect)
        ]
        if flagged:
            lines.append(
                f"{pair}: the surface-form control (token count, digit and punctuation share regressed out of each "
                f"side) removes more than {1 - SURFACE_KEEP:.0%} of the effect or its significance: "
                f"{'; '.join(flagged)}; this alignment is partly length and character make-up, read the *_ctl "
                "columns of alignment_summary.csv"
            )
    return lines


def controlled_row(value: float, null: np.ndarray, moments: tuple[float, float] | None = None) -> dict[str, Any]:
    """The controlled columns of one ``alignment.csv`` row: value, null mean and sd, z, p and effect (mean, sd
    and z exact where ``moments`` are given, as :func:`lexprobe.align.summarize_null`)."""
    stats = summarize_null(value, null, moments)
    return {
        "value_ctl": value,
        **{f"{name}{CONTROLLED}": stat for name, stat in stats.items()},
        "effect_ctl": value - stats["null_mean"],
    }


def surface_inputs(embeddings: dict[str, Any], lm: Any, extraction: Any) -> dict[str, np.ndarray]:
    """Each field's surface covariates, from the pooled token counts extraction recorded (or, for a cache
    entry written before it recorded them, from the tokenizer)."""
    out = {}
    for field, emb in embeddings.items():
        counts = emb.n_tokens if emb.n_tokens is not None else pooled_token_counts(emb.texts, lm, extraction)
        out[field] = surface_covariates(emb.texts, counts).to_numpy()
    return out


def surface_record(covariates: dict, explained: dict, layers: Sequence[int], n_permutations: int) -> dict | None:
    """The manifest's ``surface_control``: what was regressed out, how, its null, and the share of each field's
    variance it removed per layer."""
    if not covariates:
        return None
    return {
        "covariates": list(SURFACE_COVARIATES),
        "fit": "least squares with intercept, per side and layer, on the preprocessed states",
        "null": f"the raw null's {n_permutations} permutations applied to the residualised states",
        "intervals": "raw metric only",
        "warning_rule": SURFACE_RULE,
        "covariate_means": {
            f: dict(zip(SURFACE_COVARIATES, np.round(c.mean(0), 4).tolist())) for f, c in covariates.items()
        },
        "explained_share": {f: dict(zip(map(str, layers), shares)) for f, shares in explained.items()},
    }
