#!/usr/bin/python3
"""End-to-end checks of `cbctiq gradcam` and `cbctiq ae` against PyTorch and
nibabel.

A volume whose slices already have the model's input size and canonical
orientation (affine diag(-dx, -dy, dz): i towards patient left, j towards
posterior) reaches the network unresampled, so PyTorch can recompute its
whole pipeline: window, Grad-CAM per slice, bilinear upsampling; the NIfTI
map must equal it voxel for voxel (1e-4 of the map's maximum) and carry the
CT's affine; ae.csv's AE, structure energy and identity columns must equal
PyTorch's sums. A second, resampled volume checks geometry and the
identity; bad inputs must fail with clear messages."""
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import Net  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from cli_check import run_problems  # noqa: E402

failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


def close(name, got, want, rel=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
    check(name, err <= rel, f"rel err {err:.2e}")


def torch_gradcam(net, x, sign=1):
    """Grad-CAM of every output (of sign * y with --sign neg) at the model's
    target layer: upsampled post-ReLU maps [n_out, n, H, W], predictions, the
    pre-ReLU feature-grid sums and the post-ReLU feature maps [n_out, n, h, w]."""
    cams, y = net.gradcam_feature_maps(x, sign)
    maps, pre_sums, fmaps = [], [], []
    for cam in cams:
        pre_sums.append(cam.double().sum().item())
        fmaps.append(F.relu(cam).numpy())
        up = F.interpolate(F.relu(cam)[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
        maps.append(up[:, 0].numpy())
    return np.stack(maps), y, pre_sums, np.stack(fmaps)


def check_v1_columns(r, c, maps, fmaps, pre_sums, y, bias, sign):
    """Every number of an ae.csv row of v1 against PyTorch's maps (sign: the
    run's --sign). v1's 6 slices reach the net unresampled."""
    tag = f"v1 {r['category']} sign {sign:+d}"
    ae = maps[c].astype(np.float64).sum()
    post = fmaps[c].astype(np.float64).sum()
    pred_part = sign * (y[:, c].astype(np.float64) - bias[c]).sum()
    close(f"{tag} ae = PyTorch input-grid sum", float(r["ae"]), ae)
    close(f"{tag} ae_selected = ae (grid input, aggregate sum)", float(r["ae_selected"]), ae)
    close(f"{tag} ae_feature = PyTorch post-ReLU feature-grid sum", float(r["ae_feature"]), post)
    close(f"{tag} ae_feature_post = PyTorch post-ReLU feature-grid sum", float(r["ae_feature_post"]), post)
    close(f"{tag} ae_feature_pre = PyTorch pre-ReLU sum", float(r["ae_feature_pre"]), pre_sums[c])
    scale = max(abs(post), abs(pre_sums[c]))  # a difference: its error is relative to its parts
    check(f"{tag} clipped = PyTorch post - pre", abs(float(r["ae_clipped"]) - (post - pre_sums[c])) <= 1e-4 * scale,
          f"{r['ae_clipped']} vs {post - pre_sums[c]:.6g}")
    close(f"{tag} pred_part = sign * sum(y - b)", float(r["pred_minus_bias_sum"]), pred_part, 1e-5)
    close(f"{tag} ae_per_slice = PyTorch sum / 6", float(r["ae_per_slice"]), ae / 6)
    close(f"{tag} bias = head.bias", float(r["bias"]), bias[c], 1e-7)
    check(f"{tag} n_slices", r["n_slices"] == "6", r["n_slices"])
    check(f"{tag} sign column", r["sign"] == ("pos" if sign > 0 else "neg"), r["sign"])


# Under the sanitizer build: fontconfig's process-lifetime cache is not a leak of ours.
ENV = dict(os.environ, LSAN_OPTIONS="suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp"))


def run(cmd, expect_rc=0):
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if p.returncode != expect_rc:
        print(p.stdout, p.stderr)
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    wd = a.workdir
    # an empty folder: an output left by an earlier run must not stand in for this run's
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    torch.set_num_threads(1)
    model = os.path.join(wd, "model")
    subprocess.run([a.cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "3",
                    "--input", "32", "--seed", "9", "--out", model, "--quiet"], check=True)
    net = Net(model)
    cats = net.spec["outputs"]
    rng = np.random.default_rng(3)

    # volume 1: 32 x 32 x 6, canonical, no resampling
    hu = rng.normal(0, 400, (32, 32, 6)).astype(np.float32)
    aff = np.diag([-0.8, -0.8, 2.0, 1.0])
    aff[:3, 3] = [12.5, -7.0, 40.0]
    nib.save(nib.Nifti1Image(hu, aff), os.path.join(wd, "v1.nii.gz"))
    lab = np.zeros(hu.shape, np.int16)
    lab[4:12, 6:20, :] = 1   # parotid_l
    lab[20:28, 6:20, 2:] = 2  # parotid_r
    lab[10:22, 22:30, :] = 5  # larynx
    nib.save(nib.Nifti1Image(lab, aff), os.path.join(wd, "lab1.nii.gz"))
    with open(os.path.join(wd, "labels.json"), "w") as f:
        json.dump({"1": "parotid_l", "2": "parotid_r", "5": "larynx"}, f)
    # volume 2: 45 x 40 x 4, RAS-ordered (reoriented and resampled inside)
    hu2 = rng.normal(-200, 300, (45, 40, 4)).astype(np.float32)
    aff2 = np.diag([0.7, 0.75, 2.5, 1.0])
    nib.save(nib.Nifti1Image(hu2, aff2), os.path.join(wd, "v2.nii.gz"))
    with open(os.path.join(wd, "cohort.csv"), "w") as f:
        f.write("volume_id,path,mask,split\nv1,v1.nii.gz,lab1.nii.gz,test\nv2,v2.nii.gz,,test\nv3,nope.nii.gz,,train\n")

    # --- the pipeline PyTorch can redo exactly
    x = np.clip((hu + 1000.0) / 2000.0, 0, 1).astype(np.float32)
    x = np.transpose(x, (2, 1, 0))[:, None].copy()  # [k, 1, j, i]
    maps, y, pre_sums, fmaps = torch_gradcam(net, x)

    out = os.path.join(wd, "map_larynx.nii.gz")
    p = run([a.cbctiq, "gradcam", "--model", model, "--category", "larynx", os.path.join(wd, "v1.nii.gz"),
             "--out", out, "--png", os.path.join(wd, "png"), "--slices", "0,5", "--quiet"])
    check("gradcam exit 0", p.returncode == 0)
    img = nib.load(out)
    check("map affine equals the CT's", np.array_equal(img.affine, nib.load(os.path.join(wd, "v1.nii.gz")).affine))
    check("map is float32", img.get_data_dtype() == np.float32)
    m = np.asarray(img.dataobj)
    check("map shape equals the CT's", m.shape == hu.shape, str(m.shape))
    close("gradcam NIfTI map = PyTorch Grad-CAM (larynx)", np.transpose(m, (2, 1, 0)), maps[cats.index("larynx")])
    check("PNG overlays written", all(os.path.exists(os.path.join(wd, "png", f"slice_000{k}.png")) for k in (0, 5)))

    # the same map on the model-input and target-layer grids, placed in the world
    ct_aff = nib.load(os.path.join(wd, "v1.nii.gz")).affine
    for grid, want, f in (("input", maps, 1.0), ("feature", fmaps, 4.0)):
        gout = os.path.join(wd, f"map_{grid}.nii.gz")
        p = run([a.cbctiq, "gradcam", "--model", model, "--category", "larynx", os.path.join(wd, "v1.nii.gz"),
                 "--out", gout, "--map-grid", grid, "--quiet"])
        g = nib.load(gout)
        grid_to_vox = np.array([[f, 0, 0, 0.5 * f - 0.5], [0, f, 0, 0.5 * f - 0.5], [0, 0, 1, 0], [0, 0, 0, 1]])
        close(f"--map-grid {grid}: affine = CT affine x half-pixel grid scaling", g.affine, ct_aff @ grid_to_vox, 1e-6)
        close(f"--map-grid {grid}: map = PyTorch", np.transpose(np.asarray(g.dataobj), (2, 1, 0)),
              want[cats.index("larynx")])

    aecsv = os.path.join(wd, "ae.csv")
    prof = os.path.join(wd, "profile.csv")
    p = run([a.cbctiq, "ae", "--model", model, "--cohort", os.path.join(wd, "cohort.csv"), "--split", "test",
             "--out", aecsv, "--profile", prof, "--threads", "1", "--quiet"])
    check("ae exit 0", p.returncode == 0)
    rows = list(csv.DictReader(open(aecsv)))
    check("ae.csv has 2 volumes x 5 categories", len(rows) == 10, str(len(rows)))
    bias = net.t["head.bias"].double().numpy()
    lab_t = np.transpose(lab, (2, 1, 0))
    structures = {"parotid": np.isin(lab_t, [1, 2]), "larynx": lab_t == 5}
    for r in rows:
        c = cats.index(r["category"])
        if r["volume_id"] == "v1":
            check_v1_columns(r, c, maps, fmaps, pre_sums, y, bias, 1)
            close(f"v1 {r['category']} pred", float(r["pred"]), y[:, c].mean(), 1e-5)
            if r["category"] in structures:
                inside = (maps[c] * structures[r["category"]]).astype(np.float64).sum()
                close(f"v1 {r['category']} ae_in_structure", float(r["ae_in_structure"]), inside)
                close(f"v1 {r['category']} structure_fraction", float(r["structure_fraction"]), inside / maps[c].sum())
            else:
                check(f"v1 {r['category']} no structure -> empty", r["ae_in_structure"] == "")
        else:
            check(f"v2 {r['category']} no mask -> empty", r["ae_in_structure"] == "" and r["structure_fraction"] == "")
            close(f"v2 {r['category']} identity", float(r["ae_feature_pre"]), float(r["pred_minus_bias_sum"]), 1e-4)
            check(f"v2 {r['category']} n_slices", r["n_slices"] == "4")
            close(f"v2 {r['category']} pred_part = n_slices (pred - bias)", float(r["pred_minus_bias_sum"]),
                  4 * (float(r["pred"]) - bias[c]), 1e-5)
        for k, v in {"method": "gradcam", "target_layer": "block3.relu2", "relu": "after", "grid": "input",
                     "sign": "pos", "aggregate": "sum", "identity_holds": "1"}.items():
            if r[k] != v:
                check(f"option column {k}", False, f"{r[k]} != {v}")
    # --sign neg: the maps of -y; PyTorch redoes them on v1
    neg_csv = os.path.join(wd, "ae_neg.csv")
    p = run([a.cbctiq, "ae", "--model", model, "--cohort", os.path.join(wd, "cohort.csv"), "--split", "test",
             "--sign", "neg", "--out", neg_csv, "--threads", "1", "--quiet"])
    check("ae --sign neg exit 0", p.returncode == 0)
    nmaps, _, npre, nfmaps = torch_gradcam(net, x, sign=-1)
    nrows = [r for r in csv.DictReader(open(neg_csv)) if r["volume_id"] == "v1"]
    check("ae --sign neg: v1 has a row per category", len(nrows) == len(cats), str(len(nrows)))
    for r in nrows:
        check_v1_columns(r, cats.index(r["category"]), nmaps, nfmaps, npre, y, bias, -1)
    prows = [r for r in csv.DictReader(open(prof)) if r["volume_id"] == "v1" and r["category"] == "larynx"]
    close("profile per slice = PyTorch per-slice sums", [float(r["ae"]) for r in prows],
          maps[cats.index("larynx")].astype(np.float64).sum(axis=(1, 2)))

    # v2: the map NIfTI sits on v2's own (RAS) grid
    out2 = os.path.join(wd, "map_v2.nii.gz")
    p = run([a.cbctiq, "gradcam", "--model", model, "--category", "overall", os.path.join(wd, "v2.nii.gz"),
             "--out", out2, "--quiet"])
    img2 = nib.load(out2)
    check("resampled volume: map affine and shape equal the CT's",
          np.array_equal(img2.affine, nib.load(os.path.join(wd, "v2.nii.gz")).affine) and img2.shape == hu2.shape)

    # --- sanity: the cascade's structure and two facts that hold by construction
    # (sanity_oracle.py recomputes its numbers and the permuted-labels rows in PyTorch)
    san = os.path.join(wd, "sanity.csv")
    p = run([a.cbctiq, "sanity", "--model", model, "--cohort", os.path.join(wd, "cohort.csv"), "--split", "test",
             "--methods", "gradcam,eigencam", "--max-slices", "3", "--out", san, "--threads", "1", "--quiet"])
    check("sanity exit 0", p.returncode == 0, p.stderr.strip()[:200])
    allrows = list(csv.DictReader(open(san)))
    srows = [r for r in allrows if r["test"] == "cascade"]
    check("no permuted-labels rows without --permuted-model", len(srows) == len(allrows))
    n_param_layers = sum(l["type"] in ("conv2d", "batchnorm2d", "linear") for l in net.spec["layers"])
    check("sanity rows = methods x steps x categories", len(srows) == 2 * n_param_layers * len(cats), str(len(srows)))
    first = [r for r in srows if r["step"] == "1"]
    check("step 1 re-initialises the head", all(r["layer"] == "head" for r in first))
    top_down = [r["layer"] for r in srows if r["method"] == "gradcam" and r["category"] == cats[0]]
    check("cascade runs from the output down", top_down == [l["name"] for l in reversed(net.spec["layers"])
                                                            if l["type"] in ("conv2d", "batchnorm2d", "linear")])
    # Eigen-CAM never looks at the head: its maps cannot change at step 1
    check("eigencam unchanged when only the head is random",
          all(float(r["median_spearman"]) == 1.0 and abs(float(r["median_ae_ratio"]) - 1) < 1e-12
              for r in first if r["method"] == "eigencam"))
    check("gradcam changes when the head is random",
          any(float(r["median_spearman"]) < 0.999 for r in first if r["method"] == "gradcam"))
    for meth in ("gradcam", "eigencam"):
        flags = {r["survives"] for r in srows if r["method"] == meth}
        check(f"{meth}: one flag per method", len(flags) == 1)

    # --- a DICOM series with an RTSTRUCT: the larynx ROI's energy
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "io"))
    import dicomgen
    px = rng.integers(-600, 600, (4, 32, 32)).astype(np.int16)  # [slice, row (y), column (x)]
    uids = dicomgen.write_series(os.path.join(wd, "series"), px, [1, 0, 0, 0, 1, 0], (0.0, 0.0, 0.0),
                                 (1.0, 1.0), 2.0, rng=np.random.default_rng(5))
    square = lambda z: np.array([[10.5, 5.5, z], [20.5, 5.5, z], [20.5, 15.5, z], [10.5, 15.5, z]])
    dicomgen.write_rtstruct(os.path.join(wd, "rs.dcm"), uids["series_uid"], uids["frame_uid"],
                            [(1, "Larynx", [square(2.0 * k) for k in range(4)])])
    with open(os.path.join(wd, "cohort_rt.csv"), "w") as f:
        f.write("volume_id,path,rtstruct\ns1,series,rs.dcm\n")
    rt_out = os.path.join(wd, "ae_rt.csv")
    p = run([a.cbctiq, "ae", "--model", model, "--cohort", os.path.join(wd, "cohort_rt.csv"), "--out", rt_out,
             "--threads", "1", "--quiet"])
    check("ae with an RTSTRUCT column: exit 0", p.returncode == 0, p.stderr.strip()[:200])
    if p.returncode == 0:
        # LPS rows/columns are the canonical j/i here: the slices reach the net unresampled
        xs = np.clip((px.astype(np.float32) + 1000.0) / 2000.0, 0, 1)[:, None].copy()
        smaps, _, _, _ = torch_gradcam(net, xs)
        mask = np.zeros((4, 32, 32), bool)
        mask[:, 6:16, 11:21] = True  # voxel centres inside the contour
        rt = {r["category"]: r for r in csv.DictReader(open(rt_out))}
        lar = smaps[cats.index("larynx")].astype(np.float64)
        close("RTSTRUCT: ae = PyTorch", float(rt["larynx"]["ae"]), lar.sum())
        close("RTSTRUCT: ae_in_structure = map over the contour's voxels", float(rt["larynx"]["ae_in_structure"]),
              (lar * mask).sum())
        check("RTSTRUCT: categories without an ROI stay empty", rt["parotid"]["ae_in_structure"] == "")

    for cmd in ("gradcam", "ae", "sanity"):
        p = run([a.cbctiq, "help", cmd])
        check(f"help {cmd}: complete usage text", p.returncode == 0 and "--method" in p.stdout
              and "%s" not in p.stdout and p.stdout.startswith("usage: cbctiq " + cmd))

    # --- bad input: clear errors with the exact exit status, no sanitizer report, no output
    tiny = rng.normal(0, 100, (6, 6, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(tiny, aff), os.path.join(wd, "tiny.nii.gz"))
    bad = [(["--category", "brain"], 1, "unknown category 'brain'"),
           (["--category", "larynx", "--layer", "nope"], 1, "unknown target layer 'nope'"),
           (["--category", "larynx", "--layer", "gap"], 1, "no spatial grid"),
           (["--category", "larynx", "--method", "gradcam+"], 2, "--method expects"),
           (["--category", "larynx", "--relu", "maybe"], 2, "--relu expects")]
    for extra, rc, msg in bad:
        bad_out = os.path.join(wd, "bad.nii.gz")
        p = run([a.cbctiq, "gradcam", "--model", model, os.path.join(wd, "v1.nii.gz"), "--out", bad_out,
                 "--quiet"] + extra, rc)
        problems = run_problems(p, rc, stderr=[msg])
        check(f"bad {' '.join(extra)}: exit {rc} with message", not problems and not os.path.exists(bad_out),
              "; ".join(problems) + " " + p.stderr.strip()[:120])
    p = run([a.cbctiq, "gradcam", "--model", model, "--category", "larynx", os.path.join(wd, "tiny.nii.gz"),
             "--out", os.path.join(wd, "bad.nii.gz"), "--quiet"], 1)
    problems = run_problems(p, 1, stderr=["at least 1 slice of at least 8 x 8"])
    check("volume smaller than the target grid refused", not problems, "; ".join(problems) + " " + p.stderr.strip()[:160])
    p = run([a.cbctiq, "ae", "--model", model, "--cohort", os.path.join(wd, "cohort.csv"), "--out",
             os.path.join(wd, "bad.csv"), "--quiet"], 1)
    problems = run_problems(p, 1, stderr=["cohort.csv:4", "nope.nii.gz"])
    check("missing volume in cohort named with its line", not problems and not os.path.exists(os.path.join(wd, "bad.csv")),
          "; ".join(problems) + " " + p.stderr.strip()[:200])

    if failures:
        print(f"{len(failures)} checks failed: {failures[:6]}")
        return 1
    print("all CLI checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
