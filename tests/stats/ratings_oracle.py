"""ratings_oracle.py - `cbctiq consensus` and `cbctiq agreement` against
NumPy/SciPy on seeded random ratings with missing entries and unequal weights:
consensus = np.average(weights=w), sd = sqrt(np.cov(aweights=w)) (reliability
weights, ddof = 1); Kendall's W from scipy.stats.friedmanchisquare (W =
chi2 / (k (n - 1)), same p); ICC from a two-way ANOVA written with NumPy;
Krippendorff's alpha from its pairwise definition (not the coincidence
matrix cbctiq uses); each rater's rho with the others' consensus from
scipy.stats.spearmanr. Values to 1e-12, p to 1e-9 relative."""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
from scipy import stats

failures = []


def close(a, b, what, tol=1e-12):
    if b is None or (isinstance(b, float) and math.isnan(b)):
        ok = a is None or (isinstance(a, float) and math.isnan(a))
    else:
        ok = a is not None and abs(a - b) <= tol * max(1.0, abs(b))
    if not ok:
        failures.append(f"{what}: got {a!r}, expected {b!r}")


def icc_numpy(m):
    n, k = m.shape
    g = m.mean()
    ssr = k * ((m.mean(1) - g) ** 2).sum()
    ssc = n * ((m.mean(0) - g) ** 2).sum()
    sst = ((m - g) ** 2).sum()
    bms, jms = ssr / (n - 1), ssc / (k - 1)
    ems = (sst - ssr - ssc) / ((n - 1) * (k - 1))
    return {"icc2_1": (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n),
            "icc2_k": (bms - ems) / (bms + (jms - ems) / n),
            "icc3_1": (bms - ems) / (bms + (k - 1) * ems),
            "icc3_k": (bms - ems) / bms}


def alpha_pairwise(m, ordinal):
    units = [row[~np.isnan(row)] for row in m]
    units = [u for u in units if len(u) >= 2]
    values = np.concatenate(units)
    n = len(values)
    levels, counts = np.unique(values, return_counts=True)
    freq = dict(zip(levels, counts))

    def d2(a, b):
        if not ordinal:
            return (a - b) ** 2
        lo, hi = min(a, b), max(a, b)
        s = sum(c for v, c in freq.items() if lo <= v <= hi) - (freq[a] + freq[b]) / 2
        return s * s
    do = sum(sum(d2(u[i], u[j]) for i in range(len(u)) for j in range(len(u)) if i != j) / (len(u) - 1)
             for u in units) / n
    de = sum(d2(a, b) for a in values for b in values) / (n * (n - 1))
    return 1 - do / de


