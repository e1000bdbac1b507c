"""Alignment metrics at scale, in one run, against named baselines.

    python benchmarks/bench_align.py [--n 40000] [--d 576]

1. Debiased CKA in feature space (lexprobe, O(n d^2) time, O(d^2) memory) at n = 40,000, d = 576, against the
   Gram-matrix form (unbiased HSIC of Song et al. 2012 on n x n kernels) at the largest n that fits here; the
   n at which the Gram form runs out of memory is computed from its footprint (about 4 n x n float64
   matrices) against the machine's RAM rather than by exhausting a shared machine.
2. Mutual kNN with FAISS (lexprobe) against scikit-learn's NearestNeighbors(algorithm="brute", cosine) at
   n = 40,000, d = 576, the same k.
3. The cost of the permutation nulls at the default run's size (n = 2,000, d = 576, 100 permutations), per
   metric and (pair, layer), against the naive null that recomputes the metric function on each shuffled
   pairing (timed on 10 permutations and scaled to 100).
Peak memory of each step is measured in its own process (max RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = (X @ rng.standard_normal((d, d)).astype(np.float32) * 0.05 + rng.standard_normal((n, d))).astype(np.float32)
    return X, Y


def gram_debiased_cka(X: np.ndarray, Y: np.ndarray) -> float:
    def hsic1(K, L):
        n = len(K)
        np.fill_diagonal(K, 0)
        np.fill_diagonal(L, 0)
        one = np.ones(n)
        KL1 = K @ (L @ one)
        return (np.sum(K * L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ KL1) / (
            n * (n - 3)
        )

    X, Y = X.astype(np.float64), Y.astype(np.float64)
    K, L = X @ X.T, Y @ Y.T
    xy = hsic1(K, L)
    xx = hsic1(K, K.copy())
    yy = hsic1(L, L.copy())
    return xy / np.sqrt(xx * yy)


def step(name: str, n: int, d: int) -> dict:
    from sklearn.neighbors import NearestNeighbors

    from lexprobe.align import debiased_cka, mutual_knn  # imported before the clock starts

    X, Y = data(n, d)
    start = time.perf_counter()
    if name == "dcka_feature":
        value = debiased_cka(X, Y)
    elif name == "dcka_gram":
        value = gram_debiased_cka(X, Y)
    elif name == "mknn_faiss":
        value = mutual_knn(X, Y, k=10)
    elif name == "mknn_sklearn":

        def neighbours(Z):
            nn = NearestNeighbors(n_neighbors=11, algorithm="brute", metric="cosine").fit(Z)
            idx = nn.kneighbors(Z, return_distance=False)
            return np.array([[j for j in row if j != i][:10] for i, row in enumerate(idx)])

        NX, NY = neighbours(X), neighbours(Y)
        value = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(NX, NY)]))
    elif name.startswith("null_"):
        return null_cost(name[5:], n, d)
    else:
        raise ValueError(name)
    return {
        "step": name,
        "n": n,
        "d": d,
        "seconds": time.perf_counter() - start,
        "value": float(value),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def null_cost(metric: str, n: int, d: int, n_perm: int = 100, n_naive: int = 10) -> dict:
    """Seconds for one (pair, layer): lexprobe's null with ``n_perm`` shuffles vs the naive recomputation."""
    from lexprobe.align import METRICS, evaluate_metric, preprocess

    X, Y = (preprocess(Z) for Z in data(n, d))
    rng = np.random.default_rng(1)
    perms = np.array([rng.permutation(n) for _ in range(n_perm)])
    start = time.perf_counter()
    outcome = evaluate_metric(metric, X, Y, perms, np.empty((0, n), np.int64))
    fast = time.perf_counter() - start
    start = time.perf_counter()
    naive = [METRICS[metric](X, Y[perm]) for perm in perms[:n_naive]]
    naive_s = (time.perf_counter() - start) * n_perm / n_naive
    agree = metric == "retrieval" or np.allclose(naive, outcome.null[:n_naive], atol=1e-5)
    return {"step": f"null_{metric}", "n": n, "d": d, "permutations": n_perm, "seconds": fast,
            "naive_seconds_scaled": naive_s, "speedup": naive_s / fast, "null_values_agree": bool(agree),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def run(name: str, n: int, d: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--step", name, "--n", str(n), "--d", str(d)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40000)
    parser.add_argument("--d", type=int, default=576)
    parser.add_argument("--gram-n", type=int, default=16000, help="largest n for the Gram form in this run")
    parser.add_argument("--step")
    parser.add_argument("--nulls-only", action="store_true", help="only part 3 (null costs at n = 2,000)")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.n, args.d)))
        return
    load_before = os.getloadavg()
    nulls = {m: run(f"null_{m}", 2000, args.d) for m in ("mknn", "cka", "dcka", "retrieval", "rsa")}
    if args.nulls_only:
        print(json.dumps({"load_avg_before": load_before, "load_avg_after": os.getloadavg(), "nulls": nulls}, indent=2))
        return
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    results = {
        "dcka_feature_big": run("dcka_feature", args.n, args.d),
        "dcka_feature_same_n": run("dcka_feature", args.gram_n, args.d),
        "dcka_gram": run("dcka_gram", args.gram_n, args.d),
        "mknn_faiss": run("mknn_faiss", args.n, args.d),
        "mknn_sklearn": run("mknn_sklearn", args.n, args.d),
    }
    # the Gram form holds K, L and two working copies: about 4 n^2 float64 values
    gram_oom_n = int(np.sqrt(ram / (4 * 8)))
    report = {
        "machine_ram_gb": ram / 2**30,
        "cpu_count": os.cpu_count(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "results": results,
        "gram_form_out_of_memory_at_n_about": gram_oom_n,
        "dcka_speedup_same_n": results["dcka_gram"]["seconds"] / results["dcka_feature_same_n"]["seconds"],
        "dcka_memory_ratio_same_n": results["dcka_gram"]["peak_rss_mb"] / results["dcka_feature_same_n"]["peak_rss_mb"],
        "dcka_values_agree_same_n": abs(results["dcka_gram"]["value"] - results["dcka_feature_same_n"]["value"]),
        "mknn_speedup": results["mknn_sklearn"]["seconds"] / results["mknn_faiss"]["seconds"],
        "mknn_values_agree": abs(results["mknn_sklearn"]["value"] - results["mknn_faiss"]["value"]),
        "nulls": nulls,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
