"""End-to-end test of `cbctiq study` on a small synthetic cohort
(make_cohort.py: 20 volumes of 48x48x16 stored in RAS voxel order,
12 train / 2 val / 6 test, a tiny
iqnet-s, 8 epochs), checked against independent recomputations:

- consensus: numpy weighted means of ratings.csv with raters.csv weights;
- the poster's table (stats/table.csv and the table printed on stdout):
  scipy.stats.spearmanr for rho and p, leave-one-out medians of scipy rho
  and p, the Fisher-z interval with scipy.stats.norm, Holm and
  Benjamini-Hochberg adjustments written out in numpy;
- evaluation (evaluate/metrics.csv): MAE, RMSE, scipy Spearman and a numpy
  quadratic-weighted kappa on half-up rounded scores; the model must beat
  the constant training-mean predictor (the cohort's quality signal is a
  tissue intensity shift of 120 HU per score point, learnable in a few
  epochs; the test asks for a mean MAE below 0.8 x the constant's, measured
  0.30-0.54 x over seeds 1-3 in both the release and the sanitizer build);
- atypical cases: the isotonic fit by the max-min formula and robust z of
  the residuals in numpy;
- attrib/profiles.csv: one row per test volume x category x slice, slice
  sums adding up to ae.csv's AE, z_mm the world z of each slice's centre
  (nibabel), mean slice prediction equal to ae.csv's pred;
- the report's map figures (report/tables/maps_shown.csv): the highest-,
  median- and lowest-AE volume per category from ae.csv, each shown on
  the slice where its structure (label volume) has the largest area, or
  for "overall" the largest map sum (map NIfTI); the LOO, overlay and
  profile figures exist as PNG and SVG and are in report.html;
- caching: a second run reruns nothing and leaves every file unchanged; a
  changed atypical option reruns atypical and report only; a changed
  stats option reruns stats and report only.
"""
import argparse
import csv
import hashlib
import json
import math
import os
import re
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


def num(s):
    return float(s) if s != "" else float("nan")


def run_study(out, config, extra=()):
    cmd = [args.cbctiq, "study", "--config", config, "--out", out, "--threads", "2"] + list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit(f"study failed: {r.returncode}")
    ran = re.findall(r"\] (\w+)\s+running", r.stderr)
    cached = re.findall(r"\] (\w+)\s+up to date", r.stderr)
    return r.stdout, ran, cached


