"""resnet_preset_oracle.py - the resnet18 / resnet34 presets against torchvision.

1. Names and shapes: `cbctiq model init --arch resnet18|resnet34` writes
   exactly the state_dict of torchvision.models.resnet18/34(num_classes=5)
   with a 1-channel conv1: the same tensor names, in the same order, with
   the same shapes (model.json's target layer is layer4's last block output).
2. torchvision's weights loaded: a torchvision resnet18 (width 64) with
   random batch-norm statistics, its state_dict written as the model's
   weights.safetensors, run by net_dump (eval and train mode): outputs 1e-5;
   input gradients, every parameter gradient and layer4's output and its
   gradient (Grad-CAM's target) 1e-4. The same for resnet34 at width 16,
   built from torchvision's own BasicBlock (torchvision fixes the width at 64).
3. Training: a resnet18 preset at width 8, 64x64, batch 4, trained for a few
   steps by cbq_train_step (train_steps) and by PyTorch with the same initial
   weights, data, MSE loss and Adam: the losses agree to 1e-4 with PyTorch's
   in float64 (PyTorch's float32 run is printed beside: Adam amplifies the
   rounding of near-zero gradient entries, so float32 runs part from the
   exact trajectory by more than their gradients' error).
4. `train.arch = resnet18` in a small study trains the preset and attributes
   at its default target layer.
Relative error per tensor: max|ours - torch| / max|torch|.
"""
import argparse
import copy
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
from torchvision.models import resnet18, resnet34
from torchvision.models.resnet import BasicBlock, conv1x1

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "attrib"))
from torch_model import read_safetensors, write_safetensors  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from oracle_checks import check, close, failures  # noqa: E402

OUTPUTS = "a,b,c,d,e"
BLOCKS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}


def safetensors_header(path):
    import json
    import struct
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return [(k, v["shape"]) for k, v in header.items() if k != "__metadata__"]


class Resnet(nn.Module):
    """torchvision's ResNet with BasicBlock at any base width (torchvision
    fixes it at 64); same module names, same forward."""

    def __init__(self, blocks, width, n_out):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for s, n in enumerate(blocks):
            cout, layers = width << s, []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                down = None
                if stride != 1 or cin != cout:
                    down = nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
                layers.append(BasicBlock(cin, cout, stride, down))
                cin = cout
            setattr(self, f"layer{s + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, n_out)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def torchvision_1ch(arch):
    m = {"resnet18": resnet18, "resnet34": resnet34}[arch](num_classes=5)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return m


def randomise_bn(model, gen):
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
                mod.weight.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(mod.num_features, generator=gen) * 0.1)


def model_init(a, arch, width, side, out):
    subprocess.run([a.cbctiq, "model", "init", "--arch", arch, "--width", str(width), "--input", str(side),
                    "--outputs", OUTPUTS, "--out", out, "--quiet"], check=True)


def save_weights(model, model_dir):
    write_safetensors(os.path.join(model_dir, "weights.safetensors"),
                      {k: v.detach().numpy() for k, v in model.state_dict().items()})


def check_names_and_shapes(a, arch):
    d = os.path.join(a.workdir, f"{arch}_names")
    model_init(a, arch, 64, 32, d)
    ours = safetensors_header(os.path.join(d, "weights.safetensors"))
    theirs = [(k, list(v.shape)) for k, v in torchvision_1ch(arch).state_dict().items()]
    check(f"{arch}: state_dict names and shapes = torchvision's ({len(theirs)} tensors)", ours == theirs,
          "" if ours == theirs else f"first difference {next((o, t) for o, t in zip(ours + [None] * len(theirs), theirs) if o != t)}")
    import json
    with open(os.path.join(d, "model.json")) as f:
        spec = json.load(f)
    last = f"layer4.{BLOCKS[arch][3] - 1}.relu2"
    check(f"{arch}: target layer {last}", spec["target_layer"] == last, spec["target_layer"])
    shutil.rmtree(d)


def run_parity(a, label, arch, width, model, side, n, mode, gen):
    d = os.path.join(a.workdir, label)
    model_init(a, arch, width, side, d)
    save_weights(model, d)
    x = torch.randn(n, 1, side, side, generator=gen)
    dout = torch.randn(n, 5, generator=gen)
    x.numpy().astype("<f4").tofile(os.path.join(d, "in.f32"))
    dout.numpy().astype("<f4").tofile(os.path.join(d, "dout.f32"))
    res = os.path.join(d, "out.safetensors")
    subprocess.run([a.helper, d, os.path.join(d, "in.f32"), os.path.join(d, "dout.f32"), str(n), mode, "1", res],
                   check=True)
    got = read_safetensors(res)
    model.train(mode == "train")
    kept = {}
    last = model.layer4[-1]
    last.register_forward_hook(lambda m, i, o: kept.update(act=o) or o.retain_grad())
    xt = x.clone().requires_grad_(True)
    y = model(xt)
    y.backward(dout)
    close(f"{label} {mode}: outputs", got["output"], y.detach().numpy(), 1e-5)
    close(f"{label} {mode}: input gradient", got["input_grad"], xt.grad.numpy(), 1e-4)
    close(f"{label} {mode}: layer4 output (target layer)", got["target_act"], kept["act"].detach().numpy(), 1e-4)
    close(f"{label} {mode}: layer4 output gradient", got["target_grad"], kept["act"].grad.numpy(), 1e-4)
    worst, name = 0.0, ""
    for k, p in model.named_parameters():
        g, want = got[f"grad.{k}"], p.grad.numpy()
        e = np.abs(g - want).max() / max(np.abs(want).max(), 1e-12)
        if e > worst:
            worst, name = e, k
    check(f"{label} {mode}: every parameter gradient", worst <= 1e-4, f"worst {name} rel err {worst:.2e}")
    shutil.rmtree(d)


