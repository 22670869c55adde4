#!/usr/bin/python3
"""Input channels (model.json input.channels, input.slices, input.mean and
input.std) end to end against PyTorch on the same weights and volume.

A 3-channel network with ImageNet-style per-channel normalisation, once with
the slice replicated in every channel and once with 2.5D adjacent slices
(k-1, k, k+1, the edge slice repeated at the volume's ends, as
index-clamping does in PyTorch). The volume's slices already have the
model's input size and canonical orientation (affine diag(-dx, -dy, dz)), so
PyTorch recomputes the whole input: window, stack, normalise. `cbctiq predict
--per-slice` must equal PyTorch's outputs (1e-5), `cbctiq gradcam` its
Grad-CAM maps, one per slice (1e-4), and so must Score-CAM's (the same mask
in every channel), gradient x input's and Integrated Gradients' (the
channels' attributions summed, one map per slice); the deletion and
insertion curves perturb a pixel in every channel at once, from each
channel's own blurred baseline; a whole study runs on the 2.5D model."""
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
sys.path.insert(0, os.path.join(HERE, "..", "attrib"))
from torch_model import Net, read_safetensors, write_safetensors  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from oracle_checks import check, close, failures  # noqa: E402
from gradcam_oracle import torch_cam  # noqa: E402
from pointing_oracle import auc, blurred, random_order, torch_curves  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
HU_MIN, HU_MAX = -1000.0, 1000.0


def run(cmd, expect_rc=0):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != expect_rc:
        print(p.stdout, p.stderr)
    check(f"{cmd[1]} exit {expect_rc}", p.returncode == expect_rc, f"(got {p.returncode})")
    return p


def three_channel_model(cbctiq, wd, name, slices, rng):
    """`cbctiq model init`'s small iqnet-s turned into a 3-channel model:
    its model.json's input and first conv, a random [4, 3, 3, 3] weight and
    random batch-norm statistics (so that every layer matters)."""
    d = os.path.join(wd, name)
    run([cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "2", "--input", "32",
         "--seed", "5", "--out", d, "--quiet"])
    with open(os.path.join(d, "model.json")) as f:
        spec = json.load(f)
    spec["input"].update({"channels": 3, "slices": slices, "mean": MEAN, "std": STD})
    spec["layers"][0]["in_channels"] = 3
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(spec, f, indent=1)
    w = read_safetensors(os.path.join(d, "weights.safetensors"))
    w["block1.conv1.weight"] = rng.normal(0, 0.4, (4, 3, 3, 3)).astype(np.float32)
    for k in w:
        if k.endswith("running_mean"):
            w[k] = rng.normal(0, 0.1, w[k].shape).astype(np.float32)
        elif k.endswith("running_var"):
            w[k] = rng.uniform(0.5, 1.5, w[k].shape).astype(np.float32)
    write_safetensors(os.path.join(d, "weights.safetensors"), w)
    return d


def torch_input(hu, slices, normalise=True):
    """[k, C, H, W] as PyTorch users build it: window, stack, normalise."""
    w = torch.from_numpy(np.clip((hu - HU_MIN) / (HU_MAX - HU_MIN), 0, 1).astype(np.float32))
    w = w.permute(2, 1, 0)  # [k, j, i]: slice k, row j, column i
    nz = w.shape[0]
    if slices == "replicate":
        x = w[:, None].repeat(1, 3, 1, 1)
    else:
        k = torch.arange(nz)
        x = torch.stack([w[(k + d).clamp(0, nz - 1)] for d in (-1, 0, 1)], dim=1)
    if normalise:
        x = (x - torch.tensor(MEAN)[None, :, None, None]) / torch.tensor(STD)[None, :, None, None]
    return x.contiguous().numpy()


def per_slice_predictions(path, cats, nz):
    y = np.full((nz, len(cats)), np.nan)
    for r in csv.DictReader(open(path)):
        y[int(r["slice"]), cats.index(r["category"])] = float(r["pred"])
    return y


