"""graph_parity_oracle.py - a graph network (layers that name their inputs:
residual blocks, a strided shortcut, a squeeze-excitation scale, a concat that
also reads the network's input) against the same network in PyTorch.

The PyTorch network is built from model.json alone: modules at their layer
names (so load_state_dict(strict=True) checks every tensor name and shape),
add/concat/mul as torch.add/torch.cat(dim=1)/torch.mul over the named inputs.
Weights come from PyTorch's initialisation (and random batch-norm
statistics), written by net_parity_oracle's safetensors writer.

1. net_dump (forward, backward to the target layer as Grad-CAM runs it, full
   backward) through net_parity_oracle.run_case: output, input gradient, the
   target layer's activation and gradient (the target is a residual block's
   add), every parameter gradient, running statistics; eval and train mode,
   1 and 2 threads. Outputs 1e-5, gradients 1e-4 (relative to the largest).
2. attrib_dump: Grad-CAM maps (feature and input grid) and AE at the output
   of a residual add and at a later block's ReLU, against autograd and
   pytorch-grad-cam's formula, 1e-4.
3. `cbctiq model info`: per-layer output shape, parameter count and the
   inputs a layer reads ("<- a, b").
4. torchvision's resnet18 (1 input channel, 64x64) with its own state_dict:
   the model.json builder against torchvision's forward, then 1 and 2 as
   above (eval and train; Grad-CAM at layer4 and at layer3.0's add).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import net_parity_oracle as npo  # noqa: E402

GRAPH_KINDS = ("add", "concat", "mul")


class GraphNet(nn.Module):
    """model.json as PyTorch: modules where a kind has one, functions over
    the named inputs for the graph kinds."""

    def __init__(self, spec):
        super().__init__()
        self.layers = spec["layers"]
        for L in self.layers:
            if L["type"] in GRAPH_KINDS:
                continue
            npo.add_at_path(self, L["name"], npo.make_layer(L))

    def inputs_of(self, i):
        L = self.layers[i]
        return L.get("inputs", [self.layers[i - 1]["name"] if i else "input"])

    def forward(self, x, target=None, keep_all=False):
        out = {"input": x}
        kept = None
        for i, L in enumerate(self.layers):
            xs = [out[name] for name in self.inputs_of(i)]
            t = L["type"]
            if t == "add":
                y = xs[0]
                for other in xs[1:]:
                    y = y + other
            elif t == "concat":
                y = torch.cat(xs, dim=1)
            elif t == "mul":
                y = xs[0] * xs[1]
            else:
                (y,) = xs
                y = self.get_submodule(L["name"])(y)
                if y.dim() == 2:  # cbctiq's linear output is [C, 1, 1]
                    y = y[:, :, None, None]
            if L["name"] == target:
                if y.requires_grad:
                    y.retain_grad()
                kept = y
            out[L["name"]] = y
        y = y.flatten(1)
        if keep_all:
            return y, out
        return y, kept


def graph_spec():
    def conv(name, cin, cout, k=3, stride=1, inputs=None):
        L = {"name": name, "type": "conv2d", "in_channels": cin, "out_channels": cout, "kernel_size": [k, k],
             "stride": [stride, stride], "padding": [k // 2, k // 2], "bias": False}
        if inputs:
            L["inputs"] = inputs
        return L

    def bn(name, c):
        return {"name": name, "type": "batchnorm2d", "num_features": c}

    def relu(name, inputs=None):
        L = {"name": name, "type": "relu"}
        if inputs:
            L["inputs"] = inputs
        return L

    layers = [
        conv("stem.conv", 1, 4), bn("stem.bn", 4), relu("stem.relu"),
        # basic block, identity shortcut
        conv("layer1.conv1", 4, 4), bn("layer1.bn1", 4), relu("layer1.relu1"),
        conv("layer1.conv2", 4, 4), bn("layer1.bn2", 4),
        {"name": "layer1.add", "type": "add", "inputs": ["layer1.bn2", "stem.relu"]},
        relu("layer1.relu2"),
        # basic block, strided 1x1 shortcut (read before the main path)
        conv("layer2.downsample.0", 4, 8, k=1, stride=2), bn("layer2.downsample.1", 8),
        conv("layer2.conv1", 4, 8, stride=2, inputs=["layer1.relu2"]), bn("layer2.bn1", 8),
        relu("layer2.relu1"), conv("layer2.conv2", 8, 8), bn("layer2.bn2", 8),
        {"name": "layer2.add", "type": "add", "inputs": ["layer2.bn2", "layer2.downsample.1"]},
        relu("layer2.relu2"),
        # squeeze-excitation scale [8, 1, 1], broadcast over the grid
        {"name": "se.pool", "type": "global_avgpool"},
        {"name": "se.fc1", "type": "linear", "in_features": 8, "out_features": 3, "bias": True},
        relu("se.relu"),
        {"name": "se.fc2", "type": "linear", "in_features": 3, "out_features": 8, "bias": True},
        {"name": "se.scale", "type": "mul", "inputs": ["layer2.relu2", "se.fc2"]},
        # the input again, at the block's resolution; a three-way concat
        {"name": "skip.pool", "type": "avgpool2d", "kernel_size": [2, 2], "stride": [2, 2],
         "padding": [0, 0], "inputs": ["input"]},
        {"name": "cat", "type": "concat", "inputs": ["layer2.relu2", "se.scale", "skip.pool"]},
        conv("fuse", 17, 6, k=1), relu("fuse_relu"),
        # an add of three, one of them read twice elsewhere
        {"name": "sum3", "type": "add", "inputs": ["fuse_relu", "fuse", "reduce"]},
        {"name": "gap", "type": "global_avgpool"},
        {"name": "head", "type": "linear", "in_features": 6, "out_features": 3, "bias": True},
    ]
    # reduce: a 1x1 conv of the concat to 6 channels, placed before sum3
    half = conv("reduce", 17, 6, k=1, inputs=["cat"])
    at = next(i for i, L in enumerate(layers) if L["name"] == "sum3")
    layers.insert(at, half)
    return {"format_version": 1, "arch": "custom",
            "input": {"height": 16, "width": 12, "hu_min": -1000, "hu_max": 1000},
            "outputs": ["a", "b", "c"], "target_layer": "layer1.add", "layers": layers}


def resnet18_spec(size, outputs):
    """torchvision's resnet18 (1 input channel) as model.json: module paths as
    layer names, so its state_dict loads as it is; the block's second ReLU
    (torchvision reuses one module) is named relu_1."""
    def conv(name, cin, cout, k, stride, inputs=None):
        L = {"name": name, "type": "conv2d", "in_channels": cin, "out_channels": cout,
             "kernel_size": [k, k], "stride": [stride, stride], "padding": [k // 2, k // 2], "bias": False}
        if inputs:
            L["inputs"] = inputs
        return L

    def bn(name, c):
        return {"name": name, "type": "batchnorm2d", "num_features": c, "eps": 1e-5, "momentum": 0.1}

    layers = [conv("conv1", 1, 64, 7, 2), bn("bn1", 64), {"name": "relu", "type": "relu"},
              {"name": "maxpool", "type": "maxpool2d", "kernel_size": [3, 3], "stride": [2, 2],
               "padding": [1, 1]}]
    cin, last = 64, "maxpool"
    for stage, cout in enumerate((64, 128, 256, 512), 1):
        for b in range(2):
            p = "layer%d.%d." % (stage, b)
            stride = 2 if stage > 1 and b == 0 else 1
            layers += [conv(p + "conv1", cin, cout, 3, stride), bn(p + "bn1", cout),
                       {"name": p + "relu", "type": "relu"}, conv(p + "conv2", cout, cout, 3, 1),
                       bn(p + "bn2", cout)]
            skip = last
            if stride != 1 or cin != cout:
                layers += [conv(p + "downsample.0", cin, cout, 1, stride, inputs=[last]),
                           bn(p + "downsample.1", cout)]
                skip = p + "downsample.1"
            layers += [{"name": p + "add", "type": "add", "inputs": [p + "bn2", skip]},
                       {"name": p + "relu_1", "type": "relu"}]
            cin, last = cout, p + "relu_1"
    layers += [{"name": "avgpool", "type": "global_avgpool"},
               {"name": "fc", "type": "linear", "in_features": 512, "out_features": len(outputs),
                "bias": True}]
    return {"format_version": 1, "arch": "custom",
            "input": {"height": size, "width": size, "hu_min": -1000, "hu_max": 1000},
            "outputs": outputs, "target_layer": "layer4.1.relu_1", "layers": layers}


def resnet18_case(args):
    """torchvision's own resnet18 on its own weights: our model.json builder
    and cbctiq against it, every gradient, Grad-CAM at layer4 and at an inner
    block's add."""
    import torchvision
    size, outputs = 64, ["a", "b", "c", "d", "e"]
    tv = torchvision.models.resnet18(num_classes=len(outputs))
    tv.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    g = torch.Generator().manual_seed(3)
    for m in tv.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    spec = resnet18_spec(size, outputs)
    d = os.path.join(args.workdir, "resnet18")
    os.makedirs(d)
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(spec, f, indent=1)
    npo.write_safetensors(os.path.join(d, "weights.safetensors"),
                          [(k, v.numpy()) for k, v in tv.state_dict().items()])
    net = GraphNet(spec)
    net.load_state_dict(tv.state_dict(), strict=True)
    net.eval()
    tv.eval()
    x = np.random.default_rng(8).random((2, 1, size, size), dtype=np.float32)
    with torch.no_grad():
        check("resnet18: model.json builder = torchvision", net(torch.from_numpy(x))[0].numpy(),
              tv(torch.from_numpy(x)).numpy(), 1e-6)
    # im2col + GEMM arithmetic: this random network on this input has ReLU
    # inputs within 1e-6 of their largest value from zero (7.4e-6 in
    # layer3.0), which Winograd's float rounding (3e-6 of the largest output
    # at 64 channels) flips, changing gradients by 1e-2. What this case checks
    # is the graph; Winograd against PyTorch is checked by onnx_oracle and
    # resnet_preset_oracle.
    for mode in ("eval", "train"):
        npo.run_case(args, "resnet18", d, mode, 2, 2, 60, helper_extra=["gemm"])
    for layer in ("layer4.1.relu_1", "layer3.0.add"):
        gradcam_case(args, d, net, x, layer)


