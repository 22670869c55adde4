"""net_parity_oracle.py - whole networks from model directories against PyTorch.

The reference network is built in PyTorch from model.json alone (layer names
are module paths: "block1.conv1" is submodule conv1 of block1), so this also
checks that model.json and the state_dict names mean what docs/model-files.md
says. safetensors files are read and written here with json + numpy (torch
1.13 has no safetensors module).

1. cbctiq -> PyTorch: `cbctiq model init` writes a model; PyTorch loads its
   weights with strict=True (every name and shape must match its own
   state_dict, in the same order). The helper net_dump runs forward and a
   full backward in cbctiq; we compare outputs, input gradients, the target
   layer's activation and gradient, every parameter gradient and, in train
   mode, the updated running statistics and num_batches_tracked.
2. PyTorch -> cbctiq: a custom model.json using every layer kind gets weights
   from PyTorch's own initialisation and random BN statistics, written by this
   script's safetensors writer (tensors in reverse order, metadata, padding);
   cbctiq loads them and must give the same results.
3. `cbctiq model info`: per-layer output shapes and parameter counts against
   PyTorch's modules, conv/linear FLOPs from the shapes PyTorch produces.
Both in eval and train mode (dropout only in eval: masks come from different
generators), with 1 and 2 threads. Relative error per tensor
max|ours - torch| / max|torch| <= 1e-4; counters exact.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

TOL = 1e-4
failures = []
checked = 0

DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "F16": "<f2"}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        out[name] = arr.copy()
    return out, list(k for k in header if k != "__metadata__")


def write_safetensors(path, tensors, metadata=None):
    """Our own writer after the specification: header padded to 8 bytes."""
    header, blobs, at = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, arr in tensors:
        if arr.dtype == np.int64:
            dt, blob = "I64", arr.astype("<i8").tobytes()
        else:
            dt, blob = "F32", arr.astype("<f4").tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


class FlatLinear(nn.Linear):
    """cbctiq's linear flattens its input first."""

    def forward(self, x):
        return super().forward(x.flatten(1))


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


def make_layer(L):
    t = L["type"]
    if t == "conv2d":
        return nn.Conv2d(L["in_channels"], L["out_channels"], pair(L["kernel_size"]),
                         pair(L.get("stride", 1)), pair(L.get("padding", 0)), bias=L.get("bias", True),
                         dilation=pair(L.get("dilation", 1)), groups=L.get("groups", 1))
    if t == "batchnorm2d":
        return nn.BatchNorm2d(L["num_features"], eps=L.get("eps", 1e-5), momentum=L.get("momentum", 0.1))
    if t == "relu":
        return nn.ReLU()
    if t == "leaky_relu":
        return nn.LeakyReLU(L.get("negative_slope", 0.01))
    if t in ("maxpool2d", "avgpool2d"):
        k = pair(L["kernel_size"])
        cls = nn.MaxPool2d if t == "maxpool2d" else nn.AvgPool2d
        return cls(k, pair(L.get("stride", list(k))), pair(L.get("padding", 0)),
                   ceil_mode=L.get("ceil_mode", False))
    if t == "global_avgpool":
        return nn.AdaptiveAvgPool2d(1)
    if t == "adaptive_avgpool2d":
        return nn.AdaptiveAvgPool2d(pair(L.get("output_size", 1)))
    if t == "identity":
        return nn.Identity()
    if t == "flatten":
        return nn.Flatten()
    if t == "sigmoid":
        return nn.Sigmoid()
    if t == "silu":
        return nn.SiLU()
    if t == "dropout":
        return nn.Dropout(L.get("p", 0.5))
    if t == "linear":
        return FlatLinear(L["in_features"], L["out_features"], bias=L.get("bias", True))
    raise ValueError("unknown layer type " + t)


def add_at_path(root, name, module):
    """Adds module to root under a layer name read as a module path
    ("block1.conv1": submodule conv1 of block1, created empty when new)."""
    parts = name.split(".")
    parent = root
    for p in parts[:-1]:
        if p not in parent._modules:
            parent.add_module(p, nn.Module())
        parent = parent._modules[p]
    parent.add_module(parts[-1], module)


