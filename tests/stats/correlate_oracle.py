"""correlate_oracle.py - `cbctiq correlate` against SciPy 1.10.

Seeded random data with and without ties, n from 3 to 500, one category per
case in a single run. Compared with scipy.stats: spearmanr, pearsonr,
kendalltau (rho/r/tau to 1e-12 absolute, p to 1e-9 relative), the
leave-one-out correlations (spearmanr on each subset), the Fisher-z
interval, the exact permutation p (permutation_test over all n! pairings),
the Monte-Carlo permutation p (within binomial error of SciPy's own
estimate), the bootstrap percentile and BCa intervals recomputed with SciPy
from the very resample indices cbctiq drew (stats_boot_dump), Holm and
Benjamini-Hochberg, the partial Spearman correlation (least squares on ranks
with numpy), undefined cases (null with a reason), one-table volumes, and
identical output for 1 and 2 threads.
"""
import argparse
import itertools
import time
import warnings
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
from scipy import special, stats

RHO_TOL = 1e-12
P_RTOL = 1e-9
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def close(a, b, what, atol=RHO_TOL, rtol=0.0):
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        check(a is None and (b is None or math.isnan(b)), f"{what}: got {a}, expected {b}")
        return
    check(abs(a - b) <= atol + rtol * abs(b), f"{what}: got {a!r}, expected {b!r}")


def close_p(a, b, what):
    close(a, b, what, atol=1e-300, rtol=P_RTOL)


def write_table(path, rows, header):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")


def make_cases(rng):
    cases = {}
    for n in [3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 20, 33, 34, 50, 100, 250, 500]:
        x = rng.normal(size=n)
        y = 0.6 * x + rng.normal(size=n)
        cases[f"n{n}"] = (x, y)
        xt = rng.integers(1, 6, size=n).astype(float)
        yt = np.round(xt + rng.normal(scale=1.2, size=n))
        if np.all(xt == xt[0]) or np.all(yt == yt[0]):
            xt[0], yt[0] = 1.0, 5.0
        cases[f"ties{n}"] = (xt, yt)
    return cases


def run(cbctiq, args, expect_rc=0):
    p = subprocess.run([cbctiq] + args, capture_output=True, text=True)
    if p.returncode != expect_rc:
        print(p.stdout, p.stderr)
        raise SystemExit(f"cbctiq {' '.join(args)} exited {p.returncode}")
    return p


def spearman_rank_stat(y):
    """Spearman's rho of permuted x ranks against y, vectorised. Permuting x
    permutes its ranks, so permutation_test is given rank(x) as the data."""
    ry = stats.rankdata(y)
    ryc = ry - ry.mean()

    def stat(rx, axis=-1):
        rxc = rx - rx.mean(axis=-1, keepdims=True)
        return (rxc * ryc).sum(-1) / np.sqrt((rxc ** 2).sum(-1) * (ryc ** 2).sum())
    return stat


