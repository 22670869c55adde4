#!/usr/bin/python3
"""onnx_oracle.py - `cbctiq model import` and `model export` against PyTorch
and ONNX's own checker.

For each PyTorch model: torch.onnx.export (opset 13, eval mode), then
`cbctiq model import`; the helper net_dump runs the imported model forward and
backward on random slices and attrib_dump computes Grad-CAM maps, and both are
compared with the same PyTorch module on the same weights:
  outputs                       max |diff| / max |torch| <= 1e-5
  input gradient                                        <= 1e-4
  every parameter gradient (exports that keep batch norm: layer names are
  PyTorch's module paths, so grad.<name> is the state_dict name)   <= 1e-4
  Grad-CAM maps (feature grid and input grid) at the given layers,
  and their Attribution Energy (no mask: the map's sum)            <= 1e-4
The default export folds batch norm into the convolutions (a Conv with bias,
no BatchNormalization); its parameters differ from the module's, so only
outputs, input gradients and maps are compared there.
Then `cbctiq model export` writes each imported model back: onnx.checker
(full_check, with shape inference) must pass, the graph input and output must
be what the export promises, and importing the exported file again must give
byte-identical model.json and weights.safetensors.

Several input channels (rgb: torchvision's resnet18 with its 3-channel conv1,
replicate; 25d: the same with adjacent slices k-1, k, k+1): exported with a
[1, 3, H, W] input and imported with ImageNet's --mean/--std; `cbctiq predict
--per-slice` and `cbctiq gradcam` on a small NIfTI volume must equal the
PyTorch module fed the windowed, stacked and normalised slices (outputs 1e-5,
Grad-CAM at layer4 1e-4), and the export -> import round trip keeps the
channel count, slices and normalisation (through the ONNX metadata).
"""
import argparse
import csv
import json
import os
import shutil
import struct
import subprocess
import sys

import nibabel as nib
import numpy as np
import onnx
from onnx import helper, numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--net-dump", required=True)
ap.add_argument("--attrib-dump", required=True)
ap.add_argument("--models", required=True, help="comma-separated cases: vgg, mixed, senet, resnet18, resnet34, "
                "densenet121; _bn: batch norm kept, _mm: nn.Linear as MatMul + Add; resnet18_rgb, resnet18_25d: "
                "3 input channels (replicate, adjacent) through predict and gradcam")
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
torch.set_num_threads(1)