class Net(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.names = []
        for L in spec["layers"]:
            add_at_path(self, L["name"], make_layer(L))
            self.names.append(L["name"])

    def forward(self, x, target):
        kept = None
        for name in self.names:
            x = self.get_submodule(name)(x)
            if name == target:
                x.retain_grad()
                kept = x
        return x, kept


def rel_err(ours, ref):
    ours = np.asarray(ours, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float64).ravel()
    if ours.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-6))


def compare(label, ours, ref, tol=TOL):
    global checked
    checked += 1
    e = rel_err(ours, ref)
    ok = e <= tol
    if not ok or os.environ.get("CBQ_ORACLE_VERBOSE"):
        print("%-58s rel err %.2e %s" % (label, e, "ok" if ok else "FAIL (tol %.0e)" % tol))
    if not ok:
        failures.append(label)


def compare_exact(label, ours, ref):
    global checked
    checked += 1
    if not np.array_equal(np.asarray(ours), np.asarray(ref)):
        print("%-58s %s != %s FAIL" % (label, ours, ref))
        failures.append(label)


def run_case(args, label, model_dir, mode, threads, n, seed, helper_extra=()):
    spec = json.load(open(os.path.join(model_dir, "model.json")))
    weights, order = read_safetensors(os.path.join(model_dir, "weights.safetensors"))
    torch.manual_seed(0)
    ref = Net(spec)
    sd = {k: torch.from_numpy(v) for k, v in weights.items()}
    ref.load_state_dict(sd, strict=True)  # names and shapes as PyTorch lays them out
    ref.train(mode == "train")
    h, w, k = spec["input"]["height"], spec["input"]["width"], len(spec["outputs"])
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, h, w), dtype=np.float32)
    dout = rng.standard_normal((n, k)).astype(np.float32)
    work = os.path.join(args.workdir, "%s-%s-t%d" % (label, mode, threads))
    os.makedirs(work, exist_ok=True)
    x.tofile(os.path.join(work, "in.f32"))
    dout.tofile(os.path.join(work, "dout.f32"))
    out_path = os.path.join(work, "out.safetensors")
    subprocess.run([args.helper, model_dir, os.path.join(work, "in.f32"), os.path.join(work, "dout.f32"),
                    str(n), mode, str(threads), out_path] + list(helper_extra), check=True)
    ours, _ = read_safetensors(out_path)

    xt = torch.from_numpy(x).requires_grad_(True)
    y, act = ref(xt, spec["target_layer"])
    y.backward(torch.from_numpy(dout))
    tag = "%s %s %dt" % (label, mode, threads)
    compare(tag + " output", ours["output"], y.detach().numpy())
    compare(tag + " input_grad", ours["input_grad"], xt.grad.numpy())
    compare(tag + " target_act " + spec["target_layer"], ours["target_act"], act.detach().numpy())
    compare(tag + " target_grad " + spec["target_layer"], ours["target_grad"], act.grad.numpy())
    params = dict(ref.named_parameters())
    # A conv bias feeding a train-mode batch norm has gradient exactly 0 (the
    # batch mean absorbs it); both sides hold rounding noise, so bound it by
    # the scale of the same layer's weight gradient instead.
    absorbed = set()
    if mode == "train":
        for a, b in zip(spec["layers"], spec["layers"][1:]):
            if a["type"] == "conv2d" and a.get("bias", True) and b["type"] == "batchnorm2d":
                absorbed.add(a["name"] + ".bias")
    for name, p in params.items():
        if name in absorbed:
            scale = np.max(np.abs(params[name[:-len("bias")] + "weight"].grad.numpy()))
            compare(tag + " grad " + name + " (~0)", ours["grad." + name] / scale + 1.0,
                    np.ones_like(p.grad.numpy()))
            continue
        compare(tag + " grad " + name, ours["grad." + name], p.grad.numpy())
    for name, v in ref.state_dict().items():
        if name.endswith("num_batches_tracked"):
            compare_exact(tag + " " + name, ours["state." + name], v.numpy())
        elif name not in params:
            compare(tag + " state " + name, ours["state." + name], v.numpy())
    return order, list(ref.state_dict().keys())


