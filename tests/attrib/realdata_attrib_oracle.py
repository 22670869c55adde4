#!/usr/bin/python3
"""`cbctiq ae` and `cbctiq gradcam` on real head-and-neck CTs (OpenKBP) and a
real scanner DICOM series (phantom), from the repository's fixture
(tests/data), against an independent computation: PyTorch on the same weights
(torch_model.py) for every number, nibabel and pydicom for every grid.

- OpenKBP: each CT's slices are 128 x 128 in the canonical orientation, the
  model input, so they reach the network unresampled and PyTorch redoes the
  whole pipeline from nibabel's voxels: window, Grad-CAM per slice on the
  target layer, bilinear upsampling. ae.csv's ae, pred, pred_minus_bias_sum,
  ae_feature_pre/post and the structure energies of the real organ labels
  (parotid = parotid_l + parotid_r, larynx, mandible) must equal PyTorch's
  sums; the gradcam NIfTI must equal PyTorch's map voxel for voxel, on the
  CT's own affine as nibabel reads it.
- The DICOM series (512 x 512, 3 slices): PyTorch redoes the slicer too
  (window, 4 x 4 area average to 128, and back by bilinear upsampling) from
  pydicom's voxels; the map must equal it, on the affine pydicom's headers
  give."""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "io"))
from torch_model import Net  # noqa: E402
import dicomgen  # noqa: E402

VOLUMES = ["openkbp_test_pt_245", "openkbp_train_pt_132"]
DICOM_SERIES = os.path.join("hn_phantom_ct", "dicom_mandible_3")
STRUCTURES = {"parotid": ("parotid_l", "parotid_r"), "larynx": ("larynx",), "mandible": ("mandible",)}

failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