def torch_losses(model, x, y, lr):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for s in range(x.shape[0]):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[s]), y[s])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def check_training(a, gen, steps=4, batch=4, side=64, width=8, lr=1e-3):
    d = os.path.join(a.workdir, "train")
    model_init(a, "resnet18", width, side, d)
    model = Resnet(BLOCKS["resnet18"], width, 5)
    save_weights(model, d)
    x = torch.randn(steps, batch, 1, side, side, generator=gen)
    y = torch.rand(steps, batch, 5, generator=gen) * 4 + 1
    x.numpy().astype("<f4").tofile(os.path.join(d, "in.f32"))
    y.numpy().astype("<f4").tofile(os.path.join(d, "y.f32"))
    out = os.path.join(d, "losses.f64")
    subprocess.run([a.train_helper, d, os.path.join(d, "in.f32"), os.path.join(d, "y.f32"), str(steps),
                    str(batch), str(lr), "1", out], check=True)
    ours = np.fromfile(out, "<f8")
    model64 = copy.deepcopy(model).double()
    want, want64 = torch_losses(model, x, y, lr), torch_losses(model64, x.double(), y.double(), lr)
    print("losses ours       ", " ".join(f"{v:.7f}" for v in ours))
    print("losses torch f64  ", " ".join(f"{v:.7f}" for v in want64))
    print("losses torch f32  ", " ".join(f"{v:.7f}" for v in want))
    check("training moves the loss", abs(want64[-1] - want64[0]) > 1e-3)
    # Adam divides each gradient by its own magnitude, so the rounding of
    # entries near zero moves the weights by up to lr: float32 trajectories
    # part from the exact one by more than their gradients do (PyTorch's
    # float32 by about 2e-4 here). The reference is PyTorch's on the same
    # weights and data in float64; PyTorch's float32 is printed beside it.
    close(f"resnet18 width {width} {side}x{side} batch {batch}: {steps} Adam steps' losses = PyTorch's "
          "(float64)", ours, want64, 1e-4)
    print(f"     (PyTorch float32 against float64: rel err "
          f"{np.abs(np.subtract(want, want64)).max() / np.abs(want64).max():.1e})")
    shutil.rmtree(d)


def check_study(a):
    """train.arch resnet18 in a small study: the trained model is the preset,
    attribution runs at its default target layer."""
    import csv
    import json
    d = os.path.join(a.workdir, "study")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "study", "make_cohort.py"), "--out",
                    os.path.join(d, "cohort"), "--n", "8", "--size", "32", "--slices", "8", "--test", "3",
                    "--val", "2"], check=True, stdout=subprocess.DEVNULL)
    config = {"cohort": {"csv": "cohort/cohort.csv"},
              "train": {"arch": "resnet18", "width": 4, "input_size": 32, "epochs": 2, "batch": 8,
                        "lr": 0.003, "patience": 0},
              "stats": {"bootstrap": 20, "permutations": 20}, "sanity": {"enabled": False}}
    with open(os.path.join(d, "study.json"), "w") as f:
        json.dump(config, f)
    p = subprocess.run([a.cbctiq, "study", "--config", os.path.join(d, "study.json"), "--out",
                        os.path.join(d, "out"), "--threads", "2", "--quiet"], capture_output=True, text=True)
    check("study with train.arch resnet18 exits 0", p.returncode == 0, p.stderr[-300:] if p.returncode else "")
    if p.returncode:
        return
    with open(os.path.join(d, "out", "train", "model", "model.json")) as f:
        spec = json.load(f)
    check("the study trained a resnet18", spec["arch"] == "resnet18" and spec["layers"][0]["name"] == "conv1")
    rows = list(csv.DictReader(open(os.path.join(d, "out", "attrib", "ae.csv"))))
    check("its ae.csv: 3 test volumes x 5 categories at layer4.1.relu2",
          len(rows) == 15 and all(r["target_layer"] == "layer4.1.relu2" for r in rows), str(len(rows)))
    shutil.rmtree(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--train-helper", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(14)
    torch.manual_seed(14)

    for arch in ("resnet18", "resnet34"):
        check_names_and_shapes(a, arch)
    ours, theirs = Resnet(BLOCKS["resnet18"], 64, 5).state_dict(), torchvision_1ch("resnet18").state_dict()
    check("the test's width-free Resnet = torchvision's at width 64",
          [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()])
    for mode in ("eval", "train"):
        tv = torchvision_1ch("resnet18")
        randomise_bn(tv, gen)
        run_parity(a, "resnet18_torchvision", "resnet18", 64, tv, 64, 2, mode, gen)
        r34 = Resnet(BLOCKS["resnet34"], 16, 5)
        randomise_bn(r34, gen)
        run_parity(a, "resnet34_w16", "resnet34", 16, r34, 48, 2, mode, gen)
    check_training(a, gen)
    check_study(a)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
