"""Oracle for the prediction metrics and the robust fit
(src/stats/likert_metrics.c, robust_fit.c) against independent references:

- quadratic-weighted kappa: a numpy reimplementation of Cohen's definition
  and a worked example computed by hand (below);
- Spearman rho and p: scipy.stats.spearmanr;
- isotonic fit: the max-min formula fit_i = max_{j<=i} min_{k>=i} mean(y[j..k])
  over x-sorted, tie-pooled points (a different algorithm from our PAVA);
- robust z: numpy median/MAD with the 1.4826 and 1.2533 constants.
(scikit-learn, whose cohen_kappa_score and IsotonicRegression would be the
natural peers, is not packaged for the Debian release we build on.)
"""
import os
import subprocess
import sys

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args(lambda ap: ap.add_argument("--probe", required=True))
failures = []


def probe(what, values):
    text = " ".join(str(v) for v in values)
    out = subprocess.run([args.probe, what], input=text, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"probe {what} failed: {out.stderr}")
    return out.stdout.split()


def check(name, got, want, tol):
    got = np.asarray(got, dtype=float)
    want = np.asarray(want, dtype=float)
    same_nan = np.isnan(got) == np.isnan(want)
    close = np.isclose(got, want, rtol=tol, atol=tol, equal_nan=True)
    if got.shape != want.shape or not (same_nan.all() and close.all()):
        failures.append(f"{name}: got {got.tolist()} want {want.tolist()}")


def kappa_ref(conf):
    conf = np.asarray(conf, dtype=float)
    k = conf.shape[0]
    w = np.subtract.outer(np.arange(k), np.arange(k)) ** 2 / (k - 1) ** 2
    expected = np.outer(conf.sum(1), conf.sum(0)) / conf.sum()
    den = (w * expected).sum()
    return np.nan if den == 0 else 1 - (w * conf).sum() / den


# Worked by hand: 2 levels, confusion [[20, 5], [10, 15]], N = 50.
# Weights are 0 on the diagonal and 1 off it, so kappa = 1 - (5+10) / E_off
# with E_off = (25*25 + 25*25)/50 = 25: kappa = 1 - 15/25 = 0.4.
check("kappa worked example", [float(probe("kappa", [2, 20, 5, 10, 15])[0])], [0.4], 1e-15)
# 3 levels, confusion [[2,1,0],[0,2,1],[0,0,2]], N = 8, weights (0, 1/4, 1):
# observed sum = (1+1)/4 = 0.5; rows (3,3,2), cols (2,3,3);
# E = outer/8 -> sum w E = [1/4 (3*3 + 3*2 + 3*3 + 2*3) + (3*3 + 2*2)] / 8
#   = [1/4 * 30 + 13] / 8 = 20.5 / 8 = 2.5625 -> kappa = 1 - 0.5/2.5625.
check("kappa worked 3x3", [float(probe("kappa", [3, 2, 1, 0, 0, 2, 1, 0, 0, 2])[0])],
      [1 - 0.5 / 2.5625], 1e-15)
check("kappa undefined", [float(probe("kappa", [3, 0, 0, 0, 0, 4, 0, 0, 0, 0])[0])], [np.nan], 0)

rng = np.random.default_rng(7)
for trial in range(30):
    k = int(rng.integers(2, 7))
    conf = rng.integers(0, 9, size=(k, k))
    got = float(probe("kappa", [k] + conf.ravel().tolist())[0])
    check(f"kappa random {trial}", [got], [kappa_ref(conf)], 1e-12)

# Likert rounding: half up, clamped to [1, 5].
for x, want in [(0.2, 1), (1.49, 1), (1.5, 2), (3.5, 4), (4.49, 4), (4.5, 5), (7.0, 5), (-3, 1)]:
    check(f"round {x}", [int(probe("round", [x])[0])], [want], 0)

# Metrics on random predictions (with ties in the truth, as Likert means have).
for trial in range(20):
    n = int(rng.integers(3, 40))
    truth = rng.integers(2, 11, size=n) / 2.0
    pred = truth + rng.normal(0, 0.8, size=n)
    if trial == 0:
        pred[:] = 3.0  # constant prediction: rho undefined
    out = probe("metrics", [n] + pred.tolist() + truth.tolist())
    vals = [float(v) for v in out[:6]]
    conf = np.array([int(v) for v in out[6:]]).reshape(5, 5)
    lv = lambda v: np.clip(np.floor(v + 0.5), 1, 5).astype(int)
    ref_conf = np.zeros((5, 5), dtype=int)
    for t, p in zip(lv(truth), lv(pred)):
        ref_conf[t - 1, p - 1] += 1
    if trial == 0:
        rho, p = np.nan, np.nan
    else:
        res = stats.spearmanr(pred, truth)
        rho, p = res.correlation, res.pvalue
    check(f"metrics {trial}", vals,
          [n, np.abs(pred - truth).mean(), np.sqrt(((pred - truth) ** 2).mean()), rho, p,
           kappa_ref(ref_conf)], 1e-9)
    if not (conf == ref_conf).all():
        failures.append(f"confusion {trial}: {conf.tolist()} vs {ref_conf.tolist()}")

def isotonic_ref(x, y, increasing):
    sign = 1.0 if increasing else -1.0
    xs = np.unique(x)
    ys = np.array([sign * y[x == v].mean() for v in xs])
    ws = np.array([(x == v).sum() for v in xs], dtype=float)
    m = len(xs)
    fit = np.empty(m)
    for i in range(m):
        best = -np.inf
        for j in range(i + 1):
            worst = np.inf
            for k in range(i, m):
                mean = (ys[j:k + 1] * ws[j:k + 1]).sum() / ws[j:k + 1].sum()
                worst = min(worst, mean)
            best = max(best, worst)
        fit[i] = best
    return np.array([sign * fit[np.searchsorted(xs, v)] for v in x])


for trial in range(25):
    n = int(rng.integers(1, 25))
    x = rng.integers(1, 9, size=n) / 2.0
    y = rng.normal(size=n) + (0.3 * x if trial % 2 else -0.3 * x)
    inc = trial % 3 != 0
    out = [float(v) for v in probe("isotonic", [n, int(inc)] + x.tolist() + y.tolist())]
    check(f"isotonic {trial} inc={inc}", out, isotonic_ref(x, y, inc), 1e-9)


def robust_ref(r):
    med = np.median(r)
    mad = np.median(np.abs(r - med))
    s = 1.4826 * mad if mad > 0 else 1.2533 * np.abs(r - med).mean()
    z = (r - med) / s if s > 0 else np.zeros_like(r)
    return [s] + z.tolist()


for trial, r in enumerate([rng.normal(size=15), np.r_[np.zeros(9), 5.0, -2.0],
                           np.ones(4), rng.standard_t(2, size=30), np.array([2.0])]):
    out = [float(v) for v in probe("robustz", [len(r)] + r.tolist())]
    check(f"robust z {trial}", out, robust_ref(r), 1e-12)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("stats metrics oracle: all checks passed")