def custom_spec(with_dropout):
    layers = [
        {"name": "stem.conv", "type": "conv2d", "in_channels": 1, "out_channels": 6, "kernel_size": [3, 5],
         "stride": [2, 1], "padding": [1, 2], "bias": True},
        {"name": "stem.bn", "type": "batchnorm2d", "num_features": 6, "eps": 1e-3, "momentum": 0.3},
        {"name": "stem.act", "type": "leaky_relu", "negative_slope": 0.2},
        {"name": "down", "type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
        {"name": "body.0", "type": "conv2d", "in_channels": 6, "out_channels": 8, "kernel_size": 3,
         "padding": 1, "bias": False},
        {"name": "body.1", "type": "batchnorm2d", "num_features": 8},
        {"name": "body.2", "type": "relu"},
        {"name": "smooth", "type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
    ]
    if with_dropout:
        layers.append({"name": "drop", "type": "dropout", "p": 0.3})
    layers += [
        {"name": "fc1", "type": "linear", "in_features": 8 * 3 * 4, "out_features": 10},
        {"name": "fc_act", "type": "relu"},
        {"name": "fc2", "type": "linear", "in_features": 10, "out_features": 3, "bias": True},
    ]
    return {"format_version": 1, "arch": "custom",
            "input": {"height": 21, "width": 13, "hu_min": -1024, "hu_max": 3071},
            "outputs": ["a", "b", "c"], "target_layer": "body.2", "layers": layers}


def kinds_spec():
    """The single-input kinds of graph networks: dilated, grouped and
    depthwise convolutions, ceil_mode pools on odd sizes (windows hanging over
    the edge), SiLU, sigmoid, identity, adaptive pooling, flatten."""
    layers = [
        {"name": "stem.conv", "type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3,
         "padding": 2, "dilation": 2},
        {"name": "stem.bn", "type": "batchnorm2d", "num_features": 4},
        {"name": "stem.act", "type": "silu"},
        {"name": "down", "type": "maxpool2d", "kernel_size": 2, "ceil_mode": True},
        {"name": "dw.conv", "type": "conv2d", "in_channels": 4, "out_channels": 8, "kernel_size": 3,
         "padding": 1, "groups": 4, "bias": False},
        {"name": "dw.bn", "type": "batchnorm2d", "num_features": 8},
        {"name": "dw.act", "type": "sigmoid"},
        {"name": "grp.conv", "type": "conv2d", "in_channels": 8, "out_channels": 8, "kernel_size": 3,
         "padding": [2, 3], "dilation": [2, 3], "groups": 2},
        {"name": "grp.act", "type": "relu"},
        {"name": "smooth", "type": "avgpool2d", "kernel_size": 2, "ceil_mode": True},
        {"name": "skip", "type": "identity"},
        {"name": "pool", "type": "adaptive_avgpool2d", "output_size": 1},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "linear", "in_features": 8, "out_features": 3},
    ]
    return {"format_version": 1, "arch": "custom",
            "input": {"height": 21, "width": 13, "hu_min": -1024, "hu_max": 3071},
            "outputs": ["a", "b", "c"], "target_layer": "grp.act", "layers": layers}


def torch_weights_dir(args, label, spec, seed):
    """A model directory whose weights PyTorch made and this script wrote."""
    d = os.path.join(args.workdir, label)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(spec, f, indent=1)
    torch.manual_seed(seed)
    net = Net(spec)
    g = torch.Generator().manual_seed(seed + 1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.num_batches_tracked.fill_(7)
    items = [(k, v.numpy()) for k, v in net.state_dict().items()]
    write_safetensors(os.path.join(d, "weights.safetensors"), list(reversed(items)),
                      {"format": "pt", "source": "torch " + torch.__version__})
    return d


def check_model_info(args, model_dir):
    """`cbctiq model info`: per-layer parameters against PyTorch's numel(),
    output shapes and conv/linear FLOPs against shapes PyTorch produces."""
    global checked
    spec = json.load(open(os.path.join(model_dir, "model.json")))
    text = subprocess.run([args.cbctiq, "model", "info", model_dir], check=True, capture_output=True,
                          text=True).stdout
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 6 and f[0].isdigit():
            rows[f[1]] = (f[3], int(f[4]), float(f[5]))
    net = Net(spec).eval()
    h, w = spec["input"]["height"], spec["input"]["width"]
    x = torch.zeros(1, 1, h, w)
    total = 0
    for L in spec["layers"]:
        mod = net.get_submodule(L["name"])
        y = mod(x)
        params = sum(p.numel() for p in mod.parameters())
        total += params
        shape = "x".join(str(d) for d in (list(y.shape[1:]) + [1, 1])[:3])
        flops = None
        if isinstance(mod, nn.Conv2d):
            fan_in = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            flops = y.numel() * (2 * fan_in + (1 if mod.bias is not None else 0))
        elif isinstance(mod, nn.Linear):
            flops = y.numel() * (2 * mod.in_features + (1 if mod.bias is not None else 0))
        got = rows.get(L["name"])
        checked += 1
        ok = got is not None and got[0] == shape and got[1] == params and \
            (flops is None or abs(got[2] - flops / 1e6) <= 0.0005 + 1e-6 * flops / 1e6)
        if not ok:
            print("model info %s: got %s, torch %s %d params %s FLOP FAIL" % (L["name"], got, shape, params, flops))
            failures.append("model info " + L["name"])
        x = y
    checked += 1
    if "total: %d parameters" % total not in text:
        print("model info total: expected %d parameters FAIL" % total)
        failures.append("model info total")
    # The columns line up: each row's output shape starts under the header's
    # "output", whatever the length of its type (adaptive_avgpool2d is the longest).
    checked += 1
    lines = text.splitlines()
    header = next(line for line in lines if line.split()[:3] == ["#", "name", "type"])
    starts = {header.index(" output") + 1}
    for line in lines:
        f = line.split()
        if len(f) == 6 and f[0].isdigit():
            starts.add(line.index(" " + f[3], line.index(" " + f[2]) + len(f[2])) + 1)
    if len(starts) != 1:
        print("model info: the output column starts at %s, not at one place FAIL" % sorted(starts))
        failures.append("model info columns")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    torch.set_num_threads(1)

    init_dir = os.path.join(args.workdir, "iqnet")
    subprocess.run([args.cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "3",
                    "--input", "32", "--seed", "5", "--quiet", "--out", init_dir], check=True)
    check_model_info(args, init_dir)
    for threads in (1, 2):
        for mode in ("eval", "train"):
            order, torch_order = run_case(args, "iqnet-s", init_dir, mode, threads, 3, 10 + threads)
            if order != torch_order:
                failures.append("state_dict order")
                print("tensor order differs from PyTorch's state_dict:\n %s\n %s" % (order, torch_order))

    drop_dir = torch_weights_dir(args, "torch-dropout", custom_spec(True), 3)
    plain_dir = torch_weights_dir(args, "torch-plain", custom_spec(False), 4)
    check_model_info(args, drop_dir)
    for threads in (1, 2):
        run_case(args, "torch-dropout", drop_dir, "eval", threads, 4, 20 + threads)
        for mode in ("eval", "train"):
            run_case(args, "torch-plain", plain_dir, mode, threads, 4, 30 + threads)

    kinds_dir = torch_weights_dir(args, "torch-kinds", kinds_spec(), 5)
    check_model_info(args, kinds_dir)
    for threads in (1, 2):
        for mode in ("eval", "train"):
            run_case(args, "torch-kinds", kinds_dir, mode, threads, 4, 40 + threads)

    print("%d comparisons, %d failed" % (checked, len(failures)))
    if failures:
        print("failed: " + ", ".join(failures[:20]))
        sys.exit(1)


if __name__ == "__main__":
    main()