failures = []
DTYPES = {"F32": "<f4", "I64": "<i8"}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name != "__metadata__":
            a, b = t["data_offsets"]
            out[name] = np.frombuffer(data[a:b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
    return out


def check(label, got, want, tol):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        print(f"FAIL {label}: shape {got.shape}, PyTorch {want.shape}")
        failures.append(label)
        return
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
    ok = err <= tol
    print(f"{'ok' if ok else 'FAIL':4} {label}: max |diff| / max |torch| = {err:.2e} (tol {tol:g})")
    if not ok:
        failures.append(label)


def randomise_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)


# ---- the PyTorch models -------------------------------------------------------

class VGG(nn.Module):
    """A chain: every layer kind the first engine had, plus AvgPool2d (exported as Pad + AveragePool)."""

    def __init__(self, view):
        super().__init__()
        self.view = view
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.LeakyReLU(0.2), nn.AvgPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        y = self.pool(self.features(x))
        # view: a Reshape to a constant [1, -1] once constant folding ran (the default export)
        return self.fc(self.drop(y.view(y.size(0), -1) if self.view else torch.flatten(y, 1)))


class SEBlock(nn.Module):
    """Squeeze-excitation (Hu et al. 2018): x * sigmoid(fc2(relu(fc1(pool(x)))))."""

    def __init__(self, c, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(c // r, c, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class SEResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.se = SEBlock(c)

    def forward(self, x):
        y = self.se(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.relu(y + x)


class SENet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.block = SEResBlock(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


class Mixed(nn.Module):
    """The single-input kinds and their ONNX forms: dilated and depthwise
    convolutions, SiLU (Sigmoid + Mul), max pooling with ceil_mode, average
    pooling with padding (Pad + AveragePool), concat, a squeeze-excitation
    gate through ReduceMean, LeakyReLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=2, dilation=2)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.SiLU()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.pw = nn.Conv2d(8, 8, 1)
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.gate1 = nn.Conv2d(16, 4, 1)
        self.gate2 = nn.Conv2d(4, 16, 1)
        self.out = nn.LeakyReLU(0.1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        a = self.act(self.bn(self.stem(x)))
        c = self.avg(self.pool(torch.cat([a, self.pw(self.dw(a))], 1)))
        w = torch.sigmoid(self.gate2(F.relu(self.gate1(c.mean((2, 3), keepdim=True)))))
        y = self.out(c * w)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


def gemm_to_matmul(path):
    """nn.Linear as the exporter writes it for inputs of more than 2 dimensions:
    MatMul by the transposed weight, then Add of the bias."""
    m = onnx.load(path)
    g = m.graph
    k = next(i for i, n in enumerate(g.node) if n.op_type == "Gemm")
    gemm = g.node[k]
    inits = {t.name: t for t in g.initializer}
    w = numpy_helper.to_array(inits[gemm.input[1]])
    g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T), "onnx::MatMul_w"))
    mm = helper.make_node("MatMul", [gemm.input[0], "onnx::MatMul_w"], ["mm_out"], name="/fc/MatMul")
    add = helper.make_node("Add", ["mm_out", gemm.input[2]], [gemm.output[0]], name="/fc/Add")
    del g.node[k]
    g.node.insert(k, add)
    g.node.insert(k, mm)
    g.initializer.remove(inits[gemm.input[1]])
    onnx.save(m, path)


def one_channel(model, attr):
    """torchvision's ImageNet models take 3 channels; a CT slice is one."""
    parent, name = model, attr
    if "." in attr:
        path, name = attr.rsplit(".", 1)
        parent = dict(model.named_modules())[path]
    old = getattr(parent, name)
    setattr(parent, name, nn.Conv2d(1, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False))


# The default Grad-CAM layer `model import` picks: the last activation before the global pool.
EXPECTED_TARGET = {"vgg": "features.10", "mixed": "out", "senet": "block.relu_1", "resnet18": "layer4.1.relu_1",
                   "resnet34": "layer4.2.relu_1", "densenet121": "relu"}


def make_model(name):
    """The model in eval mode, the Grad-CAM layers as (cbctiq layer, PyTorch
    module whose output it is), the input side."""
    torch.manual_seed(3)
    base = name[:-3] if name.endswith(("_bn", "_mm")) else name
    if base == "mixed":
        m, size = Mixed(), 30
        cams = [("out", "out"), ("act", "act")]
    elif base == "vgg":
        m, size = VGG(view=name == "vgg"), 32
        cams = [("features.10", "features.10"), ("features.6", "features.6")]
    elif base == "senet":
        m, size = SENet(), 32
        cams = [("block.relu_1", "block"), ("stem.2", "stem")]
    elif base in ("resnet18", "resnet34"):
        import torchvision
        m, size = getattr(torchvision.models, base)(num_classes=5), 64
        one_channel(m, "conv1")
        cams = [("layer4.1.relu_1" if base == "resnet18" else "layer4.2.relu_1", "layer4"),
                ("layer2.1.relu_1", "layer2.1")]
    elif base == "densenet121":
        import torchvision
        m, size = torchvision.models.densenet121(num_classes=5), 64
        one_channel(m, "features.conv0")
        cams = [("features.denseblock3.concat", "features.denseblock3"),
                ("features.transition2.conv", "features.transition2.conv")]
    else:
        sys.exit(f"unknown case {name}")
    randomise_bn(m, 11)
    return m.eval(), cams, size


# ---- cbctiq on the imported model -------------------------------------------

def run(*cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stdout}{r.stderr}")
    return r.stdout


def net_dump(model_dir, x, dout, work):
    x.numpy().astype("<f4").tofile(f"{work}/in.f32")
    dout.numpy().astype("<f4").tofile(f"{work}/dout.f32")
    run(args.net_dump, model_dir, f"{work}/in.f32", f"{work}/dout.f32", x.shape[0], "eval", 1, f"{work}/out.st")
    return read_safetensors(f"{work}/out.st")


def gradcam_maps(model_dir, x, layer, work):
    n, _, H, W = x.shape
    x[:, 0].numpy().astype("<f4").tofile(f"{work}/slices.f32")
    prefix = f"{work}/cam_{layer}"
    run(args.attrib_dump, model_dir, f"{work}/slices.f32", n, "gradcam", 1, 1, layer, prefix)
    feat = np.fromfile(prefix + ".feature.f32", np.float32)
    inp = np.fromfile(prefix + ".input.f32", np.float32)
    ae = np.loadtxt(prefix + ".ae.txt", ndmin=2)  # per output: AE (input grid), AE (feature grid), ...
    return feat, inp, ae


def torch_gradcam(model, module_name, x, n_out):
    """pytorch-grad-cam's Grad-CAM: relu(sum_k mean(dy_c/dA_k) A_k), then bilinear to the input."""
    acts = []
    handle = dict(model.named_modules())[module_name].register_forward_hook(lambda m, i, o: acts.append(o))
    y = model(x)
    handle.remove()
    A = acts[-1]
    feats, ups = [], []
    for c in range(n_out):
        (G,) = torch.autograd.grad(y[:, c].sum(), A, retain_graph=True)
        cam = F.relu((G.mean((2, 3))[:, :, None, None] * A.detach()).sum(1))
        up = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        feats.append(cam.detach())
        ups.append(up.detach())
    return torch.stack(feats).numpy(), torch.stack(ups).numpy()


def compare_case(name):
    work = os.path.join(args.workdir, name)
    os.makedirs(work)
    model, cams, size = make_model(name)
    keep_bn = name.endswith("_bn")
    onnx_path = f"{work}/{name}.onnx"
    kw = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) if keep_bn else {}
    torch.onnx.export(model, torch.randn(1, 1, size, size), onnx_path, opset_version=13, **kw)
    if name.endswith("_mm"):
        gemm_to_matmul(onnx_path)
    mdir = f"{work}/model"
    run(args.cbctiq, "model", "import", onnx_path, "--out", mdir, "--quiet")
    spec = json.load(open(f"{mdir}/model.json"))
    base = name[:-3] if name.endswith(("_bn", "_mm")) else name
    target_ok = spec["target_layer"] == EXPECTED_TARGET[base]
    print(f"{'ok' if target_ok else 'FAIL':4} {name}: default target layer {spec['target_layer']}")
    if not target_ok:
        failures.append(f"{name} target layer")
    # Kept: every batch norm is a layer. Folded: each one right after a
    # convolution is gone (densenet's, before their convolutions, stay).
    n_bn = sum(layer["type"] == "batchnorm2d" for layer in spec["layers"])
    torch_bn = sum(isinstance(mod, nn.BatchNorm2d) for mod in model.modules())
    if (n_bn != torch_bn) if keep_bn else (n_bn >= torch_bn):
        print(f"FAIL {name}: {n_bn} batch norm layers after import, the module has {torch_bn}")
        failures.append(f"{name} bn")

    g = torch.Generator().manual_seed(5)
    n = 2
    x = torch.rand(n, 1, size, size, generator=g)
    dout = torch.randn(n, 5, generator=g)
    got = net_dump(mdir, x, dout, work)
    xt = x.clone().requires_grad_(True)
    model.zero_grad()
    y = model(xt)
    (y * dout).sum().backward()
    check(f"{name} output", got["output"], y.detach().numpy(), 1e-5)
    check(f"{name} input gradient", got["input_grad"], xt.grad.numpy(), 1e-4)
    if keep_bn:
        params = dict(model.named_parameters())
        grads = {k[5:]: v for k, v in got.items() if k.startswith("grad.")}
        if set(grads) != set(params):
            print(f"FAIL {name}: parameter names {sorted(set(grads) ^ set(params))} differ from PyTorch's")
            failures.append(f"{name} parameter names")
        for k in sorted(set(grads) & set(params)):
            check(f"{name} grad {k}", grads[k], params[k].grad.numpy(), 1e-4)
    for layer, module in cams:
        feat, inp, ae = gradcam_maps(mdir, x, layer, work)
        tf, ti = torch_gradcam(model, module, x, 5)
        check(f"{name} Grad-CAM at {layer} (feature grid)", feat.reshape(tf.shape), tf, 1e-4)
        check(f"{name} Grad-CAM at {layer} (input grid)", inp.reshape(ti.shape), ti, 1e-4)
        # Attribution Energy without a mask: the map's sum over the slices, per output.
        check(f"{name} AE at {layer} (input grid)", ae[:, 0], ti.astype(np.float64).sum((1, 2, 3)), 1e-4)
        check(f"{name} AE at {layer} (feature grid)", ae[:, 1], tf.astype(np.float64).sum((1, 2, 3)), 1e-4)
    round_trip(name, mdir, work)


# ---- several input channels: the CLI on a volume against PyTorch -------------

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
HU_MIN, HU_MAX = -1000.0, 1000.0


def torch_input(hu, slices):
    """[k, 3, H, W] as a PyTorch user builds it from hu[i, j, k]: window,
    stack (slice k three times, or k-1, k, k+1 with the edge slice repeated),
    normalise per channel."""
    w = torch.from_numpy(np.clip((hu - HU_MIN) / (HU_MAX - HU_MIN), 0, 1).astype(np.float32)).permute(2, 1, 0)
    nz = w.shape[0]
    if slices == "replicate":
        x = w[:, None].repeat(1, 3, 1, 1)
    else:
        k = torch.arange(nz)
        x = torch.stack([w[(k + d).clamp(0, nz - 1)] for d in (-1, 0, 1)], dim=1)
    mean, std = torch.tensor(IMAGENET_MEAN)[None, :, None, None], torch.tensor(IMAGENET_STD)[None, :, None, None]
    return ((x - mean) / std).contiguous()


def compare_channels_case(name):
    work = os.path.join(args.workdir, name)
    os.makedirs(work)
    import torchvision
    torch.manual_seed(3)
    model = torchvision.models.resnet18(num_classes=5)  # conv1 as torchvision has it: 3 input channels
    randomise_bn(model, 11)
    model.eval()
    slices, size = ("replicate" if name.endswith("_rgb") else "adjacent"), 64
    onnx_path = f"{work}/{name}.onnx"
    torch.onnx.export(model, torch.randn(1, 3, size, size), onnx_path, opset_version=13)
    mdir = f"{work}/model"
    to_list = lambda v: ",".join(map(str, v))  # noqa: E731
    run(args.cbctiq, "model", "import", onnx_path, "--out", mdir, "--slices", slices, "--mean",
        to_list(IMAGENET_MEAN), "--std", to_list(IMAGENET_STD), "--quiet")
    inp = json.load(open(f"{mdir}/model.json"))["input"]
    want_inp = {"channels": 3, "slices": slices, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    ok = all(inp.get(k) == v for k, v in want_inp.items())
    print(f"{'ok' if ok else 'FAIL':4} {name}: model.json input {inp}")
    if not ok:
        failures.append(f"{name} model.json input")

    rng = np.random.default_rng(14)
    hu = rng.normal(0, 500, (size, size, 3)).astype(np.float32)
    hu[:, :, 0] += 300  # end slices unlike their neighbours: the edge rule shows
    hu[:, :, 2] -= 300
    vol = f"{work}/v.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.diag([-0.8, -0.8, 2.0, 1.0])), vol)
    x = torch_input(hu, slices)
    cats = ["parotid", "submandibular", "larynx", "mandible", "overall"]
    pred = f"{work}/pred.csv"
    run(args.cbctiq, "predict", "--model", mdir, "--out", pred, "--per-slice", "--threads", "1", "--quiet", vol)
    got = np.full((hu.shape[2], 5), np.nan)
    for r in csv.DictReader(open(pred)):
        got[int(r["slice"]), cats.index(r["category"])] = float(r["pred"])
    with torch.no_grad():
        want = model(x).numpy()
    check(f"{name} predict --per-slice", got, want, 1e-5)
    c = cats.index("larynx")
    cam = f"{work}/cam.nii.gz"
    run(args.cbctiq, "gradcam", "--model", mdir, "--category", "larynx", "--layer", "layer4.1.relu_1", vol,
        "--out", cam, "--threads", "1", "--quiet")
    got_cam = np.transpose(np.asarray(nib.load(cam).dataobj), (2, 1, 0))
    _, ups = torch_gradcam(model, "layer4", x, 5)
    check(f"{name} gradcam at layer4", got_cam, ups[c], 1e-4)
    round_trip(name, mdir, work)


def round_trip(name, mdir, work):
    out = f"{work}/exported.onnx"
    run(args.cbctiq, "model", "export", mdir, "--onnx", out, "--quiet")
    m = onnx.load(out)
    try:
        onnx.checker.check_model(m, full_check=True)
        print(f"ok   {name} export: onnx.checker (full_check) passes")
    except Exception as e:  # noqa: BLE001 - any checker complaint is a failure
        print(f"FAIL {name} export: onnx.checker: {e}")
        failures.append(f"{name} checker")
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    dims = [d.dim_value or d.dim_param for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    if [i.name for i in m.graph.input] != ["input"] or dims != ["N", 5]:
        print(f"FAIL {name} export: inputs {[i.name for i in m.graph.input]}, output dims {dims}")
        failures.append(f"{name} export io")
    again = f"{work}/again"
    run(args.cbctiq, "model", "import", out, "--out", again, "--quiet")
    for f in ("model.json", "weights.safetensors"):
        same = open(f"{mdir}/{f}", "rb").read() == open(f"{again}/{f}", "rb").read()
        print(f"{'ok' if same else 'FAIL':4} {name} export -> import: {f} identical")
        if not same:
            failures.append(f"{name} round trip {f}")


for case in args.models.split(","):
    (compare_channels_case if case.endswith(("_rgb", "_25d")) else compare_case)(case)
if failures:
    sys.exit(f"{len(failures)} failures: {', '.join(failures)}")
print("all ONNX checks passed")
