"""simulate_oracle.py - `cbctiq simulate` end to end on a small grid, checked
with nibabel, numpy and scipy: identical bytes for 1 and 2 threads, files as
formats.md describes them, ratings that follow the latent quality
(Spearman > 0.8 per category) and raters who agree as real ones do
(ICC(2,1) in [0.4, 0.95])."""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
from scipy.stats import spearmanr

CATS = ["parotid", "submandibular", "larynx", "mandible", "overall"]


def run(cbctiq, out, threads, n):
    if os.path.exists(out):
        shutil.rmtree(out)
    cmd = [cbctiq, "simulate", "--out", out, "--volumes", str(n), "--size", "40", "--slices", "20",
           "--spacing", "6", "--seed", "3", "--threads", str(threads), "--quiet"]
    subprocess.run(cmd, check=True)


def icc21(s):
    """Shrout & Fleiss ICC(2,1): two-way random, absolute agreement, single rater."""
    n, k = s.shape
    gm = s.mean()
    msr = k * ((s.mean(1) - gm) ** 2).sum() / (n - 1)
    msc = n * ((s.mean(0) - gm) ** 2).sum() / (k - 1)
    resid = s - s.mean(1, keepdims=True) - s.mean(0, keepdims=True) + gm
    mse = (resid ** 2).sum() / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    n = 16
    d1, d2 = os.path.join(a.workdir, "t1"), os.path.join(a.workdir, "t2")
    run(a.cbctiq, d1, 1, n)
    run(a.cbctiq, d2, 2, n)
    names = sorted(os.listdir(d1))
    assert names == sorted(os.listdir(d2)), "different file lists"
    for f in names:
        with open(os.path.join(d1, f), "rb") as x, open(os.path.join(d2, f), "rb") as y:
            assert x.read() == y.read(), f"{f} differs between 1 and 2 threads"

    rows = list(csv.DictReader(open(os.path.join(d1, "cohort.csv"))))
    assert len(rows) == n
    splits = [r["split"] for r in rows]
    assert splits.count("test") == n // 4 and set(splits) <= {"train", "val", "test"}
    labels = json.load(open(os.path.join(d1, "labels.json")))
    for name in ["parotid_l", "parotid_r", "submandibular_l", "submandibular_r", "larynx", "mandible"]:
        assert name in labels.values(), name
    for r in rows:
        img = nib.load(os.path.join(d1, r["path"]))
        lab = nib.load(os.path.join(d1, r["mask"]))
        assert img.shape == (40, 40, 20) and img.get_data_dtype() == np.int16
        assert lab.shape == img.shape and np.allclose(img.header.get_zooms(), 6.0)
        v = np.asarray(img.dataobj)
        L = np.asarray(lab.dataobj)
        assert v.min() >= -1024 and v.max() <= 3071
        for name in ["parotid_l", "larynx", "mandible"]:
            code = int(next(k for k, x in labels.items() if x == name))
            assert (L == code).sum() > 10, f"{r['volume_id']}: {name} missing"
        # Soft tissue near 0-100 HU, air outside near -1000.
        assert np.median(v[L == int(next(k for k, x in labels.items() if x == "mandible"))]) > 150
        assert np.median(v[0:3, 0:3, :]) < -800

    truth = {r["volume_id"]: r for r in csv.DictReader(open(os.path.join(d1, "truth.csv")))}
    w = {r["rater"]: float(r["weight"]) for r in csv.DictReader(open(os.path.join(d1, "raters.csv")))}
    ratings = list(csv.DictReader(open(os.path.join(d1, "ratings.csv"))))
    ids, raters = sorted(truth), sorted(w)
    assert len(ratings) == n * len(raters) * len(CATS)
    score = {(r["volume_id"], r["rater"], r["category"]): float(r["score"]) for r in ratings}
    wv = np.array([w[k] for k in raters])
    ok = True
    for c in CATS:
        s = np.array([[score[(v, k, c)] for k in raters] for v in ids])
        assert s.min() >= 1 and s.max() <= 5
        cons = s @ wv / wv.sum()
        lat = np.array([float(truth[v][c + "_latent"]) for v in ids])
        rho = spearmanr(lat, cons)[0]
        icc = icc21(s)
        print(f"{c}: Spearman(latent, consensus) = {rho:.3f}, ICC(2,1) = {icc:.3f}, "
              f"latent {lat.min():.2f}..{lat.max():.2f}")
        ok &= rho > 0.8 and 0.4 <= icc <= 0.95
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