def check_category(name, x, y, got, n_perm):
    n = len(x)
    sp = stats.spearmanr(x, y)
    close(got["rho"], float(sp.statistic), f"{name} rho")
    close_p(got["p"], float(sp.pvalue), f"{name} p")
    pe = stats.pearsonr(x, y)
    close(got["pearson"]["r"], float(pe.statistic), f"{name} pearson r")
    close_p(got["pearson"]["p"], float(pe.pvalue), f"{name} pearson p")
    ke = stats.kendalltau(x, y)
    close(got["kendall"]["tau"], float(ke.statistic), f"{name} kendall tau")
    close_p(got["kendall"]["p"], float(ke.pvalue), f"{name} kendall p")
    ties = len(set(x)) < n or len(set(y)) < n
    want_method = "exact" if not ties and n <= 33 else "asymptotic"
    check(got["kendall"]["p_method"] == want_method, f"{name} kendall method {got['kendall']['p_method']}")

    # Fisher z interval of rho (the interval pearsonr uses, applied to rho)
    if n > 3 and abs(sp.statistic) < 1:
        z = math.atanh(sp.statistic)
        half = stats.norm.ppf(0.975) / math.sqrt(n - 3)
        close(got["ci95"][0], math.tanh(z - half), f"{name} fisher lo")
        close(got["ci95"][1], math.tanh(z + half), f"{name} fisher hi")

    # leave-one-out
    loo = got["loo"]
    if n >= 4:
        rhos, ps = [], []
        for i in range(n):
            r = stats.spearmanr(np.delete(x, i), np.delete(y, i))
            rhos.append(float(r.statistic))
            ps.append(float(r.pvalue))
        for i in range(n):
            close(loo["rho"][i], rhos[i], f"{name} loo rho[{i}]")
            close_p(loo["p"][i], ps[i], f"{name} loo p[{i}]")
            close(loo["influence"][i], float(sp.statistic) - rhos[i], f"{name} influence[{i}]")
        rr = np.array(rhos)
        valid = ~np.isnan(rr)
        close(loo["median_rho"], float(np.median(rr[valid])), f"{name} median rho")
        close_p(loo["median_p"], float(np.median(np.array(ps)[valid])), f"{name} median p")
        close(loo["min_rho"], float(rr[valid].min()), f"{name} min rho")
        close(loo["max_rho"], float(rr[valid].max()), f"{name} max rho")
        if valid.all():
            se = math.sqrt((n - 1) / n * ((rr - rr.mean()) ** 2).sum())
            close(loo["jackknife_se"], se, f"{name} jackknife se")
        check(loo["left_out"] == got["volumes"], f"{name} left_out order")

    # permutation p
    stat = spearman_rank_stat(y)
    rxs = stats.rankdata(x)
    if n <= 9:
        if n <= 8:
            p_ref = float(stats.permutation_test((rxs,), stat, permutation_type="pairings",
                                                 n_resamples=np.inf, vectorized=True).pvalue)
        else:  # SciPy's enumeration takes a minute at n = 9: the same rule, vectorised here
            perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
            null = stat(rxs[perms])
            obs = stat(rxs[None, :])[0]
            gamma = max(1e-14, abs(1e-14 * obs))
            p_ref = min(1.0, 2 * min((null <= obs + gamma).mean(), (null >= obs - gamma).mean()))
        check(got["p_perm_exact"] is True, f"{name} exact flag")
        check(got["n_perm"] == math.factorial(n), f"{name} n_perm {got['n_perm']}")
        close(got["p_perm"], p_ref, f"{name} exact p_perm", atol=1e-14, rtol=1e-12)
    elif name in ("n10", "ties16", "n50", "ties100"):
        n_ref = 20000
        ref = stats.permutation_test((rxs,), stat, permutation_type="pairings", n_resamples=n_ref,
                                     vectorized=True, random_state=np.random.default_rng(7))
        p_ref = float(ref.pvalue)
        sd = math.sqrt(max(p_ref * (1 - p_ref), 1e-4) * (4.0 / n_ref + 4.0 / n_perm))
        check(abs(got["p_perm"] - p_ref) <= 5 * sd + 4.0 / n_ref,
              f"{name} MC p_perm {got['p_perm']} vs SciPy {p_ref}")
        check(got["n_perm"] == n_perm and got["p_perm_exact"] is False, f"{name} n_perm")


