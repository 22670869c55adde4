#!/usr/bin/python3
"""Training models with several input channels, against PyTorch.

1. A 2.5D model (input.channels 3, slices adjacent, ImageNet mean/std):
   conv (3 -> 4, 3x3, pad 1) -> batch norm -> relu -> global pool -> linear.
   cbq_train (train_volume_steps) trains it on one volume's samples as the
   model-input path builds them, one batch of every slice per step, Adam, MSE;
   PyTorch trains the same weights on samples it builds itself from the
   volume (window, slices k-1, k, k+1 clamped at the ends, normalise). The
   losses of every step agree with PyTorch's in float64 to 1e-5 (the initial
   weights are float32 values, so both start exactly alike); with the slice
   replicated instead of its neighbours PyTorch's losses differ (the test
   sees which slices fill the channels).
2. `cbctiq train --arch MODEL.json` trains that architecture: the model it
   writes keeps input.channels, slices and mean/std; a model.json whose
   outputs are not the categories is refused, naming the file.
3. A small study with train.arch = the 2.5D model.json trains it and
   attributes (the path relative to study.json's folder): ae.csv has every test volume and category, with finite AE;
   an edit of that model.json makes the study train again.
"""
import argparse
import copy
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
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "attrib"))
from torch_model import write_safetensors  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from oracle_checks import check, close, failures  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
HU_MIN, HU_MAX = -1000.0, 1000.0
CATS = ["parotid", "submandibular", "larynx", "mandible", "overall"]


class Net25(nn.Module):
    def __init__(self, n_out):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, n_out)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def model_json(side, outputs, slices="adjacent"):
    return {"format_version": 1,
            "input": {"height": side, "width": side, "hu_min": HU_MIN, "hu_max": HU_MAX, "channels": 3,
                      "slices": slices, "mean": MEAN, "std": STD},
            "outputs": outputs, "target_layer": "relu",
            "layers": [{"name": "conv", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3,
                        "padding": 1},
                       {"name": "bn", "type": "batchnorm2d", "num_features": 4},
                       {"name": "relu", "type": "relu"},
                       {"name": "gap", "type": "global_avgpool"},
                       {"name": "head", "type": "linear", "in_features": 4, "out_features": len(outputs)}]}


def write_model(d, spec, model=None):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(spec, f, indent=1)
    if model is not None:
        write_safetensors(os.path.join(d, "weights.safetensors"),
                          {k: v.detach().numpy() for k, v in model.state_dict().items()})
    return os.path.join(d, "model.json")


def torch_samples(hu, slices):
    """[k, 3, H, W] float64 as PyTorch users build it: window, stack, normalise."""
    w = torch.from_numpy(np.clip((hu.astype(np.float64) - HU_MIN) / (HU_MAX - HU_MIN), 0, 1))
    w = w.permute(2, 1, 0)  # [k, j, i]: slice k, row j, column i
    nz = w.shape[0]
    k = torch.arange(nz)
    if slices == "adjacent":
        x = torch.stack([w[(k + d).clamp(0, nz - 1)] for d in (-1, 0, 1)], dim=1)
    else:
        x = w[:, None].repeat(1, 3, 1, 1)
    mean = torch.tensor(MEAN, dtype=torch.float64)[None, :, None, None]
    std = torch.tensor(STD, dtype=torch.float64)[None, :, None, None]
    return (x - mean) / std


def torch_losses(model, x, y, lr, epochs):
    model = copy.deepcopy(model).double()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def check_training_steps(a, wd, epochs=5, lr=0.01):
    rng = np.random.default_rng(1405)
    hu = rng.normal(0, 500, (16, 16, 6)).astype(np.float32)
    hu[:, :, 0] += 300  # end slices unlike their neighbours: the edge rule shows
    hu[:, :, 5] -= 300
    vol = os.path.join(wd, "v.nii.gz")
    nib.save(nib.Nifti1Image(hu, np.diag([-0.8, -0.8, 2.0, 1.0])), vol)  # canonical, no resampling
    torch.manual_seed(14)
    model = Net25(2)
    with torch.no_grad():  # random statistics, so that eval-mode state would show
        model.bn.running_mean.normal_(0, 0.1)
        model.bn.running_var.uniform_(0.5, 1.5)
    d = os.path.join(wd, "adjacent")
    write_model(d, model_json(16, ["a", "b"]), model)
    y = rng.uniform(1, 5, (6, 2)).astype(np.float32)
    y.tofile(os.path.join(d, "y.f32"))
    out = os.path.join(d, "losses.f64")
    subprocess.run([a.train_helper, d, vol, os.path.join(d, "y.f32"), str(epochs), str(lr), out], check=True)
    ours = np.fromfile(out, "<f8")
    yt = torch.from_numpy(y.astype(np.float64))
    want = torch_losses(model, torch_samples(hu, "adjacent"), yt, lr, epochs)
    print(f"     ours {np.array2string(ours, precision=7)}\n     torch {np.array2string(np.array(want), precision=7)}")
    close(f"2.5D adjacent: {epochs} Adam steps' losses = PyTorch's (float64)", ours, want, 1e-5)
    other = torch_losses(model, torch_samples(hu, "replicate"), yt, lr, epochs)
    err = np.abs(ours - np.array(other)).max() / np.abs(other).max()
    check("2.5D adjacent: the replicated slice would give other losses", err > 1e-4, f"rel diff {err:.2e}")


