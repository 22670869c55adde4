#!/usr/bin/python3
"""Where does the map point, and does it matter? `cbctiq ae`'s localisation
and faithfulness columns against nibabel/numpy and PyTorch.

- energy_in_structure and pointing_hit recomputed from the NIfTI maps that
  `cbctiq ae --maps` writes and the label masks (1e-6), on a canonical volume
  and on a reoriented, resampled one;
- the deletion/insertion curves (map order and random order) and their AUCs
  recomputed in PyTorch on the same model and slices (1e-4): the blurred
  baseline by reflect-padded separable convolution, the map order by a
  stable argsort, the random order from the documented splitmix64 keys;
- empty cells with their reason: `overall` (no structure), a model whose
  maps are zero everywhere, and --perturbation none."""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import Net, read_safetensors, write_safetensors  # noqa: E402

failures = []
STEPS = 20
NEW = ["energy_in_structure", "pointing_hit", "deletion_auc", "insertion_auc", "deletion_auc_random",
       "insertion_auc_random"]


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


def close(name, got, want, rel=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
    check(name, err <= rel, f"rel err {err:.2e}")


def run(cmd, expect_rc=0):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != expect_rc:
        print(p.stdout, p.stderr)
    return p


M64 = (1 << 64) - 1


def splitmix64(z):
    """The documented random key, on numpy uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(M64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def random_order(seed, slice_index, hw):
    base = splitmix64(np.array([seed], np.uint64))[0]
    with np.errstate(over="ignore"):
        keys = splitmix64(base + np.uint64(slice_index << 32) + np.arange(hw, dtype=np.uint64))
    return np.argsort(keys, kind="stable")


def blurred(x, sigma):
    """Gaussian blur of slices [n, C, H, W], each channel alone: radius ceil(3 sigma), mirror border."""
    r = min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1)
    d = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * d * d / sigma ** 2)
    k = torch.from_numpy(k / k.sum())
    t = torch.from_numpy(x).double().reshape(-1, 1, *x.shape[-2:])
    t = F.pad(t, (r, r, r, r), mode="reflect")
    t = F.conv2d(t, k.view(1, 1, 1, -1))
    t = F.conv2d(t, k.view(1, 1, -1, 1))
    return t.float().numpy().reshape(x.shape)


def torch_curves(net, x, base, orders, c):
    """Mean score of output c over the slices at each step, deleting (from
    the baseline) and inserting (into it) the pixels in the given orders, a
    pixel in every channel at once."""
    n, hw = x.shape[0], x.shape[2] * x.shape[3]
    flat_x, flat_b = x.reshape(n, x.shape[1], hw), base.reshape(n, x.shape[1], hw)
    dele, ins = [], []
    for t in range(STEPS + 1):
        m = t * hw // STEPS
        d, i = flat_x.copy(), flat_b.copy()
        for s in range(n):
            top = orders[s][:m]
            d[s, :, top] = flat_b[s, :, top]
            i[s, :, top] = flat_x[s, :, top]
        for img, out in ((d, dele), (i, ins)):
            with torch.no_grad():
                y, _ = net.forward_layers(torch.from_numpy(img.reshape(x.shape)))
            out.append(y[:, c].double().mean().item())
    return np.array(dele), np.array(ins)


def auc(curve, orig, base):
    norm = (curve - base) / (orig - base)
    return float(((norm[:-1] + norm[1:]) / 2).sum() / STEPS)


def check_energy(tag, rows, mapdir, vid, mask_of):
    for r in rows:
        m = np.asarray(nib.load(os.path.join(mapdir, f"{vid}_{r['category']}.nii.gz")).dataobj).astype(np.float64)
        mask = mask_of(r["category"])
        if mask is None:
            check(f"{tag} {r['category']}: no structure -> empty energy and hit, with its reason",
                  r["energy_in_structure"] == "" and r["pointing_hit"] == ""
                  and "no_structure" in r["empty_reason"].split(";"), r["empty_reason"])
            continue
        close(f"{tag} {r['category']}: energy_in_structure = nibabel map x mask / map",
              float(r["energy_in_structure"]), (m * mask).sum() / m.sum(), 1e-6)
        hit = int(m[mask].max() == m.max())
        check(f"{tag} {r['category']}: pointing_hit = map maximum inside the mask", int(r["pointing_hit"]) == hit,
              f"{r['pointing_hit']} vs {hit}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    wd = a.workdir
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    torch.set_num_threads(1)
    model = os.path.join(wd, "model")
    subprocess.run([a.cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "3",
                    "--input", "32", "--seed", "9", "--out", model, "--quiet"], check=True)
    net = Net(model)
    cats = net.spec["outputs"]
    rng = np.random.default_rng(11)

    # v1: 32 x 32 x 6, canonical: its slices reach the net unresampled
    hu = rng.normal(0, 400, (32, 32, 6)).astype(np.float32)
    hu[8:20, 10:24, :] += 600  # a bright block, so that maps have somewhere to point
    aff = np.diag([-0.8, -0.8, 2.0, 1.0])
    nib.save(nib.Nifti1Image(hu, aff), os.path.join(wd, "v1.nii.gz"))
    lab = np.zeros(hu.shape, np.int16)
    lab[4:12, 6:20, :] = 1    # parotid_l
    lab[20:28, 6:20, 2:] = 2  # parotid_r
    lab[10:22, 22:30, :] = 5  # larynx
    lab[14:18, 2:8, 1:5] = 4  # mandible
    nib.save(nib.Nifti1Image(lab, aff), os.path.join(wd, "lab1.nii.gz"))
    # v2: 45 x 40 x 4, RAS-ordered: reoriented and resampled on the way in
    hu2 = rng.normal(-200, 300, (45, 40, 4)).astype(np.float32)
    aff2 = np.diag([0.7, 0.75, 2.5, 1.0])
    nib.save(nib.Nifti1Image(hu2, aff2), os.path.join(wd, "v2.nii.gz"))
    lab2 = np.zeros(hu2.shape, np.int16)
    lab2[5:25, 10:30, :] = 5
    lab2[28:40, 2:15, 1:] = 1
    nib.save(nib.Nifti1Image(lab2, aff2), os.path.join(wd, "lab2.nii.gz"))
    with open(os.path.join(wd, "labels.json"), "w") as f:
        json.dump({"1": "parotid_l", "2": "parotid_r", "4": "mandible", "5": "larynx"}, f)
    with open(os.path.join(wd, "cohort.csv"), "w") as f:
        f.write("volume_id,path,mask\nv1,v1.nii.gz,lab1.nii.gz\nv2,v2.nii.gz,lab2.nii.gz\n")

    aecsv, curves, mapdir = (os.path.join(wd, n) for n in ("ae.csv", "curves.csv", "maps"))
    seed = 987654321987
    p = run([a.cbctiq, "ae", "--model", model, "--cohort", os.path.join(wd, "cohort.csv"), "--out", aecsv,
             "--curves", curves, "--maps", mapdir, "--curve-slices", "0", "--seed", str(seed),
             "--threads", "1", "--batch", "7", "--quiet"])
    check("ae --curves --maps exit 0", p.returncode == 0, p.stderr.strip()[:300])
    rows = list(csv.DictReader(open(aecsv)))
    for col in NEW + ["perturbation", "perturb_seed", "curve_slices", "empty_reason"]:
        check(f"ae.csv has column {col}", col in rows[0])

    # --- localisation, from the written maps and masks
    struct_labels = {"parotid": [1, 2], "submandibular": [3], "larynx": [5], "mandible": [4]}

    def masks(labels):
        return lambda cat: np.isin(labels, struct_labels[cat]) if cat in struct_labels and np.isin(
            labels, struct_labels[cat]).any() else None
    check_energy("v1", [r for r in rows if r["volume_id"] == "v1"], mapdir, "v1", masks(lab))
    check_energy("v2 (reoriented, resampled)", [r for r in rows if r["volume_id"] == "v2"], mapdir, "v2", masks(lab2))
    hits = [int(r["pointing_hit"]) for r in rows if r["pointing_hit"] != ""]
    check("pointing_hit is 0 or 1", all(h in (0, 1) for h in hits) and len(hits) > 0)

    # --- the curves of v1, redone in PyTorch from the written maps
    x = np.clip((hu + 1000.0) / 2000.0, 0, 1).astype(np.float32)
    x = np.transpose(x, (2, 1, 0))[:, None].copy()  # [k, 1, j, i]
    n, hw = x.shape[0], 32 * 32
    base = blurred(x, 32 / 16)
    with torch.no_grad():
        y0, _ = net.forward_layers(torch.from_numpy(x))
    rnd = [random_order(seed, s, hw) for s in range(n)]
    crow = list(csv.DictReader(open(curves)))

    def curve(cat, order, kind, col="score"):
        got = [r for r in crow if r["volume_id"] == "v1" and r["category"] == cat and r["order"] == order
               and r["curve"] == kind]
        return np.array([float(r[col]) for r in sorted(got, key=lambda r: int(r["step"]))])
    for r in (r for r in rows if r["volume_id"] == "v1"):
        cat = r["category"]
        c = cats.index(cat)
        m = np.transpose(np.asarray(nib.load(os.path.join(mapdir, f"v1_{cat}.nii.gz")).dataobj), (2, 1, 0))
        orders = [np.argsort(-m[s].reshape(-1).astype(np.float64), kind="stable") for s in range(n)]
        d, i = torch_curves(net, x, base, orders, c)
        dr, ir = torch_curves(net, x, base, rnd, c)
        close(f"v1 {cat}: deletion curve (map order) = PyTorch", curve(cat, "map", "deletion"), d)
        close(f"v1 {cat}: insertion curve (map order) = PyTorch", curve(cat, "map", "insertion"), i)
        close(f"v1 {cat}: deletion curve (random order) = PyTorch", curve(cat, "random", "deletion"), dr)
        close(f"v1 {cat}: insertion curve (random order) = PyTorch", curve(cat, "random", "insertion"), ir)
        close(f"v1 {cat}: curve starts at the model's score", d[0], y0[:, c].double().mean().item(), 1e-5)
        orig, b = d[0], d[-1]
        for col, want in (("deletion_auc", auc(d, orig, b)), ("insertion_auc", auc(i, orig, b)),
                          ("deletion_auc_random", auc(dr, orig, b)), ("insertion_auc_random", auc(ir, orig, b))):
            # an AUC is a mean of (score - baseline) / (original - baseline): its error scales with the curve's
            scale = np.abs((d - b) / (orig - b)).max()
            check(f"v1 {cat}: {col} = PyTorch", abs(float(r[col]) - want) <= 1e-4 * max(scale, 1.0),
                  f"{r[col]} vs {want:.6g}")
        close(f"v1 {cat}: normalised column", curve(cat, "map", "deletion", "normalised"), (d - b) / (orig - b))
        check(f"v1 {cat}: perturbation, seed and slices columns",
              r["perturbation"] == "blur" and r["perturb_seed"] == str(seed) and r["curve_slices"] == "6",
              f"{r['perturbation']} {r['perturb_seed']} {r['curve_slices']}")

    # --- --perturbation none: no curves, the reason says so
    nonecsv = os.path.join(wd, "ae_none.csv")
    p = run([a.cbctiq, "ae", "--model", model, "--cohort", os.path.join(wd, "cohort.csv"), "--out", nonecsv,
             "--perturbation", "none", "--threads", "1", "--quiet"])
    nrows = list(csv.DictReader(open(nonecsv))) if p.returncode == 0 else []
    check("--perturbation none: AUCs empty with reason no_curves, energy still there",
          len(nrows) == 2 * len(cats) and all(r["deletion_auc"] == "" and "no_curves" in r["empty_reason"]
                                              for r in nrows)
          and all(r["energy_in_structure"] != "" for r in nrows if r["category"] == "larynx"))
    # --- road: runs, and its curves still start at the model's score
    roadcurves = os.path.join(wd, "curves_road.csv")
    p = run([a.cbctiq, "ae", "--model", model, "--cohort", os.path.join(wd, "cohort.csv"), "--out",
             os.path.join(wd, "ae_road.csv"), "--perturbation", "road", "--curve-slices", "1", "--curves", roadcurves,
             "--threads", "1", "--quiet"])
    check("--perturbation road exit 0", p.returncode == 0, p.stderr.strip()[:200])
    if p.returncode == 0:
        rr = [r for r in csv.DictReader(open(roadcurves)) if r["volume_id"] == "v1" and r["category"] == "larynx"
              and r["curve"] == "deletion" and r["order"] == "map"]
        xs = x[[3]]  # the middle one of 6 slices
        with torch.no_grad():
            ys, _ = net.forward_layers(torch.from_numpy(xs))
        close("road: deletion starts at the score of the curve slice", float(rr[0]["score"]),
              ys[:, cats.index("larynx")].double().mean().item(), 1e-5)

    # --- a model whose maps are zero everywhere (a zero head): every new cell empty, reason zero_map
    zmodel = os.path.join(wd, "zero_model")
    shutil.copytree(model, zmodel)
    w = read_safetensors(os.path.join(zmodel, "weights.safetensors"))
    w["head.weight"] = np.zeros_like(w["head.weight"])
    write_safetensors(os.path.join(zmodel, "weights.safetensors"), w)
    zcsv = os.path.join(wd, "ae_zero.csv")
    p = run([a.cbctiq, "ae", "--model", zmodel, "--cohort", os.path.join(wd, "cohort.csv"), "--out", zcsv,
             "--threads", "1", "--quiet"])
    check("zero model: exit 0", p.returncode == 0, p.stderr.strip()[:200])
    if p.returncode == 0:
        zrows = list(csv.DictReader(open(zcsv)))
        check("zero map: all six cells empty, reason zero_map",
              all(all(r[c] == "" for c in NEW) and "zero_map" in r["empty_reason"].split(";") for r in zrows),
              str([(r["category"], r["empty_reason"]) for r in zrows][:3]))
    filled = [r for r in rows if r["volume_id"] == "v1" and r["category"] == "larynx"]
    check("a fully computed row has no empty reason", filled and filled[0]["empty_reason"] == "",
          filled[0]["empty_reason"] if filled else "")

    if failures:
        print(f"{len(failures)} checks failed: {failures[:6]}")
        return 1
    print("all pointing checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