def main():
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    # an empty folder: an output left by an earlier run must not stand in for this run's
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    rng = np.random.default_rng(5)
    n_vol, raters, cats = 30, ["r1", "r2", "r3", "r4"], ["parotid", "larynx", "overall"]
    weights = {"r1": 1.0, "r2": 2.5, "r3": 0.5, "r4": 1.25}
    truth = rng.uniform(1, 5, size=(len(cats), n_vol))
    scores = np.full((len(cats), n_vol, len(raters)), np.nan)
    rows = []
    for c in range(len(cats)):
        for v in range(n_vol):
            for k in range(len(raters)):
                if c == 1 and k == 3 and v % 4 == 0:
                    continue  # r4 skipped some larynx volumes
                s = float(np.clip(np.round(truth[c, v] + rng.normal(scale=0.7 + 0.3 * k)), 1, 5))
                scores[c, v, k] = s
                rows.append((f"vol{v:02d}", raters[k], cats[c], s))
    rng.shuffle(rows)
    rp = os.path.join(a.workdir, "ratings.csv")
    wp = os.path.join(a.workdir, "raters.csv")
    with open(rp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["score", "category", "volume_id", "rater", "comment"])
        for vol, r, c, s in rows:
            w.writerow([s, c, vol, r, "fine, \"ok\""])
    with open(wp, "w") as f:
        f.write("weight,rater\n" + "".join(f"{weights[r]},{r}\n" for r in raters))
    cp = os.path.join(a.workdir, "consensus.csv")
    subprocess.run([a.cbctiq, "consensus", "--ratings", rp, "--raters", wp, "--out", cp], check=True)
    wv = np.array([weights[r] for r in raters])
    with open(cp) as f:
        got = {(r["volume_id"], r["category"]): r for r in csv.DictReader(f)}
    for c, cat in enumerate(cats):
        for v in range(n_vol):
            s = scores[c, v]
            ok = ~np.isnan(s)
            r = got[(f"vol{v:02d}", cat)]
            close(float(r["consensus"]), float(np.average(s[ok], weights=wv[ok])), f"consensus {cat} {v}")
            close(float(r["sd"]), float(np.sqrt(np.cov(s[ok], aweights=wv[ok]))), f"sd {cat} {v}")
            if int(r["n_raters"]) != ok.sum():
                failures.append(f"n_raters {cat} {v}")

    ap_ = os.path.join(a.workdir, "agreement.csv")
    jp = os.path.join(a.workdir, "agreement.json")
    subprocess.run([a.cbctiq, "agreement", "--ratings", rp, "--raters", wp, "--out", ap_, "--json", jp],
                   check=True)
    with open(jp) as f:
        doc = json.load(f)["agreement"]
    with open(ap_) as f:
        table = list(csv.DictReader(f))
    for c, cat in enumerate(cats):
        m = scores[c]
        complete = m[~np.isnan(m).any(axis=1)]
        g = doc[cat]
        if g["n_complete"] != len(complete):
            failures.append(f"{cat} n_complete {g['n_complete']} vs {len(complete)}")
        for key, val in icc_numpy(complete).items():
            close(g[key], float(val), f"{cat} {key}")
        fr = stats.friedmanchisquare(*complete)  # one argument per volume, raters are blocks
        k, n = complete.shape[1], complete.shape[0]
        close(g["kendall_w"], float(fr.statistic) / (k * (n - 1)), f"{cat} kendall W")
        close(g["kendall_w_p"], float(fr.pvalue), f"{cat} kendall W p", tol=1e-9)
        close(g["alpha_interval"], alpha_pairwise(m, False), f"{cat} alpha interval")
        close(g["alpha_ordinal"], alpha_pairwise(m, True), f"{cat} alpha ordinal")
        for j, r in enumerate(raters):
            xs, ys = [], []
            for v in range(n_vol):
                if np.isnan(m[v, j]):
                    continue
                others = [q for q in range(len(raters)) if q != j and not np.isnan(m[v, q])]
                xs.append(m[v, j])
                ys.append(np.average(m[v, others], weights=wv[others]))
            sp = stats.spearmanr(xs, ys)
            close(g["rater_vs_rest"][r]["rho"], float(sp.statistic), f"{cat} {r} rho")
            close(g["rater_vs_rest"][r]["p"], float(sp.pvalue), f"{cat} {r} p", tol=1e-9)
            row = [t for t in table if t["category"] == cat and t["rater"] == r]
            if len(row) != 1 or abs(float(row[0]["value"]) - sp.statistic) > 1e-12:
                failures.append(f"agreement.csv row {cat} {r}")
    # correlate --ratings puts the same agreement section into stats.json
    sp_ = os.path.join(a.workdir, "stats.json")
    subprocess.run([a.cbctiq, "correlate", "--x", cp + ":consensus", "--y", cp + ":consensus", "--out", sp_,
                    "--n-boot", "10", "--n-perm", "10", "--ratings", rp, "--raters", wp], check=True)
    with open(sp_) as f:
        if json.load(f).get("agreement") != doc:
            failures.append("stats.json agreement section differs from agreement.json")
    for f_ in failures[:40]:
        print("FAIL:", f_)
    print(f"{len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