def close(name, got, want, rel=1e-4, scale=None):
    """|got - want| within rel of scale (default: the largest |want|)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.abs(want).max() if scale is None else scale
    err = np.abs(got - want).max() / max(scale, 1e-12)
    check(name, err <= rel, f"rel err {err:.2e}")


def torch_gradcam(net, x, out_size):
    """Grad-CAM of every output at the model's target layer for the batch of
    slices x [n, 1, H, W]: (maps upsampled to out_size [n_out, n, h, w],
    outputs y [n, n_out], per-output sums of the signed and of the ReLU'd
    feature-grid maps)."""
    cams, y = net.gradcam_feature_maps(x)
    maps, pre, post = [], [], []
    for cam in cams:
        pre.append(cam.double().sum().item())
        post.append(F.relu(cam).double().sum().item())
        up = F.relu(cam)[:, None]
        for size in out_size:  # the model input first, then the source grid when it differs
            up = F.interpolate(up, size=size, mode="bilinear", align_corners=False)
        maps.append(up[:, 0].numpy())
    return np.stack(maps), y, pre, post


def window(net, hu):
    lo, hi = net.spec["input"]["hu_min"], net.spec["input"]["hu_max"]
    return np.clip((hu.astype(np.float64) - lo) / (hi - lo), 0, 1).astype(np.float32)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
    return p


def check_ae_rows(net, rows, vid, ct_path, lab_path, labels):
    """ae.csv's rows of one OpenKBP volume against PyTorch; returns PyTorch's maps."""
    hu = np.asarray(nib.load(ct_path).dataobj)                  # [i, j, k]
    x = window(net, np.transpose(hu, (2, 1, 0)))[:, None].copy()  # [k, 1, j, i]
    hw = tuple(x.shape[-2:])
    maps, y, pre, post = torch_gradcam(net, x, [hw])
    lab = np.transpose(np.asarray(nib.load(lab_path).dataobj), (2, 1, 0))
    codes = {name: int(code) for code, name in labels.items()}
    bias = net.t["head.bias"].double().numpy()
    cats = net.spec["outputs"]
    mine = {r["category"]: r for r in rows if r["volume_id"] == vid}
    check(f"{vid}: one row per category", sorted(mine) == sorted(cats), str(sorted(mine)))
    for cat, r in mine.items():
        c = cats.index(cat)
        terms = np.abs(y[:, c] - bias[c]).sum()  # the size of what pred_part sums
        close(f"{vid} {cat}: ae = PyTorch", float(r["ae"]), maps[c].astype(np.float64).sum())
        close(f"{vid} {cat}: pred = PyTorch", float(r["pred"]), y[:, c].mean(), 1e-5, np.abs(y[:, c]).mean())
        close(f"{vid} {cat}: pred_part = PyTorch sum(y - b)", float(r["pred_minus_bias_sum"]),
              (y[:, c] - bias[c]).sum(), 1e-5, terms)
        close(f"{vid} {cat}: ae_feature_pre = PyTorch", float(r["ae_feature_pre"]), pre[c], 1e-4, terms)
        close(f"{vid} {cat}: ae_feature_post = PyTorch", float(r["ae_feature_post"]), post[c])
        check(f"{vid} {cat}: n_slices", r["n_slices"] == str(x.shape[0]), r["n_slices"])
        check(f"{vid} {cat}: identity ae_feature_pre = pred_part",
              abs(float(r["ae_feature_pre"]) - float(r["pred_minus_bias_sum"])) <= 1e-4 * max(terms, 1e-3))
        if cat in STRUCTURES:
            inside = (maps[c] * np.isin(lab, [codes[n] for n in STRUCTURES[cat]])).astype(np.float64).sum()
            close(f"{vid} {cat}: ae_in_structure = PyTorch map over the labels", float(r["ae_in_structure"]),
                  inside, 1e-4, abs(float(r["ae"])))
            close(f"{vid} {cat}: structure_fraction", float(r["structure_fraction"]),
                  inside / maps[c].astype(np.float64).sum(), 1e-4, 1.0)
        else:
            check(f"{vid} {cat}: no structure -> empty", r["ae_in_structure"] == "")
    return maps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data", required=True, help="the fixture folder (tests/data)")
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)  # no stale output can pass for a new one
    os.makedirs(a.workdir)
    torch.set_num_threads(1)
    data = os.path.abspath(a.data)  # cohort.csv paths are read relative to its own folder
    kbp = os.path.join(data, "openkbp_hn_ct")
    model = os.path.join(a.workdir, "model")
    subprocess.run([a.cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--seed", "3",
                    "--out", model, "--quiet"], check=True)
    net = Net(model)
    cats = net.spec["outputs"]
    with open(os.path.join(kbp, "labels.json")) as f:
        labels = json.load(f)

    cohort = os.path.join(a.workdir, "cohort.csv")
    with open(cohort, "w") as f:
        f.write("volume_id,path,mask,split\n")
        for v in VOLUMES:
            f.write(f"{v},{kbp}/{v}/ct.nii.gz,{kbp}/{v}/oar_labels.nii.gz,test\n")
    out = os.path.join(a.workdir, "ae.csv")
    p = run([a.cbctiq, "ae", "--model", model, "--cohort", cohort, "--out", out, "--threads", "1", "--quiet"])
    check("ae on real CTs: exit 0", p.returncode == 0, p.stderr.strip()[:300])
    rows = list(csv.DictReader(open(out))) if p.returncode == 0 else []
    check(f"rows: {len(VOLUMES)} volumes x {len(cats)} categories", len(rows) == len(VOLUMES) * len(cats))
    torch_maps = {}
    for v in VOLUMES:
        torch_maps[v] = check_ae_rows(net, rows, v, os.path.join(kbp, v, "ct.nii.gz"),
                                      os.path.join(kbp, v, "oar_labels.nii.gz"), labels)

    # one volume's larynx map as a NIfTI: PyTorch's map, on the CT's grid
    vid = VOLUMES[0]
    ct = os.path.join(kbp, vid, "ct.nii.gz")
    mp = os.path.join(a.workdir, "larynx.nii.gz")
    p = run([a.cbctiq, "gradcam", "--model", model, "--category", "larynx", ct, "--out", mp, "--quiet"])
    check("gradcam on a real CT: exit 0", p.returncode == 0, p.stderr.strip()[:300])
    if p.returncode == 0:
        m, c = nib.load(mp), nib.load(ct)
        check("map affine and shape = the CT's (nibabel)", np.array_equal(m.affine, c.affine) and m.shape == c.shape)
        voxels = np.asarray(m.dataobj, np.float64)
        close("gradcam NIfTI = PyTorch map, voxel for voxel", np.transpose(voxels, (2, 1, 0)),
              torch_maps[vid][cats.index("larynx")])

    # a real scanner DICOM series: resampled to the model input and back
    series = os.path.join(data, DICOM_SERIES)
    hu, ras, _ = dicomgen.read_back(series)                     # [i, j, k], pydicom
    mp2 = os.path.join(a.workdir, "phantom.nii.gz")
    p = run([a.cbctiq, "gradcam", "--model", model, "--category", "mandible", series, "--out", mp2, "--quiet"])
    check("gradcam on a DICOM series: exit 0", p.returncode == 0, p.stderr.strip()[:300])
    if p.returncode == 0:
        m2 = nib.load(mp2)
        check("DICOM: map affine and shape = pydicom's", np.allclose(m2.affine, ras, atol=1e-4)
              and m2.shape == hu.shape, f"{m2.shape} {hu.shape}")
        src = window(net, np.transpose(hu, (2, 1, 0)))[:, None]  # [k, 1, row, column]
        size = (net.spec["input"]["height"], net.spec["input"]["width"])
        # the slicer's area average is a plain block mean when the factor is an integer (512 -> 128)
        check("DICOM: slices shrink by an integer factor", all(n % m == 0 for n, m in zip(src.shape[-2:], size)))
        x = F.adaptive_avg_pool2d(torch.from_numpy(src), size).numpy()
        maps, _, _, _ = torch_gradcam(net, x, [size, src.shape[-2:]])
        close("DICOM: gradcam NIfTI = PyTorch map (window, area average, net, upsampling)",
              np.transpose(np.asarray(m2.dataobj, np.float64), (2, 1, 0)), maps[cats.index("mandible")])
    if failures:
        print(f"{len(failures)} checks failed: {failures[:6]}")
        return 1
    print("all real-data checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