def bootstrap_from_indices(x, y, idx, conf=0.95):
    """Percentile and BCa as scipy.stats.bootstrap computes them
    (_resampling._bca_interval), on the given resamples."""
    xs, ys = x[idx], y[idx]
    # cbctiq leaves out resamples where rho is undefined (a constant column)
    keep = ~(np.all(xs == xs[:, :1], axis=1) | np.all(ys == ys[:, :1], axis=1))
    rx = stats.rankdata(xs[keep], axis=1)
    ry = stats.rankdata(ys[keep], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    theta = (rx * ry).sum(1) / np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    alpha = (1 - conf) / 2
    pct = np.percentile(theta, [alpha * 100, (1 - alpha) * 100])
    theta_hat = stats.spearmanr(x, y).statistic
    # cbctiq counts values within 1e-12 of theta_hat as ties (docs/statistics.md)
    tol = 1e-12 * max(1.0, abs(theta_hat))
    frac = ((theta < theta_hat - tol).sum() + (theta <= theta_hat + tol).sum()) / (2 * len(theta))
    z0 = special.ndtri(frac)
    n = len(x)
    jack = np.array([stats.spearmanr(np.delete(x, i), np.delete(y, i)).statistic for i in range(n)])
    u = (n - 1) * (jack.mean() - jack)
    a = 1 / 6 * ((u ** 3).sum() / n ** 3) / ((u ** 2).sum() / n ** 2) ** 1.5
    za = special.ndtri(alpha)
    bca = []
    if not (np.isfinite(z0) and np.isfinite(a)):
        return pct, np.array([np.nan, np.nan]), z0, a, len(theta)
    for zz in (za, -za):
        num = z0 + zz
        a1 = special.ndtr(z0 + num / (1 - a * num))
        bca.append(np.percentile(theta, a1 * 100))
    return pct, np.array(bca), z0, a, len(theta)


def check_bootstrap(helper, workdir, name, x, y, got, n_boot, seed):
    path = os.path.join(workdir, f"boot_{name}.csv")
    write_table(path, zip(x, y), ["x", "y"])
    out = os.path.join(workdir, f"boot_{name}.json")
    subprocess.run([helper, path, str(n_boot), str(seed), out], check=True)
    with open(out) as f:
        d = json.load(f)
    idx = np.array(d["idx"], dtype=np.int64)
    check(idx.shape == (n_boot, len(x)) and idx.min() >= 0 and idx.max() < len(x), f"{name} idx shape")
    pct, bca, z0, a, m = bootstrap_from_indices(x, y, idx)
    cb = got["ci95_bootstrap"]
    # the CLI draws the same resamples as the helper for the same seed
    close(cb["percentile"][0], d["pct_lo"], f"{name} CLI vs helper pct", atol=0)
    close(cb["bca"][1], d["bca_hi"], f"{name} CLI vs helper bca", atol=0)
    check(cb["n_valid"] == m, f"{name} n_valid {cb['n_valid']} vs {m}")
    close(cb["percentile"][0], float(pct[0]), f"{name} boot percentile lo")
    close(cb["percentile"][1], float(pct[1]), f"{name} boot percentile hi")
    close(cb["z0"], float(z0) if np.isfinite(z0) else None, f"{name} BCa z0", atol=1e-12)
    close(cb["accel"], float(a) if np.isfinite(a) else None, f"{name} BCa accel", atol=1e-12)
    close(cb["bca"][0], float(bca[0]) if np.isfinite(bca[0]) else None, f"{name} BCa lo")
    close(cb["bca"][1], float(bca[1]) if np.isfinite(bca[1]) else None, f"{name} BCa hi")


def holm(p):
    p = np.asarray(p)
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    run = 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (m - rank) * p[i]))
        adj[i] = run
    return adj


def bh(p):
    p = np.asarray(p)
    order = np.argsort(p)[::-1]
    m = len(p)
    adj = np.empty(m)
    run = 1.0
    for k, i in enumerate(order):
        rank = m - k
        run = min(run, min(1.0, m / rank * p[i]))
        adj[i] = run
    return adj