def check(label, got, want, rel):
    npo.checked += 1
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12) if got.shape == want.shape else np.inf
    ok = err <= rel
    if not ok or os.environ.get("CBQ_ORACLE_VERBOSE"):
        print("%-58s rel err %.2e %s" % (label, err, "ok" if ok else "FAIL (tol %.0e)" % rel))
    if not ok:
        npo.failures.append(label)


def gradcam_case(args, model_dir, net, x, layer):
    """Grad-CAM of every output at `layer` by attrib_dump and by autograd."""
    n, _, H, W = x.shape
    slices = os.path.join(args.workdir, "slices.f32")
    x.tofile(slices)
    prefix = os.path.join(args.workdir, "cam_" + layer)
    subprocess.run([args.dump, model_dir, slices, str(n), "gradcam", "1", "1", layer, prefix], check=True)
    ae = np.loadtxt(prefix + ".ae.txt", ndmin=2)
    inp = np.fromfile(prefix + ".input.f32", np.float32)
    feat = np.fromfile(prefix + ".feature.f32", np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    y, A = net(xt, layer)
    K = y.shape[1]
    inp = inp.reshape(K, n, H, W)
    feat = feat.reshape(K, n, A.shape[2], A.shape[3])
    for c in range(K):
        (G,) = torch.autograd.grad(y[:, c].sum(), A, retain_graph=True)
        cam = F.relu((G.mean((2, 3))[:, :, None, None] * A.detach()).sum(1))
        up = F.interpolate(cam[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
        tag = "gradcam at %s output %d" % (layer, c)
        check(tag + " feature map", feat[c], cam.detach().numpy(), 1e-4)
        check(tag + " input map", inp[c], up.detach().numpy(), 1e-4)
        check(tag + " AE", ae[c, 0], up.double().sum().item(), 1e-4)


def check_outputs_tight(args, model_dir, spec, mode, threads, n, seed):
    """run_case compares outputs to 1e-4; outputs must agree to 1e-5."""
    ours, _ = npo.read_safetensors(os.path.join(args.workdir, "graph-%s-t%d" % (mode, threads),
                                                "out.safetensors"))
    ref = GraphNet(spec)
    state, _ = npo.read_safetensors(os.path.join(model_dir, "weights.safetensors"))
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    ref.train(mode == "train")
    h, w = spec["input"]["height"], spec["input"]["width"]
    x = np.random.default_rng(seed).random((n, 1, h, w), dtype=np.float32)  # as run_case draws it
    with torch.no_grad():
        y, _ = ref(torch.from_numpy(x))
    check("graph %s %dt output (1e-5)" % (mode, threads), ours["output"], y.numpy(), 1e-5)


def check_model_info(args, model_dir, spec, net):
    text = subprocess.run([args.cbctiq, "model", "info", model_dir], check=True, capture_output=True,
                          text=True).stdout
    rows = {}
    for line in text.splitlines():
        f = line.split(None, 6)
        if len(f) >= 6 and f[0].isdigit():
            rows[f[1]] = (f[3], int(f[4]), f[6].strip() if len(f) > 6 else None)
    h, w = spec["input"]["height"], spec["input"]["width"]
    with torch.no_grad():
        _, outs = net(torch.zeros(1, 1, h, w), keep_all=True)
    for i, L in enumerate(spec["layers"]):
        y = outs[L["name"]]
        shape = "x".join(str(d) for d in (list(y.shape[1:]) + [1, 1])[:3])
        params = 0 if L["type"] in GRAPH_KINDS else sum(
            p.numel() for p in net.get_submodule(L["name"]).parameters())
        shows = "<- " + ", ".join(L["inputs"]) if "inputs" in L else None
        got = rows.get(L["name"])
        npo.checked += 1
        if got != (shape, params, shows):
            print("model info %s: got %s, expected %s FAIL" % (L["name"], got, (shape, params, shows)))
            npo.failures.append("model info " + L["name"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    torch.set_num_threads(1)
    npo.Net = GraphNet  # run_case and torch_weights_dir build this network

    spec = graph_spec()
    model_dir = npo.torch_weights_dir(args, "graph", spec, 7)
    for threads in (1, 2):
        for mode in ("eval", "train"):
            npo.run_case(args, "graph", model_dir, mode, threads, 3, 40 + threads)
            check_outputs_tight(args, model_dir, spec, mode, threads, 3, 40 + threads)

    net = GraphNet(spec)
    state, _ = npo.read_safetensors(os.path.join(model_dir, "weights.safetensors"))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    net.eval()
    x = np.random.default_rng(5).random((4, 1, 16, 12), dtype=np.float32)
    y_ours = None
    for layer in ("layer1.add", "layer2.relu2", "cat"):
        gradcam_case(args, model_dir, net, x, layer)
    pred = np.fromfile(os.path.join(args.workdir, "cam_cat.pred.f32"), np.float32)
    y_ours = pred.reshape(4, -1)
    check("attrib_dump predictions (outputs, 1e-5)", y_ours, net(torch.from_numpy(x))[0].detach().numpy(), 1e-5)
    check_model_info(args, model_dir, spec, net)
    resnet18_case(args)
    # the attribution oracles' functional builder runs graphs the same way
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "attrib"))
    import torch_model  # noqa: E402
    fnet = torch_model.Net(model_dir)
    y_f, a_f = fnet.forward_layers(torch.from_numpy(x), keep=fnet.index("layer1.add"))
    y_m, a_m = net(torch.from_numpy(x), "layer1.add")
    check("torch_model builder: outputs", y_f.detach().numpy(), y_m.detach().numpy(), 1e-6)
    check("torch_model builder: layer1.add", a_f.detach().numpy(), a_m.detach().numpy(), 1e-6)

    print("%d comparisons, %d failed" % (npo.checked, len(npo.failures)))
    if npo.failures:
        print("failed: " + ", ".join(npo.failures[:20]))
        sys.exit(1)


if __name__ == "__main__":
    main()
