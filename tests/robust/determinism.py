#!/usr/bin/python3
"""determinism.py - the same seed gives the same bytes, and the thread count
changes results by at most float32 summation order.

Byte-identical across two runs (and across --threads 1 and 2 where the
command promises it): simulate (every CSV/JSON and NIfTI it writes),
consensus, agreement, correlate (JSON and CSV, with bootstrap and
permutations), model init (model.json and weights.safetensors), ae.csv.
Thread count: predict's pred.csv and gradcam's map and printed AE with
--threads 1 and 2 must agree within REL_TOL of the largest magnitude (float32
has 24-bit mantissas; a different split of the same sums may move the last
few bits of a sum of ~1e4 terms, far below 1e-5)."""
import argparse
import csv
import filecmp
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np

REL_TOL = 1e-5

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
W = args.workdir
failures = []


def run(*cmd):
    r = subprocess.run([args.cbctiq, *cmd], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        print(f"FAIL cbctiq {' '.join(cmd)}: exit {r.returncode}\n{r.stderr[-2000:]}")
        sys.exit(1)
    return r.stdout


def same_files(a, b, what, pattern=None):
    names = sorted(os.listdir(a))
    if names != sorted(os.listdir(b)):
        failures.append(f"{what}: different file lists {names} / {sorted(os.listdir(b))}")
        return
    for n in names:
        if pattern and not n.endswith(pattern):
            continue
        pa, pb = os.path.join(a, n), os.path.join(b, n)
        if os.path.isfile(pa) and not filecmp.cmp(pa, pb, shallow=False):
            failures.append(f"{what}: {n} differs")


def close(x, y, what):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    scale = max(np.max(np.abs(x)), np.max(np.abs(y)), 1e-30)
    diff = np.max(np.abs(x - y)) if x.size else 0.0
    print(f"{what}: max |1 thread - 2 threads| = {diff:.3g} ({diff / scale:.3g} of max)")
    if x.shape != y.shape or not diff <= REL_TOL * scale:
        failures.append(f"{what}: thread counts differ by {diff:.3g} (scale {scale:.3g})")


# simulate: twice with 1 thread, once with 2; every file identical.
sims = {}
for tag, threads in (("a", "1"), ("b", "1"), ("c", "2")):
    d = os.path.join(W, f"sim_{tag}")
    run("simulate", "--out", d, "--volumes", "3", "--size", "32", "--slices", "24", "--spacing", "4",
        "--raters", "3", "--test", "1", "--seed", "7", "--threads", threads, "--quiet")
    sims[tag] = d
same_files(sims["a"], sims["b"], "simulate run 1 vs run 2")
same_files(sims["a"], sims["c"], "simulate --threads 1 vs 2")
sim = sims["a"]
ratings, raters = os.path.join(sim, "ratings.csv"), os.path.join(sim, "raters.csv")

# consensus and agreement, twice each.
for tag in ("a", "b"):
    d = os.path.join(W, f"stats_{tag}")
    os.makedirs(d)
    run("consensus", "--ratings", ratings, "--raters", raters, "--out", os.path.join(d, "consensus.csv"))
    run("agreement", "--ratings", ratings, "--raters", raters, "--out", os.path.join(d, "agreement.csv"),
        "--json", os.path.join(d, "agreement.json"))
same_files(os.path.join(W, "stats_a"), os.path.join(W, "stats_b"), "consensus/agreement")

# model init twice from one seed.
for tag in ("a", "b"):
    run("model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "2", "--input", "32",
        "--seed", "3", "--quiet", "--out", os.path.join(W, f"model_{tag}"))
same_files(os.path.join(W, "model_a"), os.path.join(W, "model_b"), "model init")
model = os.path.join(W, "model_a")

# ae twice with 2 threads (bytes), and 1 thread (values within tolerance).
cohort = os.path.join(sim, "cohort.csv")
for tag, threads in (("a", "2"), ("b", "2"), ("c", "1")):
    d = os.path.join(W, f"ae_{tag}")
    os.makedirs(d)
    run("ae", "--model", model, "--cohort", cohort, "--out", os.path.join(d, "ae.csv"),
        "--threads", threads, "--quiet")
same_files(os.path.join(W, "ae_a"), os.path.join(W, "ae_b"), "ae")


def column(path, name):
    with open(path, newline="") as f:
        return [float(r[name]) for r in csv.DictReader(f)]


close(column(os.path.join(W, "ae_a", "ae.csv"), "ae"), column(os.path.join(W, "ae_c", "ae.csv"), "ae"),
      "ae")

# correlate ae against consensus twice (bootstrap + permutations from --seed).
cons = os.path.join(W, "stats_a", "consensus.csv")
for tag in ("a", "b"):
    d = os.path.join(W, f"corr_{tag}")
    os.makedirs(d)
    run("correlate", "--x", os.path.join(W, "ae_a", "ae.csv") + ":ae", "--y", cons + ":consensus",
        "--out", os.path.join(d, "stats.json"), "--csv", os.path.join(d, "stats.csv"),
        "--seed", "11", "--n-boot", "200", "--n-perm", "200", "--threads", "2", "--quiet")
same_files(os.path.join(W, "corr_a"), os.path.join(W, "corr_b"), "correlate")

# predict and gradcam: 1 vs 2 threads within REL_TOL.
vol = os.path.join(sim, sorted(n for n in os.listdir(sim) if n.endswith(".nii.gz") and "labels" not in n)[0])
preds, maps = {}, {}
for threads in ("1", "2"):
    p = os.path.join(W, f"pred_{threads}.csv")
    run("predict", "--model", model, "--out", p, "--per-slice", "--threads", threads, "--quiet", vol)
    preds[threads] = column(p, "pred")
    m = os.path.join(W, f"map_{threads}.nii.gz")
    run("gradcam", "--model", model, "--category", "overall", vol, "--out", m, "--threads", threads,
        "--quiet")
    maps[threads] = np.asarray(nib.load(m).dataobj, dtype=np.float64)
close(preds["1"], preds["2"], "predict")
close(maps["1"], maps["2"], "gradcam map")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("determinism: all outputs identical or within tolerance")