def make_cohort(wd):
    d = os.path.join(wd, "cohort")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "study", "make_cohort.py"), "--out", d, "--n", "8",
                    "--size", "32", "--slices", "8", "--test", "3", "--val", "2"], check=True,
                   stdout=subprocess.DEVNULL)
    return d


def check_train_command(a, wd, cohort):
    arch = write_model(os.path.join(wd, "arch"), model_json(32, CATS))
    out = os.path.join(wd, "trained")
    cons = os.path.join(wd, "consensus.csv")
    with open(os.path.join(cohort, "ratings.csv")) as f:
        rows = list(csv.DictReader(f))
    by = {}
    for r in rows:
        by.setdefault((r["volume_id"], r["category"]), []).append(float(r["score"]))
    with open(cons, "w") as f:
        f.write("volume_id,category,consensus\n")
        for (v, c), s in sorted(by.items()):
            f.write(f"{v},{c},{np.mean(s)}\n")
    p = subprocess.run([a.cbctiq, "train", "--cohort", os.path.join(cohort, "cohort.csv"), "--consensus", cons,
                        "--out", out, "--arch", arch, "--epochs", "2", "--batch", "8", "--quiet"],
                       capture_output=True, text=True)
    check("cbctiq train --arch MODEL.json exits 0", p.returncode == 0, p.stderr[-300:])
    if p.returncode == 0:
        inp = json.load(open(os.path.join(out, "model.json")))["input"]
        check("the trained model keeps channels, slices, mean and std",
              inp.get("channels") == 3 and inp.get("slices") == "adjacent" and inp.get("mean") == MEAN
              and inp.get("std") == STD, str(inp))
    bad = write_model(os.path.join(wd, "bad"), model_json(32, ["a", "b", "c", "d", "e"]))
    p = subprocess.run([a.cbctiq, "train", "--cohort", os.path.join(cohort, "cohort.csv"), "--consensus", cons,
                        "--out", os.path.join(wd, "bad_out"), "--arch", bad, "--epochs", "1", "--quiet"],
                       capture_output=True, text=True)
    check("a model.json whose outputs are not the categories is refused",
          p.returncode != 0 and bad in p.stderr and "outputs[0]: 'a', expected category 'parotid'" in p.stderr,
          p.stderr.strip()[-300:])
    check("... and leaves no model behind", not os.path.exists(os.path.join(wd, "bad_out", "model.json")))


def check_study(a, wd, cohort):
    d = os.path.join(wd, "study")
    os.makedirs(d)
    arch = write_model(os.path.join(d, "arch"), model_json(32, CATS))
    config = {"cohort": {"csv": os.path.join(cohort, "cohort.csv")},
              "train": {"arch": "arch/model.json", "epochs": 2, "batch": 8},  # beside study.json
              "stats": {"bootstrap": 20, "permutations": 20}, "sanity": {"enabled": False}}
    with open(os.path.join(d, "study.json"), "w") as f:
        json.dump(config, f)
    p = subprocess.run([a.cbctiq, "study", "--config", os.path.join(d, "study.json"), "--out",
                        os.path.join(d, "out"), "--threads", "2", "--quiet"], capture_output=True, text=True)
    check("a study with train.arch = a 2.5D model.json (relative to study.json) exits 0", p.returncode == 0,
          p.stderr[-300:])
    if p.returncode:
        return
    inp = json.load(open(os.path.join(d, "out", "train", "model", "model.json")))["input"]
    check("its trained model is 2.5D", inp.get("channels") == 3 and inp.get("slices") == "adjacent", str(inp))
    rows = list(csv.DictReader(open(os.path.join(d, "out", "attrib", "ae.csv"))))
    ae = [float(r["ae"]) for r in rows if r.get("ae")]
    check("its ae.csv has every test volume and category, AE finite",
          len(rows) == 15 and len(ae) == 15 and all(math.isfinite(v) for v in ae), f"{len(rows)} rows, {len(ae)} AE")
    # An edit of the model.json is a new recipe: the train stage runs again.
    spec = model_json(32, CATS)
    spec["input"]["std"] = [0.25, 0.25, 0.25]
    write_model(os.path.join(d, "arch"), spec)
    p = subprocess.run([a.cbctiq, "study", "--config", os.path.join(d, "study.json"), "--out",
                        os.path.join(d, "out"), "--threads", "2", "--quiet"], capture_output=True, text=True)
    inp = json.load(open(os.path.join(d, "out", "train", "model", "model.json")))["input"]
    check("after an edit of train.arch's model.json the study trains again", p.returncode == 0 and
          inp.get("std") == [0.25, 0.25, 0.25], str(inp.get("std")) + p.stderr[-200:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--train-helper", required=True)
    a = ap.parse_args()
    wd = a.workdir
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    torch.set_num_threads(1)
    check_training_steps(a, wd)
    cohort = make_cohort(wd)
    check_train_command(a, wd, cohort)
    check_study(a, wd, cohort)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