def torch_gradcam(net, x, c):
    cams, y = net.gradcam_feature_maps(x)
    up = F.interpolate(F.relu(cams[c])[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
    return up[:, 0].numpy()


def check_other_methods(cbctiq, wd, model, net, vol, x, c):
    """Score-CAM masks every channel by the same mask; the pixel-level
    methods sum their per-channel attributions into one map per slice."""
    xt = torch.from_numpy(x)
    for method in ("scorecam", "gradxinput", "ig", "hirescam"):
        out = os.path.join(wd, f"map_{method}.nii.gz")
        run([cbctiq, "gradcam", "--model", model, "--category", "larynx", "--method", method, vol,
             "--out", out, "--quiet"])
        res = torch_cam(net, xt, method, net.index(net.spec["target_layer"]), 1, 1)
        maps = res if method in ("gradxinput", "ig") else res[0]
        got = np.transpose(np.asarray(nib.load(out).dataobj), (2, 1, 0))
        close(f"adjacent: {method} map = PyTorch", got, maps[c][1].detach().numpy(), 1e-4)


def check_curves(cbctiq, wd, model, net, vol, x):
    """Deletion and insertion curves of a 3-channel input: each channel
    blurred alone for the baseline, a pixel deleted or inserted in every
    channel at once (the orders are per slice)."""
    cohort, aecsv, curves, mapdir = (os.path.join(wd, f) for f in ("cohort.csv", "ae.csv", "curves.csv", "maps"))
    with open(cohort, "w") as f:
        f.write(f"volume_id,path\nv,{vol}\n")
    seed = 20261205
    run([cbctiq, "ae", "--model", model, "--cohort", cohort, "--out", aecsv, "--curves", curves, "--maps", mapdir,
         "--curve-slices", "0", "--seed", str(seed), "--threads", "1", "--quiet"])
    rows = {r["category"]: r for r in csv.DictReader(open(aecsv))}
    crow = list(csv.DictReader(open(curves)))
    n, hw = x.shape[0], x.shape[2] * x.shape[3]
    base = blurred(x, x.shape[-1] / 16)
    rnd = [random_order(seed, s, hw) for s in range(n)]
    cats = net.spec["outputs"]
    for cat in ("larynx", "overall"):
        c = cats.index(cat)
        m = np.transpose(np.asarray(nib.load(os.path.join(mapdir, f"v_{cat}.nii.gz")).dataobj), (2, 1, 0))
        orders = [np.argsort(-m[s].reshape(-1).astype(np.float64), kind="stable") for s in range(n)]
        for order, o in (("map", orders), ("random", rnd)):
            d, i = torch_curves(net, x, base, o, c)
            for kind, want in (("deletion", d), ("insertion", i)):
                got = sorted((r for r in crow if r["category"] == cat and r["order"] == order and r["curve"] == kind),
                             key=lambda r: int(r["step"]))
                close(f"adjacent: {cat} {kind} curve ({order} order) = PyTorch", [float(r["score"]) for r in got],
                      want, 1e-4)
            if order == "map":
                orig, b = d[0], d[-1]
                want_auc = auc(d, orig, b)
                check(f"adjacent: {cat} deletion_auc = PyTorch",
                      abs(float(rows[cat]["deletion_auc"]) - want_auc) <= 1e-4 * max(np.abs((d - b) / (orig - b)).max(), 1),
                      f"{rows[cat]['deletion_auc']} vs {want_auc:.6g}")


def check_study(cbctiq, wd, model):
    """A study on the 2.5D model (train.model): every stage reads its inputs
    through the same path, the sanity checks (gradient x input among them)
    and the deletion curves included."""
    d = os.path.join(wd, "study")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "study", "make_cohort.py"), "--out",
                    os.path.join(d, "cohort"), "--n", "8", "--size", "32", "--slices", "8", "--test", "3",
                    "--val", "2"], check=True, stdout=subprocess.DEVNULL)
    config = {"cohort": {"csv": "cohort/cohort.csv"}, "train": {"model": model},
              "stats": {"bootstrap": 20, "permutations": 20}, "sanity": {"enabled": True, "max_slices": 2}}
    with open(os.path.join(d, "study.json"), "w") as f:
        json.dump(config, f)
    p = subprocess.run([cbctiq, "study", "--config", os.path.join(d, "study.json"), "--out", os.path.join(d, "out"),
                        "--threads", "2", "--quiet"], capture_output=True, text=True)
    check("study on the 2.5D model exits 0", p.returncode == 0, p.stderr[-300:] if p.returncode else "")
    if p.returncode:
        return
    rows = list(csv.DictReader(open(os.path.join(d, "out", "attrib", "ae.csv"))))
    check("its ae.csv has curves", len(rows) == 15 and any(r["deletion_auc"] for r in rows), str(len(rows)))
    san = list(csv.DictReader(open(os.path.join(d, "out", "sanity", "sanity.csv"))))
    check("its sanity checks ran gradient x input", any(r["method"] == "gradxinput" for r in san))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    wd = a.workdir
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    torch.set_num_threads(1)
    rng = np.random.default_rng(14)
    hu = rng.normal(0, 500, (32, 32, 6)).astype(np.float32)
    hu[:, :, 0] += 300  # end slices unlike their neighbours: the edge rule shows
    hu[:, :, 5] -= 300
    aff = np.diag([-0.8, -0.8, 2.0, 1.0])
    vol = os.path.join(wd, "v.nii.gz")
    nib.save(nib.Nifti1Image(hu, aff), vol)

    for slices in ("replicate", "adjacent"):
        model = three_channel_model(a.cbctiq, wd, slices, slices, rng)
        net = Net(model)
        cats = net.spec["outputs"]
        x = torch_input(hu, slices)
        with torch.no_grad():
            want, _ = net.forward_layers(torch.from_numpy(x))
        pred = os.path.join(wd, f"pred_{slices}.csv")
        run([a.cbctiq, "predict", "--model", model, "--out", pred, "--per-slice", "--quiet", vol])
        got = per_slice_predictions(pred, cats, hu.shape[2])
        close(f"{slices}: per-slice predictions = PyTorch", got, want.numpy(), 1e-5)
        # without the normalisation PyTorch gives other outputs: the mean/std are applied
        with torch.no_grad():
            raw, _ = net.forward_layers(torch.from_numpy(torch_input(hu, slices, normalise=False)))
        check(f"{slices}: mean/std change the outputs", np.abs(raw.numpy() - want.numpy()).max() > 1e-3)
        c = cats.index("larynx")
        out = os.path.join(wd, f"map_{slices}.nii.gz")
        run([a.cbctiq, "gradcam", "--model", model, "--category", "larynx", vol, "--out", out, "--quiet"])
        m = np.asarray(nib.load(out).dataobj)
        check(f"{slices}: one map per slice", m.shape == hu.shape, str(m.shape))
        close(f"{slices}: Grad-CAM map = PyTorch", np.transpose(m, (2, 1, 0)), torch_gradcam(net, x, c), 1e-4)

        if slices == "adjacent":
            check_other_methods(a.cbctiq, wd, model, net, vol, x, c)
            check_curves(a.cbctiq, wd, model, net, vol, x)
            check_study(a.cbctiq, wd, model)
    info = run([a.cbctiq, "model", "info", os.path.join(wd, "adjacent")])
    check("model info shows 3 input channels", "input 3x32x32" in info.stdout and "adjacent" in info.stdout)

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