def tree_digest(root):
    """Every output's digest; not cbctiq-study.lock, which holds the last run's PID."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.relpath(p, root) == "cbctiq-study.lock":
                continue
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


work = args.workdir
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", cohort, "--n", "20",
                "--size", "48", "--slices", "16", "--test", "6", "--val", "2", "--ras"], check=True)
config = {"cohort": {"csv": "cohort/cohort.csv"},
          "train": {"width": 8, "depth": 2, "input_size": 32, "epochs": 8, "batch": 8,
                    "lr": 0.003, "patience": 0, "hu_min": -500, "hu_max": 500},
          "stats": {"bootstrap": 200, "permutations": 500},
          "sanity": {"max_slices": 4}}
cfg_path = os.path.join(work, "study.json")
with open(cfg_path, "w") as f:
    json.dump(config, f)
out = os.path.join(work, "out")
stdout, ran, cached = run_study(out, cfg_path)
if len(ran) != 9:
    fail(f"first run ran {ran}")

# ---- consensus from the ratings ------------------------------------------------
weights = {r["rater"]: float(r["weight"]) for r in read_csv(os.path.join(cohort, "raters.csv"))}
acc = {}
for r in read_csv(os.path.join(cohort, "ratings.csv")):
    key = (r["volume_id"], r["category"])
    s, w = acc.get(key, (0.0, 0.0))
    acc[key] = (s + weights[r["rater"]] * float(r["score"]), w + weights[r["rater"]])
consensus = {k: s / w for k, (s, w) in acc.items()}
for r in read_csv(os.path.join(out, "consensus", "consensus.csv")):
    close(f"consensus {r['volume_id']} {r['category']}", r["consensus"],
          consensus[(r["volume_id"], r["category"])], 1e-12)

split = {r["volume_id"]: r["split"] for r in read_csv(os.path.join(cohort, "cohort.csv"))}
test_ids = sorted(v for v, s in split.items() if s == "test")
train_ids = [v for v, s in split.items() if s == "train"]

# ---- every test volume has AE for every category ---------------------------------
ae_rows = read_csv(os.path.join(out, "attrib", "ae.csv"))
have = {(r["volume_id"], r["category"]) for r in ae_rows if r["ae"] != ""}
for v in test_ids:
    for c in CATS:
        if (v, c) not in have:
            fail(f"ae.csv lacks {v} {c}")
if len(ae_rows) != len(test_ids) * len(CATS):
    fail(f"ae.csv has {len(ae_rows)} rows, want {len(test_ids) * len(CATS)}")
ae = {(r["volume_id"], r["category"]): r for r in ae_rows}
# Structure energy where the label volume has the category's structure
# (make_cohort.py labels all four), none for "overall".
for (v, c), r in ae.items():
    if (r["ae_in_structure"] == "") != (c == "overall"):
        fail(f"ae.csv {v} {c}: ae_in_structure '{r['ae_in_structure']}'")
    if c != "overall" and not 0 <= float(r["ae_in_structure"]) <= float(r["ae"]) + 1e-9:
        fail(f"ae.csv {v} {c}: structure AE {r['ae_in_structure']} outside [0, AE {r['ae']}]")
# Maps are on the CBCT's own grid (the cohort is stored in RAS voxel order,
# not cbctiq's canonical one): same shape and affine as the scan (nibabel).
import nibabel as nib
src = nib.load(os.path.join(cohort, "volumes", f"{test_ids[0]}.nii.gz"))
for c in CATS:
    path = os.path.join(out, "attrib", "maps", f"{test_ids[0]}_{c}.nii.gz")
    if not os.path.exists(path):
        fail(f"no Grad-CAM map for {test_ids[0]} {c}")
        continue
    m = nib.load(path)
    if m.shape != src.shape or not np.allclose(m.affine, src.affine, atol=1e-4):
        fail(f"map {c}: shape {m.shape} affine {m.affine.tolist()} vs scan {src.shape} {src.affine.tolist()}")
    data = np.asarray(m.dataobj)
    if not np.isfinite(data).all() or data.min() < 0:
        fail(f"map {c}: non-finite or negative values")


# ---- z-profiles of attribution ------------------------------------------------------
prof = read_csv(os.path.join(out, "attrib", "profiles.csv"))
if prof and list(prof[0].keys()) != ["volume_id", "category", "slice", "z_mm", "ae", "pred"]:
    fail(f"profiles.csv columns {list(prof[0].keys())}")
by_vc = {}
for r in prof:
    by_vc.setdefault((r["volume_id"], r["category"]), []).append(r)
if set(by_vc) != {(v, c) for v in test_ids for c in CATS}:
    fail(f"profiles.csv covers {sorted(by_vc)[:4]}..., want every test volume x category")
for (v, c), rows in by_vc.items():
    img = nib.load(os.path.join(cohort, "volumes", f"{v}.nii.gz"))
    nx, ny, nz = img.shape
    # train.slices = all: every slice, each once; z of the centre voxel of each.
    if sorted(int(r["slice"]) for r in rows) != list(range(nz)):
        fail(f"profiles.csv {v} {c}: slices {[r['slice'] for r in rows]}")
        continue
    want_z = sorted((img.affine @ [(nx - 1) / 2, (ny - 1) / 2, k, 1])[2] for k in range(nz))
    got_z = sorted(float(r["z_mm"]) for r in rows)
    if not np.allclose(got_z, want_z, atol=1e-3):
        fail(f"profiles.csv {v} {c}: z_mm {got_z[:3]}... want {want_z[:3]}...")
    if (v, c) in ae:
        close(f"profile sum {v} {c}", sum(float(r["ae"]) for r in rows), float(ae[(v, c)]["ae"]), 1e-4)
        close(f"profile pred {v} {c}", np.mean([float(r["pred"]) for r in rows]),
              float(ae[(v, c)]["pred"]), 1e-5)


# ---- the poster's table -------------------------------------------------------------
def holm(p):
    p = np.asarray(p)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def bh(p):
    p = np.asarray(p)
    m = len(p)
    order = np.argsort(p, kind="stable")[::-1]
    adj = np.empty(m)
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k
        running = min(running, p[i] * m / rank)
        adj[i] = running
    return adj


table = {r["category"]: r for r in read_csv(os.path.join(out, "stats", "table.csv"))}
ps, rhos = [], {}
for c in CATS:
    x = np.array([float(ae[(v, c)]["ae"]) for v in test_ids])
    y = np.array([consensus[(v, c)] for v in test_ids])
    res = stats.spearmanr(x, y)
    rho, p = float(res.correlation), float(res.pvalue)
    rhos[c] = rho
    ps.append(p)
    loo = [stats.spearmanr(np.delete(x, i), np.delete(y, i)) for i in range(len(x))]
    t = table[c]
    close(f"{c} n", t["n"], len(x))
    close(f"{c} rho", t["rho"], rho)
    close(f"{c} p", t["p"], p, 1e-7)
    close(f"{c} median LOO rho", t["median_loo_rho"], np.median([r.correlation for r in loo]))
    close(f"{c} median LOO p", t["median_loo_p"], np.median([r.pvalue for r in loo]), 1e-7)
    z = stats.norm.ppf(0.975) / np.sqrt(len(x) - 3)
    if abs(rho) < 1:
        close(f"{c} CI low", t["ci_low"], np.tanh(np.arctanh(rho) - z), 1e-7)
        close(f"{c} CI high", t["ci_high"], np.tanh(np.arctanh(rho) + z), 1e-7)
    pred = np.array([float(ae[(v, c)]["pred"]) for v in test_ids])
    close(f"{c} rho(AE, pred)", t["rho_ae_pred"], stats.spearmanr(x, pred).correlation)
for c, h, b in zip(CATS, holm(ps), bh(ps)):
    close(f"{c} p_holm", table[c]["p_holm"], h, 1e-7)
    close(f"{c} p_bh", table[c]["p_bh"], b, 1e-7)
# The printed table carries the same numbers (rounded).
for c in CATS:
    line = next((l for l in stdout.splitlines() if l.startswith(c + " ")), None)
    if line is None:
        fail(f"stdout table lacks {c}")
        continue
    fields = line.replace("[", " ").replace("]", " ").replace(",", " ").split()
    close(f"stdout {c} rho", fields[4], rhos[c], 6e-4)
    close(f"stdout {c} LOO rho", fields[2], float(table[c]["median_loo_rho"]), 6e-4)


# ---- evaluation --------------------------------------------------------------------------
def kappa(conf):
    k = conf.shape[0]
    w = np.subtract.outer(np.arange(k), np.arange(k)) ** 2 / (k - 1) ** 2
    e = np.outer(conf.sum(1), conf.sum(0)) / conf.sum()
    return 1 - (w * conf).sum() / (w * e).sum() if (w * e).sum() > 0 else float("nan")


lv = lambda v: int(np.clip(np.floor(v + 0.5), 1, 5))
pred_rows = {(r["volume_id"], r["category"]): float(r["pred"])
             for r in read_csv(os.path.join(out, "evaluate", "pred.csv"))}
metrics = {r["category"]: r for r in read_csv(os.path.join(out, "evaluate", "metrics.csv"))}
model_mae, base_mae = [], []
for c in CATS:
    p = np.array([pred_rows[(v, c)] for v in test_ids])
    y = np.array([consensus[(v, c)] for v in test_ids])
    conf = np.zeros((5, 5))
    for a, b in zip(y, p):
        conf[lv(a) - 1, lv(b) - 1] += 1
    base = np.mean([consensus[(v, c)] for v in train_ids])
    m = metrics[c]
    close(f"{c} MAE", m["mae"], np.abs(p - y).mean())
    close(f"{c} RMSE", m["rmse"], np.sqrt(((p - y) ** 2).mean()))
    close(f"{c} eval rho", m["rho"], stats.spearmanr(p, y).correlation)
    close(f"{c} kappa", m["kappa"], kappa(conf))
    close(f"{c} baseline MAE", m["baseline_mae"], np.abs(base - y).mean())
    model_mae.append(np.abs(p - y).mean())
    base_mae.append(np.abs(base - y).mean())
    # The predictions also match what `cbctiq ae` saw as the model's prediction.
    close(f"{c} pred in ae.csv", np.mean([float(ae[(v, c)]["pred"]) for v in test_ids]), p.mean(), 1e-5)
print(f"test MAE per category: model {np.round(model_mae, 3)}, constant mean {np.round(base_mae, 3)}")
if not np.mean(model_mae) < 0.8 * np.mean(base_mae):
    fail(f"model does not beat the constant predictor clearly: {np.mean(model_mae)} vs {np.mean(base_mae)}")


# ---- atypical cases --------------------------------------------------------------------------
def isotonic(x, y, increasing):
    sign = 1.0 if increasing else -1.0
    xs = np.unique(x)
    ys = np.array([sign * y[x == v].mean() for v in xs])
    ws = np.array([(x == v).sum() for v in xs], dtype=float)
    fit = np.array([max(min((ys[j:k + 1] * ws[j:k + 1]).sum() / ws[j:k + 1].sum()
                            for k in range(i, len(xs))) for j in range(i + 1))
                    for i in range(len(xs))])
    return np.array([sign * fit[np.searchsorted(xs, v)] for v in x])


resid = read_csv(os.path.join(out, "atypical", "residuals.csv"))
for c in CATS:
    rows = [r for r in resid if r["category"] == c]
    x = np.array([num(r["consensus"]) for r in rows])
    y = np.array([num(r["ae"]) for r in rows])
    fit = isotonic(x, y, not rhos[c] < 0)
    r = y - fit
    med = np.median(r)
    mad = np.median(np.abs(r - med))
    s = 1.4826 * mad if mad > 0 else 1.2533 * np.abs(r - med).mean()
    zs = (r - med) / s if s > 0 else np.zeros_like(r)
    for row, f, zz in zip(rows, fit, zs):
        close(f"{c} {row['volume_id']} fit", row["fit"], f, 1e-9)
        close(f"{c} {row['volume_id']} robust z", row["robust_z"], zz, 1e-7)
        flagged = "residual" in row["flag"]
        if flagged != (abs(zz) > 3.5 and len(rows) >= 10):  # no flags below 10 volumes
            fail(f"{c} {row['volume_id']}: flag '{row['flag']}' but |z| = {abs(zz)}")

# ---- the report's map figures: which volumes, which slice --------------------------------
labels = json.load(open(os.path.join(cohort, "labels.json")))
shown = read_csv(os.path.join(out, "report", "tables", "maps_shown.csv"))
for c in CATS:
    rows = {r["shown"]: r for r in shown if r["category"] == c}
    order = sorted(test_ids, key=lambda v: -float(ae[(v, c)]["ae"]))
    want = {"highest": order[0], "median": order[(len(order) - 1) // 2], "lowest": order[-1]}
    for role, v in want.items():
        r = rows.get(role)
        if r is None or r["volume_id"] != v:
            fail(f"maps_shown {c} {role}: {r and r['volume_id']}, want {v} (by ae.csv)")
            continue
        close(f"maps_shown {c} {role} ae", r["ae"], ae[(v, c)]["ae"], 1e-7)
        k = int(r["slice"])
        if c == "overall":
            m = np.asarray(nib.load(os.path.join(out, "attrib", "maps", f"{v}_{c}.nii.gz")).dataobj)
            per_slice, by = m.sum(axis=(0, 1)), "map sum"
        else:
            lab = np.asarray(nib.load(os.path.join(cohort, "labels", f"{v}.nii.gz")).dataobj)
            ids = [int(i) for i, name in labels.items() if name.split("_")[0] == c]
            per_slice, by = np.isin(lab, ids).sum(axis=(0, 1)), "structure area"
        # The cohort's k axis already runs inferior to superior, as the
        # canonical one does, so canonical slice k is the file's slice k.
        if per_slice.max() <= 0:
            by = "middle"  # nothing to rank the slices by (e.g. a zero map)
        if r["slice_chosen_by"] != by or not per_slice[k] >= per_slice.max() * (1 - 1e-6):
            fail(f"maps_shown {c} {role} {v}: slice {k} by {r['slice_chosen_by']} has "
                 f"{per_slice[k]}, the largest is {per_slice.max()} (slice {per_slice.argmax()})")
html = open(os.path.join(out, "report", "report.html")).read()
for stem in ["loo_rho"] + [f"{kind}_{c}" for c in CATS for kind in ("maps", "profile")]:
    for ext in ("png", "svg"):
        if not os.path.exists(os.path.join(out, "report", "figures", f"{stem}.{ext}")):
            fail(f"missing figure {stem}.{ext}")
    if f'href="figures/{stem}.png"' not in html:
        fail(f"report.html does not show {stem}")

# ---- sanity checks ---------------------------------------------------------------------------
# Rows: every method x comparison (the permuted-labels model, then each
# cascade step, top layer first) x category; the verdicts' pooled medians in
# pooled.csv; the numbers equal what `cbctiq sanity` gives on the same model,
# permuted model and test volumes (the same slices through another reader).
model = json.load(open(os.path.join(out, "train", "model", "model.json")))
param_layers = [l["name"] for l in model["layers"] if l["type"] in ("conv2d", "linear", "batchnorm2d")]
san = read_csv(os.path.join(out, "sanity", "sanity.csv"))
methods = ["gradcam", "gradxinput"]
want_rows = []
for m in methods:
    want_rows += [(m, "permuted_labels", "0", "(model trained on permuted labels)", c) for c in CATS]
    for s_i, layer in enumerate(reversed(param_layers), 1):
        want_rows += [(m, "cascade", str(s_i), layer, c) for c in CATS]
got_rows = [(r["method"], r["test"], r["step"], r["layer"], r["category"]) for r in san]
if got_rows != want_rows:
    fail(f"sanity.csv rows {got_rows[:6]}... ({len(got_rows)}), want {want_rows[:6]}... ({len(want_rows)})")
for r in san:
    for k in ("median_spearman", "min_spearman", "max_spearman"):
        # empty where every volume's map was constant (a layer's ReLUs all off): rho undefined
        if r[k] != "" and not -1 - 1e-12 <= num(r[k]) <= 1 + 1e-12:
            fail(f"sanity.csv {r['method']} step {r['step']} {r['category']}: {k} = {r[k]}")
    if int(r["n_volumes"]) != len(test_ids) or num(r["threshold"]) != 0.5:
        fail(f"sanity.csv row {r}")
pooled = read_csv(os.path.join(out, "sanity", "pooled.csv"))
want_pooled = []
for w in want_rows:
    if w[:3] not in want_pooled:
        want_pooled.append(w[:3])
if [(p["method"], p["test"], p["step"]) for p in pooled] != want_pooled:
    fail(f"pooled.csv rows {[(p['method'], p['test'], p['step']) for p in pooled]}")
last = {(p["method"], p["test"]): num(p["median_spearman"]) for p in pooled
        if p["test"] == "permuted_labels" or p["step"] == str(len(param_layers))}
for p in pooled:
    verdict = last[(p["method"], p["test"])]
    if not -1 <= num(p["median_spearman"]) <= 1 or int(p["survives"]) != int(verdict > 0.5):
        fail(f"pooled.csv: {p} (verdict statistic {verdict})")
    mine = [r for r in san if (r["method"], r["test"], r["step"]) == (p["method"], p["test"], p["step"])]
    if any(r["survives"] != p["survives"] for r in mine):
        fail(f"sanity.csv and pooled.csv disagree on {p}")
if not -1 <= last[("gradcam", "cascade")] <= 1:
    fail(f"gradcam's last-step median rho {last[('gradcam', 'cascade')]} is not a correlation")
print(f"sanity: gradcam last-step median rho {last[('gradcam', 'cascade')]:.3f}, "
      f"permuted-labels {last[('gradcam', 'permuted_labels')]:.3f}")
perm_dir = os.path.join(out, "sanity", "permuted_model")
for f in ("model.json", "weights.safetensors", "train_log.csv", "permutation.csv"):
    if not os.path.exists(os.path.join(perm_dir, f)):
        fail(f"missing output sanity/permuted_model/{f}")
perm = read_csv(os.path.join(perm_dir, "permutation.csv"))
for sp in ("train", "val"):
    ids = sorted(v for v, s in split.items() if s == sp)
    if sorted(p["volume_id"] for p in perm if p["split"] == sp) != ids or \
            sorted(p["labels_from"] for p in perm if p["split"] == sp) != ids:
        fail(f"permutation.csv is not a permutation of the {sp} volumes")
cli_csv = os.path.join(work, "sanity_cli.csv")
r = subprocess.run([args.cbctiq, "sanity", "--model", os.path.join(out, "train", "model"), "--cohort",
                    os.path.join(out, "cohort", "cohort.csv"), "--split", "test", "--methods",
                    ",".join(methods), "--max-slices", "4", "--batch", "64", "--permuted-model", perm_dir,
                    "--out", cli_csv, "--threads", "2", "--quiet"], capture_output=True, text=True)
if r.returncode != 0:
    fail(f"cbctiq sanity: {r.stderr}")
elif read_csv(cli_csv) != san:
    fail("the study's sanity.csv differs from `cbctiq sanity` on the same inputs")
if "Sanity checks" not in html or not os.path.exists(os.path.join(out, "report", "figures", "sanity_cascade.png")):
    fail("the report lacks the sanity section or its chart")
shown_pooled = os.path.join(out, "report", "tables", "sanity_pooled.csv")
if not os.path.exists(shown_pooled) or \
        [r["method"] + r["test"] + r["step"] for r in read_csv(shown_pooled)] != \
        [p["method"] + p["test"] + p["step"] for p in pooled]:
    fail("the report's sanity table is not pooled.csv")
# Energy on the structure under randomisation: every category with a
# structure (the simulator labels all four) has the trained model's share in
# [0, 1]; overall has none, empty with its reason; the report's table shows
# sanity.csv's last cascade step and the permuted-labels row.
for r in san:
    tag = f"sanity.csv {r['method']} {r['test']} {r['step']} {r['category']}"
    if r["category"] == "overall":
        if r["energy_trained"] or r["energy_random"] or r["energy_change"] or \
                r["energy_empty_reason"] != "no_structure":
            fail(f"{tag}: overall has no structure, yet energy {r}")
    elif not (r["energy_trained"] and 0 <= num(r["energy_trained"]) <= 1):
        fail(f"{tag}: energy_trained {r['energy_trained']!r} not a share")
    elif r["energy_random"] and abs(num(r["energy_change"]) - (num(r["energy_random"]) - num(r["energy_trained"]))) > 1e-9:
        fail(f"{tag}: energy_change is not random - trained")
shown_energy = os.path.join(out, "report", "tables", "sanity_energy.csv")
shown_e = read_csv(shown_energy) if os.path.exists(shown_energy) else []
want_e = []
for m in methods:
    for c in CATS:
        lastrow = next(r for r in san if (r["method"], r["test"], r["step"], r["category"]) ==
                       (m, "cascade", str(len(param_layers)), c))
        perm_row = next(r for r in san if (r["method"], r["test"], r["category"]) == (m, "permuted_labels", c))
        share = (lambda r, k: f"{num(r[k]):.2f}" if r[k] else f"n/a ({r['energy_empty_reason']})")
        want_e.append([m, c, share(lastrow, "energy_trained"), share(lastrow, "energy_random"),
                       share(perm_row, "energy_random")])
got_e = [[r["method"], r["category"], r["trained"], r["fully randomised"], r["permuted labels"]] for r in shown_e]
if got_e != want_e or "Energy on the structure under randomisation" not in html:
    fail(f"the report's energy table {got_e[:3]} is not sanity.csv's last step {want_e[:3]}")
print("sanity: energy on the structure, trained -> fully randomised: "
      + "; ".join(f"{w[0]} {w[1]} {w[2]} -> {w[3]}" for w in want_e if w[1] in ("parotid", "larynx")))
# The summary above the table never contradicts it: each row's "above
# threshold" is its median rho against sanity.threshold, and the methods the
# summary names as surviving are those whose last step is above.
threshold = config.get("sanity", {}).get("threshold", 0.5)
shown = read_csv(shown_pooled) if os.path.exists(shown_pooled) else []
for row, p in zip(shown, pooled):
    rho = num(p["median_spearman"]) if p["median_spearman"] else math.nan
    want = "undefined" if math.isnan(rho) else "yes" if rho > threshold else "no"
    if row["above threshold"] != want:
        fail(f"sanity table {p['method']} {p['test']} {p['step']}: 'above threshold' "
             f"{row['above threshold']!r} for rho {rho} (threshold {threshold})")
last = {}
for p in pooled:
    if p["test"] == "cascade":
        last[p["method"]] = num(p["median_spearman"]) if p["median_spearman"] else math.nan
surviving = sorted(m for m, rho in last.items() if rho > threshold)
m = re.search(r"Surviving full randomisation \(median rho at the last step above [0-9.]+\):"
              r"\s*([^.;]*)[.;]", html)
named = sorted(w.strip() for w in m.group(1).split(",")) if m else None
if named != (surviving or ["none"]):
    fail(f"the sanity summary names {named} as surviving, the table {surviving}")
# The versions that computed the report, as `cbctiq --version` names them.
versions = subprocess.run([args.cbctiq, "--version"], capture_output=True, text=True).stdout
if "Reproducing these results" not in html:
    fail("the report lacks its reproduction section")
for line in versions.splitlines()[1:]:
    component, version = line.split(None, 1)
    if f"<dt>{component}</dt><dd>{version}</dd>" not in html:
        fail(f"the report does not give the {component} version {version!r}")

for f in ["report/report.html", "report/figures/ae_vs_consensus_parotid.png",
          "report/figures/ae_vs_consensus_parotid.svg", "report/tables/poster_table.csv",
          "train/train_log.csv", "train/model/model.json", "train/model/weights.safetensors"]:
    if not os.path.exists(os.path.join(out, f)):
        fail(f"missing output {f}")

# ---- caching ---------------------------------------------------------------------------------------
before = tree_digest(out)
stdout2, ran, cached = run_study(out, cfg_path)
if ran or len(cached) != 9:
    fail(f"second run reran {ran}")
if tree_digest(out) != before:
    fail("a fully cached rerun changed files")
if stdout2 != stdout:
    fail("a cached rerun printed a different table")

# A changed option reruns its stage and the report, nothing else.
for section, key, value in (("atypical", "mad_threshold", 2.0), ("stats", "bootstrap", 300),
                            ("sanity", "threshold", 0.9)):
    config.setdefault(section, {})[key] = value
    with open(cfg_path, "w") as f:
        json.dump(config, f)
    _, ran, _ = run_study(out, cfg_path)
    # 6 test volumes are below the atypical stage's 10: it flags nothing at
    # any threshold, its outputs stay the same and the report is reused.
    if ran != ([section] if section == "atypical" else [section, "report"]):
        fail(f"changing {section}.{key} reran {ran}")
after = tree_digest(out)
for k, v in before.items():
    if k.startswith(("cohort/", "consensus/", "train/", "evaluate/", "attrib/")) and after.get(k) != v:
        fail(f"{k} changed although its stage did not rerun")

# train.slices = structures: every stage from train on uses exactly the
# slices where the volume's label volume has a structure.
config["train"]["slices"] = "structures"
with open(cfg_path, "w") as f:
    json.dump(config, f)
_, ran, _ = run_study(out, cfg_path)
if ran != ["train", "evaluate", "attrib", "stats", "atypical", "sanity", "report"]:
    fail(f"changing train.slices reran {ran}")
pred_slices = read_csv(os.path.join(out, "evaluate", "pred_slices.csv"))
profile_rows = read_csv(os.path.join(out, "attrib", "profiles.csv"))
for v in test_ids:
    lab = np.asarray(nib.load(os.path.join(cohort, "labels", f"{v}.nii.gz")).dataobj)
    want = sorted(int(k) for k in np.nonzero((lab != 0).any(axis=(0, 1)))[0])
    if not 0 < len(want) < lab.shape[2]:
        fail(f"{v}: the test needs some slices without structures ({len(want)} of {lab.shape[2]})")
    got_pred = sorted({int(r["slice"]) for r in pred_slices if r["volume_id"] == v})
    got_profile = sorted({int(r["slice"]) for r in profile_rows if r["volume_id"] == v})
    if got_pred != want or got_profile != want:
        fail(f"{v}: structure slices {want}, evaluate used {got_pred}, attrib {got_profile}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study end-to-end oracle: all checks passed")
