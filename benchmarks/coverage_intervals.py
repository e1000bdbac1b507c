"""Coverage of the alignment intervals by simulation, old (bootstrap) against new (jackknife).

    OMP_NUM_THREADS=1 python benchmarks/coverage_intervals.py [--reps 400] [--old-reps 200]

Paired data with a known truth: a shared latent Z (n x r, r = 8, decaying scales) seen through fixed
loadings plus independent noise, X = Z Wx + Ex (n x d), Y = Z Wy + Ey; the loadings are drawn once per
setting, so every replicate is a fresh sample from one population. Targets:

- mknn: the expectation of mutual kNN (k = 10) at this n (it depends on n), estimated as the mean over
  ``reps`` further independent replicates;
- cka: linear CKA's expectation at this n, estimated the same way (linear CKA is biased when d is not much
  smaller than n: its interval can only be about its own expectation);
- dcka: the population CKA ||Σxy||² / (||Σxx|| ||Σyy||), exact from the loadings (debiased CKA estimates it).

Coverage = share of replicates whose 95% interval holds the target (sd about 0.011 at 400 replicates);
width ratio = mean interval width / (2 · 1.96 · sd of the estimates over replicates), 1 when the interval
has the right width. Old intervals: the item bootstrap with 100 resamples (mknn: neighbour lists kept fixed,
percentile; CKA: full recomputation, re-centred on the estimate). New: ``evaluate_metrics`` (delete-one
jackknife). Prints a markdown table and writes ``benchmarks/results_coverage.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lexprobe.align import evaluate_metrics
from lexprobe.align._metrics import CKAAccumulator, _knn_ordered, _overlap, knn_indices
from lexprobe.align._null import jackknife_interval

K = 10
R_LATENT = 8
POPULATION_CKA = 0.4  # the noise sd of each setting is chosen to give this population CKA
SETTINGS = [  # (n, d): d/n small, about the default run's d/n (576 / 2000), and d/n = 0.8
    (300, 15),
    (300, 240),
    (1000, 290),
    (1000, 800),
]


def population(d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Loadings (r x d) of the latent on X and on Y; the shared part has variance about 1 per dimension."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(1.0 + np.arange(R_LATENT))
    scales /= np.sqrt(np.sum(scales**2))
    return scales[:, None] * rng.standard_normal((R_LATENT, d)), scales[:, None] * rng.standard_normal((R_LATENT, d))


def population_cka(Wx: np.ndarray, Wy: np.ndarray, noise: float) -> float:
    sxx = Wx.T @ Wx + noise**2 * np.eye(Wx.shape[1])
    syy = Wy.T @ Wy + noise**2 * np.eye(Wy.shape[1])
    sxy = Wx.T @ Wy
    return float(np.sum(sxy**2) / (np.linalg.norm(sxx) * np.linalg.norm(syy)))


def noise_for(Wx: np.ndarray, Wy: np.ndarray, target: float = POPULATION_CKA) -> float:
    from scipy.optimize import brentq

    return float(brentq(lambda s: population_cka(Wx, Wy, s) - target, 1e-3, 1e3))


def draw(n: int, Wx, Wy, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    Z = rng.standard_normal((n, R_LATENT))
    X = Z @ Wx + noise * rng.standard_normal((n, Wx.shape[1]))
    return X, Z @ Wy + noise * rng.standard_normal((n, Wy.shape[1]))


def mknn_jackknife(X, Y) -> tuple[float, float]:
    """The delete-one jackknife interval of mutual kNN (neighbours recomputed), exact in O(n k²): tried, too wide.

    Removing j changes item i's list only when j is among its first k: j leaves and the (k+1)-th moves in.
    """
    NX1, NY1 = _knn_ordered(X, K)[:, : K + 1], _knn_ordered(Y, K)[:, : K + 1]
    n = len(NX1)
    A, B, a_next, b_next = NX1[:, :K], NY1[:, :K], NX1[:, K], NY1[:, K]
    in_b = (A[:, :, None] == B[:, None, :]).any(axis=2)
    in_a = (B[:, :, None] == A[:, None, :]).any(axis=2)
    overlap = in_b.sum(axis=1)
    u = (B == a_next[:, None]).any(axis=1).astype(float)
    v = (A == b_next[:, None]).any(axis=1).astype(float)
    w = (a_next == b_next).astype(float)
    delta_a = np.where(in_b, (u + v + w - 1.0)[:, None], u[:, None])
    delta_b = np.where(in_a, 0.0, v[:, None])
    change = np.bincount(A.ravel(), delta_a.ravel(), minlength=n) + np.bincount(B.ravel(), delta_b.ravel(), minlength=n)
    loo = (overlap.sum() - overlap + change) / (K * (n - 1))
    return jackknife_interval(overlap.mean() / K, loo)


def old_intervals(X, Y, boots) -> dict[str, tuple[float, float]]:
    per_item = _overlap(knn_indices(X, K), knn_indices(Y, K)) / K
    mk = np.array([per_item[b].mean() for b in boots])
    out = {"mknn": tuple(np.quantile(mk, [0.025, 0.975]))}
    acc = CKAAccumulator().update(X, Y)
    lin, deb = np.empty(len(boots)), np.empty(len(boots))
    for r, idx in enumerate(boots):
        a = CKAAccumulator().update(X[idx], Y[idx])
        lin[r], deb[r] = a.linear(), a.debiased()
    for name, value, boot in (("cka", acc.linear(), lin), ("dcka", acc.debiased(), deb)):
        out[name] = tuple(np.quantile(value + boot - boot.mean(), [0.025, 0.975]))
    return out


def run_setting(n: int, d: int, reps: int, old_reps: int, seed: int) -> list[dict]:
    Wx, Wy = population(d, seed)
    noise = noise_for(Wx, Wy)
    pop = population_cka(Wx, Wy, noise)
    rng = np.random.default_rng(seed + 1)
    empty, one = np.empty((0, n), np.int64), np.zeros((1, n), np.int64)
    est = {m: [] for m in ("mknn", "cka", "dcka")}
    new = {m: [] for m in est}
    old = {m: [] for m in est}
    jack: list[tuple[float, float]] = []
    t_new = t_old = 0.0
    for rep in range(reps):
        X, Y = draw(n, Wx, Wy, noise, rng)
        t0 = time.perf_counter()
        outcomes = evaluate_metrics(["mknn", "cka", "dcka"], X, Y, empty, one, k=K)
        t_new += time.perf_counter() - t0
        for m, o in outcomes.items():
            est[m].append(o.value)
            new[m].append(o.interval)
        jack.append(mknn_jackknife(X, Y))
        if rep < old_reps:
            t0 = time.perf_counter()
            for m, iv in old_intervals(X, Y, rng.integers(0, n, (100, n))).items():
                old[m].append(iv)
            t_old += time.perf_counter() - t0
    # targets from further independent replicates (mknn, cka) or the population (dcka)
    extra = {"mknn": [], "cka": []}
    for _ in range(reps):
        X, Y = draw(n, Wx, Wy, noise, rng)
        outcomes = evaluate_metrics(["mknn", "cka"], X, Y, empty, empty[:0], k=K)
        for m in extra:
            extra[m].append(outcomes[m].value)
    targets = {"mknn": float(np.mean(extra["mknn"])), "cka": float(np.mean(extra["cka"])), "dcka": pop}
    rows = []
    for m in est:
        sd = float(np.std(est[m], ddof=1))
        row = {
            "n": n, "d": d, "d_over_n": round(d / n, 3), "metric": m, "target": targets[m],
            "mean_estimate": float(np.mean(est[m])), "sd_estimate": sd, "reps": reps, "old_reps": old_reps,
        }  # fmt: skip
        for name, ivs in (("new", new[m]), ("old", old[m]), ("jackknife", jack if m == "mknn" else [])):
            if not ivs:
                continue
            ivs = np.array(ivs)
            row[f"{name}_coverage"] = float(np.mean((ivs[:, 0] <= targets[m]) & (targets[m] <= ivs[:, 1])))
            row[f"{name}_width_ratio"] = float(np.mean(ivs[:, 1] - ivs[:, 0]) / (2 * 1.96 * sd))
        if m == "cka":  # linear CKA's interval against the population CKA, for the record
            ivs = np.array(new[m])
            row["new_coverage_of_population"] = float(np.mean((ivs[:, 0] <= pop) & (pop <= ivs[:, 1])))
        row["seconds_per_rep_new"] = t_new / reps
        row["seconds_per_rep_old"] = t_old / max(old_reps, 1) if old_reps else None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--old-reps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default="all", help="comma-separated indices into SETTINGS, or all")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_coverage.json")))
    args = parser.parse_args()
    chosen = SETTINGS if args.settings == "all" else [SETTINGS[int(i)] for i in args.settings.split(",")]
    rows = []
    for n, d in chosen:
        old_reps = args.old_reps if n * d * d <= 300 * 240 * 240 else 0  # the old CKA bootstrap is slow
        rows += run_setting(n, d, args.reps, old_reps, args.seed)
        print(f"done n={n} d={d}", flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print(
        "| n | d | d/n | metric | target | sd of estimates | old coverage | old width ratio | new coverage "
        "| new width ratio | delete-1 jackknife coverage | its width ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    keys = ("old_coverage", "old_width_ratio", "new_coverage", "new_width_ratio")
    keys += ("jackknife_coverage", "jackknife_width_ratio")
    for r in rows:
        cells = " | ".join(f"{r[key]:.3f}" if key in r else "-" for key in keys)
        print(
            f"| {r['n']} | {r['d']} | {r['d_over_n']:.2f} | {r['metric']} | {r['target']:.3f} | {r['sd_estimate']:.4f} "
            f"| {cells} |"
        )


if __name__ == "__main__":
    main()
