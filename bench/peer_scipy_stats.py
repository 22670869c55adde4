"""peer_scipy_stats.py - SciPy doing what `cbctiq correlate` does for one
category: spearmanr, leave-one-out (n spearmanr calls), bootstrap BCa
(10,000 paired resamples, vectorised statistic), permutation_test (100,000
pairings, vectorised on ranks), pearsonr, kendalltau. Prints the time and the
values, so the benchmark can verify before it compares.

usage: peer_scipy_stats.py DATA.csv N_BOOT N_PERM SEED"""
import csv
import json
import sys
import time

import numpy as np
from scipy import stats


def spearman_vec(x, y, axis=-1):
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    return (rx * ry).sum(axis) / np.sqrt((rx * rx).sum(axis) * (ry * ry).sum(axis))


def main():
    path, n_boot, n_perm, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    x = np.array([float(r["ae"]) for r in rows])
    y = np.array([float(r["consensus"]) for r in rows])
    n = len(x)
    t0 = time.perf_counter()
    c0 = time.process_time()
    sp = stats.spearmanr(x, y)
    loo = [stats.spearmanr(np.delete(x, i), np.delete(y, i)) for i in range(n)]
    rng = np.random.default_rng(seed)
    boot = stats.bootstrap((x, y), spearman_vec, paired=True, vectorized=True, n_resamples=n_boot,
                           method="BCa", random_state=rng, batch=2000)
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    ryc = ry - ry.mean()

    def stat(r, axis=-1):
        rc = r - r.mean(axis=-1, keepdims=True)
        return (rc * ryc).sum(-1) / np.sqrt((rc * rc).sum(-1) * (ryc * ryc).sum())
    perm = stats.permutation_test((rx,), stat, permutation_type="pairings", n_resamples=n_perm,
                                  vectorized=True, random_state=rng, batch=5000)
    pe = stats.pearsonr(x, y)
    ke = stats.kendalltau(x, y)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "rho": float(sp.statistic), "p": float(sp.pvalue),
                      "loo_median_rho": float(np.median([r.statistic for r in loo])),
                      "bca": [float(boot.confidence_interval.low), float(boot.confidence_interval.high)],
                      "p_perm": float(perm.pvalue), "pearson_p": float(pe.pvalue),
                      "kendall_p": float(ke.pvalue)}))


if __name__ == "__main__":
    main()
