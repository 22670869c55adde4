"""Oracle for the Wilcoxon signed-rank test (src/stats/wilcoxon.c) against
scipy.stats.wilcoxon (zero_method='wilcox', correction=False) for the three
alternatives: untied samples up to n = 50 with the exact distribution, larger
ones, samples with ties and with zero differences by the normal
approximation; the choice of method itself; the exact p for small n once more
by enumerating all 2^n sign patterns (independent of SciPy); and the
undefined cases (every difference zero, a missing value)."""
import itertools
import os
import subprocess
import sys

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args(lambda ap: ap.add_argument("--probe", required=True))
failures = []
ALTS = ["two-sided", "less", "greater"]


def probe(alt, x, y):
    text = f"{alt} {len(x)} " + " ".join(repr(float(v)) for v in list(x) + list(y))
    out = subprocess.run([args.probe], input=text, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"probe failed: {out.stderr}")
    f = out.stdout.split()
    return {"n_used": int(f[0]), "w_plus": float(f[1]), "w_minus": float(f[2]),
            "statistic": float(f[3]), "z": float(f[4]), "p": float(f[5]), "method": f[6]}


def check(name, ok, detail=""):
    if not ok:
        failures.append(f"{name}: {detail}")


def enumerate_p(d, alt):
    """Exact p by listing every sign pattern of the ranks of |d| (no ties)."""
    ranks = stats.rankdata(np.abs(d))
    w = ranks[d > 0].sum()
    sums = np.array([sum(r for r, s in zip(ranks, signs) if s)
                     for signs in itertools.product([0, 1], repeat=len(d))])
    le, ge = np.mean(sums <= w), np.mean(sums >= w)
    return {"less": le, "greater": ge, "two-sided": min(1.0, 2 * min(le, ge))}[alt]


def compare(name, x, y):
    d = np.asarray(x) - np.asarray(y)
    nz = d[d != 0]
    untied = len(np.unique(np.abs(nz))) == len(nz)
    want_method = "exact" if len(nz) == len(d) and untied and len(nz) <= 50 else "normal"
    for alt in ALTS:
        got = probe(alt, x, y)
        ref = stats.wilcoxon(x, y, zero_method="wilcox", correction=False, alternative=alt,
                             method="exact" if want_method == "exact" else "approx")
        check(f"{name} {alt} method", got["method"] == want_method, got["method"])
        check(f"{name} {alt} n_used", got["n_used"] == len(nz), got["n_used"])
        r = stats.rankdata(np.abs(nz))
        check(f"{name} {alt} w_plus", np.isclose(got["w_plus"], r[nz > 0].sum(), rtol=0, atol=1e-9),
              (got["w_plus"], r[nz > 0].sum()))
        check(f"{name} {alt} w_minus", np.isclose(got["w_minus"], r[nz < 0].sum(), rtol=0, atol=1e-9),
              (got["w_minus"], r[nz < 0].sum()))
        check(f"{name} {alt} statistic", np.isclose(got["statistic"], ref.statistic, rtol=0, atol=1e-9),
              (got["statistic"], ref.statistic))
        check(f"{name} {alt} p", np.isclose(got["p"], ref.pvalue, rtol=1e-10, atol=1e-14),
              (got["p"], ref.pvalue))
        if want_method == "normal":
            check(f"{name} {alt} z", np.isclose(got["z"], ref.zstatistic, rtol=1e-10, atol=1e-12),
                  (got["z"], ref.zstatistic))
        elif len(nz) <= 12:
            e = enumerate_p(nz, alt)
            check(f"{name} {alt} p by enumeration", np.isclose(got["p"], e, rtol=1e-12, atol=0),
                  (got["p"], e))


rng = np.random.default_rng(20261204)
for n in [1, 2, 3, 4, 5, 6, 7, 9, 12, 16, 25, 40, 50, 51, 80, 200]:
    x = rng.normal(size=n)
    compare(f"untied n{n}", x, x + rng.normal(0.4, 1.0, size=n))
    # Likert-like consensus against a constant: absolute errors tie
    cons = np.round(rng.uniform(1, 5, size=n) * 3) / 3
    pred = cons + rng.normal(0, 0.3, size=n)
    compare(f"abs errors n{n}", np.abs(pred - cons), np.abs(3.1 - cons))
    if n >= 3:
        xt = rng.integers(1, 6, size=n).astype(float)
        yt = rng.integers(1, 6, size=n).astype(float)
        if np.all(xt == yt):
            yt[0] += 1
        compare(f"ties and zeros n{n}", xt, yt)
        xz = rng.normal(size=n)
        yz = xz + rng.normal(size=n)
        yz[: n // 3] = xz[: n // 3]
        if np.all(xz == yz):
            yz[0] += 1
        compare(f"zeros n{n}", xz, yz)
# every difference negative: the smallest exact one-sided p, 2^-n
got = probe("less", [1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
check("all negative n5", got["p"] == 1 / 32 and got["w_plus"] == 0, got)
# the centre of the distribution: two-sided p = 1 (n = 3: w_plus = 3 of 6)
got = probe("two-sided", [1, 2, 0], [0, 0, 3])
check("centre n3", got["p"] == 1.0 and got["w_plus"] == 3, got)
for name, x, y in [("all zero", [1, 2, 3], [1, 2, 3]), ("missing", [1, float("nan"), 3], [0, 0, 0]),
                   ("empty", [], [])]:
    got = probe("less", x, y)
    check(f"undefined: {name}", got["method"] == "undefined" and np.isnan(got["p"]), got)

if failures:
    for f in failures[:40]:
        print("FAIL:", f)
    print(f"{len(failures)} failures")
    sys.exit(1)
print("wilcoxon: all checks passed")