def main():
    warnings.simplefilter("ignore")
    t0 = time.time()
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--helper", required=True)
    a = ap.parse_args()
    # an empty folder: an output left by an earlier run must not stand in for this run's
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    rng = np.random.default_rng(20240611)
    cases = make_cases(rng)
    xrows, yrows, zrows = [], [], []
    covars = {}
    for name, (x, y) in cases.items():
        z1 = x + rng.normal(size=len(x))
        z2 = rng.integers(0, 4, size=len(x)).astype(float)
        covars[name] = (z1, z2)
        for i in range(len(x)):
            vid = f"v{i:03d}"
            xrows.append((vid, name, repr(float(x[i]))))
            yrows.append((name, vid, repr(float(y[i]))))
            zrows.append((vid, name, repr(float(z1[i])), repr(float(z2[i]))))
    xrows.append(("extra_x", "n16", "1.0"))
    yrows.append(("n16", "extra_y", "2.0"))
    xp = os.path.join(a.workdir, "x.csv")
    yp = os.path.join(a.workdir, "y.csv")
    zp = os.path.join(a.workdir, "z.csv")
    write_table(xp, xrows, ["volume_id", "category", "ae"])
    write_table(yp, yrows, ["category", "volume_id", "consensus"])  # other column order
    write_table(zp, zrows, ["volume_id", "category", "z1", "z2"])
    n_boot, n_perm, seed = 2000, 20000, 11
    common = ["correlate", "--x", f"{xp}:ae", "--y", f"{yp}:consensus", "--n-boot", str(n_boot),
              "--n-perm", str(n_perm), "--seed", str(seed), "--given", f"{zp}:z1",
              "--given", f"{zp}:z2"]
    out1 = os.path.join(a.workdir, "stats1.json")
    out2 = os.path.join(a.workdir, "stats2.json")
    p = run(a.cbctiq, common + ["--out", out1, "--threads", "1", "--csv",
                                os.path.join(a.workdir, "stats.csv")])
    check("extra_x" in p.stderr and "extra_y" in p.stderr, "warning about one-table volumes")
    run(a.cbctiq, common + ["--out", out2, "--threads", "2", "--quiet"])
    with open(out1) as f:
        text1 = f.read()
    with open(out2) as f:
        text2 = f.read()
    check(text1 == text2, "output differs between 1 and 2 threads")
    doc = json.loads(text1)
    cats = doc["categories"]
    check(list(cats) == list(cases), "category order")
    check(cats["n16"]["only_in_x"] == ["extra_x"] and cats["n16"]["only_in_y"] == ["extra_y"],
          "only_in_x / only_in_y")

    for name, (x, y) in cases.items():
        t1 = time.time()
        got = cats[name]
        check(got["n"] == len(x), f"{name} n")
        check_category(name, x, y, got, n_perm)
        # partial Spearman given z1, z2: numpy least squares on ranks
        z1, z2 = covars[name]
        n = len(x)
        if n < 7:  # df = n - 4 below 3: no partial correlation
            pa = got["partial_spearman"]
            check(pa["rho"] is None and pa["p"] is None and "degrees of freedom" in pa.get("reason", ""),
                  f"{name}: partial at df = {n - 4} must be null with a reason: {pa}")
        else:
            X = np.column_stack([np.ones(n), stats.rankdata(z1), stats.rankdata(z2)])
            ex = stats.rankdata(x) - X @ np.linalg.lstsq(X, stats.rankdata(x), rcond=None)[0]
            ey = stats.rankdata(y) - X @ np.linalg.lstsq(X, stats.rankdata(y), rcond=None)[0]
            r = float(np.corrcoef(ex, ey)[0, 1])
            df = n - 4
            pp = float(2 * stats.t.sf(abs(r * math.sqrt(df / (1 - r * r))), df))
            close(got["partial_spearman"]["rho"], r, f"{name} partial rho", atol=1e-10)
            close(got["partial_spearman"]["p"], pp, f"{name} partial p", atol=1e-300, rtol=1e-8)
        if time.time() - t1 > 1:
            print(f"  {name}: {time.time() - t1:.1f} s")
    print(f"cases checked at {time.time() - t0:.1f} s")
    for name in ["n3", "ties3", "n5", "n10", "ties16", "n50", "ties100", "n500"]:
        x, y = cases[name]
        check_bootstrap(a.helper, a.workdir, name, x, y, cats[name], n_boot, seed)

    print(f"bootstrap checked at {time.time() - t0:.1f} s")
    ps = [cats[c]["p"] for c in cases]
    for c, h, b in zip(cases, holm(ps), bh(ps)):
        close(cats[c]["p_holm"], float(h), f"{c} holm", atol=1e-15, rtol=1e-12)
        close(cats[c]["p_bh"], float(b), f"{c} bh", atol=1e-15, rtol=1e-12)

    # undefined cases: null with a reason, never NaN or a crash
    rows_x = [("a1", "tiny", "1"), ("a2", "tiny", "2"),
              ("b1", "constx", "3"), ("b2", "constx", "3"), ("b3", "constx", "3"), ("b4", "constx", "3"),
              ("c1", "consty", "1"), ("c2", "consty", "2"), ("c3", "consty", "3"), ("c4", "consty", "4"),
              ("d1", "nan", "1"), ("d2", "nan", "nan"), ("d3", "nan", "3"), ("d4", "nan", "4"),
              ("e1", "empty", "1"), ("e2", "empty", ""), ("e3", "empty", "3"), ("e4", "empty", "4"),
              ("f1", "ok", "1"), ("f2", "ok", "2"), ("f3", "ok", "3"), ("f4", "ok", "5")]
    rows_y = [(v, c, str(i % 3 + 1) if c != "consty" else "2") for i, (v, c, _) in enumerate(rows_x)]
    write_table(xp, rows_x, ["volume_id", "category", "ae"])
    write_table(yp, rows_y, ["volume_id", "category", "consensus"])
    out = os.path.join(a.workdir, "undefined.json")
    run(a.cbctiq, ["correlate", "--x", f"{xp}:ae", "--y", f"{yp}:consensus", "--out", out,
                   "--n-boot", "100", "--n-perm", "100"])
    with open(out) as f:
        text = f.read()
    check("NaN" not in text and "nan" not in text.replace('"nan"', ""), "NaN written to JSON")
    und = json.loads(text)["categories"]
    for c in ["tiny", "constx", "consty", "nan", "empty"]:
        check(und[c]["rho"] is None and und[c]["p"] is None and isinstance(und[c].get("reason"), str),
              f"undefined case {c}: {und[c].get('rho')} {und[c].get('reason')}")
        check(und[c]["p_holm"] is None, f"undefined case {c} holm")
    check(und["ok"]["rho"] is not None and und["ok"]["p_holm"] == und["ok"]["p"],
          "a single defined category is its own Holm family")

    # --where keeps one method's rows of a table with several; --by none pools
    rows = [(f"w{i}", m, repr(float(v))) for m, vals in (("gradcam", cases["n20"][0]), ("other", cases["n20"][1]))
            for i, v in enumerate(vals)]
    write_table(xp, rows, ["volume_id", "method", "ae"])
    write_table(yp, [(f"w{i}", repr(float(v))) for i, v in enumerate(cases["n20"][1])], ["volume_id", "consensus"])
    out = os.path.join(a.workdir, "where.json")
    run(a.cbctiq, ["correlate", "--x", f"{xp}:ae", "--y", f"{yp}:consensus", "--out", out, "--by", "none",
                   "--where", "method=gradcam", "--n-boot", "100", "--n-perm", "100"])
    with open(out) as f:
        w = json.load(f)["categories"]["all"]
    close(w["rho"], float(stats.spearmanr(*cases["n20"]).statistic), "--where method=gradcam rho")
    p = run(a.cbctiq, ["correlate", "--x", f"{xp}:ae", "--y", f"{yp}:consensus", "--out", out + "2",
                       "--by", "none"], expect_rc=1)
    check("duplicate row for volume 'w0'" in p.stderr and not os.path.exists(out + "2"),
          f"two methods without --where: {p.stderr}")

    if failures:
        for f_ in failures[:50]:
            print("FAIL:", f_)
        print(f"{len(failures)} failures")
        sys.exit(1)
    print(f"all checks passed ({len(cases)} cases)")


if __name__ == "__main__":
    main()
