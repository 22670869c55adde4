"""`cbctiq study` with cohort.folds = 3 and train.repeats = 2 on a small
synthetic cohort (make_cohort.py: 15 volumes of 32x32x8, a tiny iqnet-s,
3 epochs), checked against independent recomputations:

- folds (cohort/folds.csv, cohort/fold<f>/cohort.csv): every volume in
  exactly one fold, fold sizes within one, the stratum the numpy weighted
  overall consensus, each sorted block of 3 volumes spread over the 3
  folds; fold f's split tests exactly its volumes and trains and validates
  on the others (round(m x 0.17 / 0.67) val of m);
- one model per fold and seed (train/fold<f>/seed<r>/model), every volume
  tested once: ae.csv and pred.csv hold each volume once per category,
  ae.csv's AE and prediction the mean of the two seeds' (seeds/ae_seed<r>.csv);
- the statistics on all n out-of-fold volumes (stats/table.csv,
  stats.json): scipy.stats.spearmanr rho and p, the leave-one-out medians,
  the Fisher-z interval; per fold, scipy rho and n of the volumes it
  tested; per seed, scipy rho(AE, consensus) and rho(pred, consensus) with
  numpy's median, min and max (stats.json "repeats", table.csv
  rho_seeds_*, test_rho_seeds_*);
- evaluate/metrics.csv's constant predictor: each volume's fold's training
  mean (numpy);
- cohort.folds = 1 is refused before anything is written, more folds than
  volumes by the cohort stage, naming both.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
args = ap.parse_args()
failures = []
CATS = ["parotid", "submandibular", "larynx", "mandible", "overall"]
K, R = 3, 2


def fail(msg):
    failures.append(msg)


def close(name, got, want, tol=1e-9):
    got, want = float(got), float(want)
    if np.isnan(want) and np.isnan(got):
        return
    if not np.isclose(got, want, rtol=tol, atol=tol):
        fail(f"{name}: got {got!r}, want {want!r}")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


work = args.workdir
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", cohort, "--n", "15",
                "--size", "32", "--slices", "8", "--test", "5", "--val", "2", "--ras"], check=True)
config = {"cohort": {"csv": "cohort/cohort.csv", "folds": K},
          "train": {"width": 8, "depth": 2, "input_size": 32, "epochs": 3, "batch": 8,
                    "lr": 0.003, "patience": 0, "repeats": R},
          "stats": {"bootstrap": 200, "permutations": 500},
          "sanity": {"max_slices": 2, "methods": "gradcam"}}
cfg_path = os.path.join(work, "study.json")
with open(cfg_path, "w") as f:
    json.dump(config, f)
out = os.path.join(work, "out")
r = subprocess.run([args.cbctiq, "study", "--config", cfg_path, "--out", out, "--threads", "2"],
                   capture_output=True, text=True)
if r.returncode != 0:
    print(r.stdout, r.stderr)
    sys.exit(f"study failed: {r.returncode}")
stdout = r.stdout
if "checked: fold 1's model, seed 1" not in r.stderr:
    fail("the sanity stage's line does not say which model it checked")

# ---- consensus and the folds --------------------------------------------------------
weights = {x["rater"]: float(x["weight"]) for x in read_csv(os.path.join(cohort, "raters.csv"))}
acc = {}
for x in read_csv(os.path.join(cohort, "ratings.csv")):
    key = (x["volume_id"], x["category"])
    s, w = acc.get(key, (0.0, 0.0))
    acc[key] = (s + weights[x["rater"]] * float(x["score"]), w + weights[x["rater"]])
consensus = {k: s / w for k, (s, w) in acc.items()}
ids = [x["volume_id"] for x in read_csv(os.path.join(cohort, "cohort.csv"))]

folds = read_csv(os.path.join(out, "cohort", "folds.csv"))
fold = {x["volume_id"]: int(x["fold"]) for x in folds}
if sorted(fold) != sorted(ids) or len(folds) != len(ids):
    fail(f"folds.csv volumes {sorted(fold)} != cohort {sorted(ids)}")
sizes = [sum(1 for v in fold if fold[v] == f) for f in range(1, K + 1)]
if max(sizes) - min(sizes) > 1 or sum(sizes) != len(ids):
    fail(f"fold sizes {sizes}")
for x in folds:
    close(f"stratum {x['volume_id']}", x["stratum"], consensus[(x["volume_id"], "overall")], 1e-12)
# Stratified: volumes sorted by overall consensus, each block of K spans the
# K folds (ties may be ordered either way, so check blocks of distinct values).
ranked = sorted(ids, key=lambda v: consensus[(v, "overall")])
strata = [consensus[(v, "overall")] for v in ranked]
for at in range(0, len(ranked) - K + 1, K):
    block = ranked[at:at + K]
    tied_edge = (at > 0 and strata[at] == strata[at - 1]) or \
        (at + K < len(ranked) and strata[at + K - 1] == strata[at + K])
    if not tied_edge and sorted(fold[v] for v in block) != list(range(1, K + 1)):
        fail(f"block {block} of the sorted strata lies in folds {[fold[v] for v in block]}")
study_split = {x["volume_id"]: x["split"] for x in read_csv(os.path.join(out, "cohort", "cohort.csv"))}
if set(study_split.values()) != {"test"}:
    fail(f"the study's cohort.csv splits {set(study_split.values())}, want every volume test")
fold_train = {}
for f in range(1, K + 1):
    split = {x["volume_id"]: x["split"]
             for x in read_csv(os.path.join(out, "cohort", f"fold{f}", "cohort.csv"))}
    test = sorted(v for v, s in split.items() if s == "test")
    if test != sorted(v for v in fold if fold[v] == f):
        fail(f"fold {f}: test split {test}")
    m = len(ids) - len(test)
    n_val = sum(1 for s in split.values() if s == "val")
    if n_val != int(np.floor(m * 0.17 / 0.67 + 0.5)):
        fail(f"fold {f}: {n_val} val volumes of {m}")
    fold_train[f] = [v for v, s in split.items() if s == "train"]
    for rep in range(1, R + 1):
        if not os.path.exists(os.path.join(out, "train", f"fold{f}", f"seed{rep}", "model",
                                           "model.json")):
            fail(f"no model for fold {f} seed {rep}")

# ---- out-of-fold AE: each volume once, the mean over seeds -----------------------------
ae = {(x["volume_id"], x["category"]): x for x in read_csv(os.path.join(out, "attrib", "ae.csv"))}
seeds = [{(x["volume_id"], x["category"]): x
          for x in read_csv(os.path.join(out, "attrib", "seeds", f"ae_seed{rep}.csv"))}
         for rep in range(1, R + 1)]
want_keys = {(v, c) for v in ids for c in CATS}
if set(ae) != want_keys or any(set(s) != want_keys for s in seeds):
    fail("ae.csv or a seed's ae.csv does not hold every volume x category once")
for key in sorted(want_keys & set(ae)):
    for col in ("ae", "pred", "ae_feature_pre", "pred_minus_bias_sum"):
        close(f"ae.csv {key} {col}", ae[key][col], np.mean([float(s[key][col]) for s in seeds]), 1e-6)
pred = {(x["volume_id"], x["category"]): float(x["pred"])
        for x in read_csv(os.path.join(out, "evaluate", "pred.csv"))}
if set(pred) != want_keys:
    fail("pred.csv does not hold every volume x category once")
for key in sorted(want_keys & set(pred)):
    close(f"pred.csv {key}", pred[key], float(ae[key]["pred"]), 1e-6)

# ---- the statistics on all n ---------------------------------------------------------
table = {x["category"]: x for x in read_csv(os.path.join(out, "stats", "table.csv"))}
with open(os.path.join(out, "stats", "stats.json")) as f:
    sj = json.load(f)
cv = sj.get("cross_validation", {})
if cv.get("folds") != K or cv.get("repeats") != R or (cv.get("seeds") or [None])[0] != "1":
    fail(f"stats.json cross_validation {cv}")
metrics = {x["category"]: x for x in read_csv(os.path.join(out, "evaluate", "metrics.csv"))}
for c in CATS:
    x = np.array([float(ae[(v, c)]["ae"]) for v in ids])
    y = np.array([consensus[(v, c)] for v in ids])
    res = stats.spearmanr(x, y)
    t = table[c]
    close(f"{c} n", t["n"], len(ids))
    close(f"{c} rho", t["rho"], res.correlation)
    close(f"{c} p", t["p"], res.pvalue, 1e-7)
    loo = [stats.spearmanr(np.delete(x, i), np.delete(y, i)) for i in range(len(x))]
    close(f"{c} median LOO rho", t["median_loo_rho"], np.median([q.correlation for q in loo]))
    z = stats.norm.ppf(0.975) / np.sqrt(len(x) - 3)
    if abs(res.correlation) < 1:
        close(f"{c} CI low", t["ci_low"], np.tanh(np.arctanh(res.correlation) - z), 1e-7)
    cat = sj["categories"][c]
    got_folds = cat.get("folds", [])
    if [g.get("fold") for g in got_folds] != list(range(1, K + 1)):
        fail(f"{c}: stats.json folds {got_folds}")
    for g in got_folds:
        members = [i for i, v in enumerate(ids) if fold[v] == g["fold"]]
        close(f"{c} fold {g['fold']} n", g["n"], len(members))
        want = stats.spearmanr(x[members], y[members]).correlation
        if np.isnan(want) != (g["rho"] is None) or (g["rho"] is not None and
                                                     not np.isclose(g["rho"], want, atol=1e-9)):
            fail(f"{c} fold {g['fold']} rho {g['rho']}, want {want}")
    seed_rho = [stats.spearmanr([float(s[(v, c)]["ae"]) for v in ids], y).correlation for s in seeds]
    seed_test = [stats.spearmanr([float(s[(v, c)]["pred"]) for v in ids], y).correlation
                 for s in seeds]
    rep = cat.get("repeats", {})
    for name, vals in (("rho", seed_rho), ("test_rho", seed_test)):
        got = rep.get(name, {})
        for i, val in enumerate(vals):
            close(f"{c} repeats {name} seed {i + 1}", (got.get("values") or [np.nan] * R)[i], val)
        for stat, fn in (("median", np.median), ("min", np.min), ("max", np.max)):
            close(f"{c} repeats {name} {stat}", got.get(stat, np.nan), fn(vals))
            close(f"{c} table {name}_seeds_{stat}", t[f"{name}_seeds_{stat}"], fn(vals))
    # The printed table's spread over seeds carries the same numbers (rounded).
    spread = stdout[stdout.find("over training seeds"):]
    line = next((l for l in spread.splitlines() if l.startswith(c + " ")), "")
    fields = line.replace("[", " ").replace("]", " ").replace(",", " ").split()[1:]
    want = [f(v) for v in (seed_rho, seed_test) for f in (np.median, np.min, np.max)]
    if len(fields) != 6 or not np.allclose([float(v) for v in fields], want, atol=6e-4):
        fail(f"stdout seeds line for {c}: {line!r}, want {want}")
    # The constant predictor: each volume's own fold's training mean.
    base = np.array([np.mean([consensus[(u, c)] for u in fold_train[fold[v]]]) for v in ids])
    close(f"{c} baseline MAE", metrics[c]["baseline_mae"], np.mean(np.abs(base - y)))
    close(f"{c} model MAE", metrics[c]["mae"],
          np.mean(np.abs(np.array([pred[(v, c)] for v in ids]) - y)), 1e-6)

# ---- one fold is no cross-validation: refused, nothing written -------------------------
bad = os.path.join(work, "bad.json")
with open(bad, "w") as f:
    json.dump({"cohort": {"csv": "cohort/cohort.csv", "folds": 1}}, f)
r = subprocess.run([args.cbctiq, "study", "--config", bad, "--out", os.path.join(work, "bad")],
                   capture_output=True, text=True)
if r.returncode == 0 or "cohort.folds" not in r.stderr or os.path.exists(os.path.join(work, "bad")):
    fail(f"cohort.folds = 1: exit {r.returncode}, stderr {r.stderr!r}")

# More folds than volumes: the cohort stage fails naming both, writes no fold.
with open(bad, "w") as f:
    json.dump({"cohort": {"csv": "cohort/cohort.csv", "folds": 16}}, f)
r = subprocess.run([args.cbctiq, "study", "--config", bad, "--out", os.path.join(work, "bad16")],
                   capture_output=True, text=True)
if r.returncode == 0 or "cohort.folds: 16 folds for 15 volumes" not in r.stderr or \
        os.path.exists(os.path.join(work, "bad16", "cohort", "folds.csv")):
    fail(f"cohort.folds = 16 of 15 volumes: exit {r.returncode}, stderr {r.stderr!r}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study cross-validation oracle: all checks passed")
