#!/usr/bin/python3
"""PyTorch parity of cbctiq's attribution maps and Attribution Energy.

Builds a small iqnet-s with `cbctiq model init`, gives its batch norms
non-trivial statistics, runs tests/attrib/attrib_dump (our library) on random
slices, and recomputes every map with PyTorch autograd and the formulas of
pytorch-grad-cam. Maps must agree to 1e-4 of the map's largest magnitude, AE
to 1e-4 relative, on the target layer's grid and on the input grid
(F.interpolate bilinear, align_corners=False)."""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import Net, read_safetensors, write_safetensors  # noqa: E402

REL = 1e-4
failures = []


def check(name, got, want, rel=REL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(np.abs(want).max(), 1e-12)
    err = np.abs(got - want).max() / scale
    status = "ok" if err <= rel else "FAIL"
    print(f"{status:4} {name}: max |diff| / max |ref| = {err:.2e}")
    if err > rel:
        failures.append(name)


def make_model(cbctiq, d):
    subprocess.run([cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "3",
                    "--input", "32", "--seed", "5", "--out", d, "--quiet"], check=True)
    w = read_safetensors(f"{d}/weights.safetensors")
    rng = np.random.default_rng(7)
    for k in list(w):
        if k.endswith("running_mean"):
            w[k] = rng.normal(0, 0.2, w[k].shape).astype(np.float32)
        elif k.endswith("running_var"):
            w[k] = rng.uniform(0.5, 1.5, w[k].shape).astype(np.float32)
        elif ".bn" in k and k.endswith((".weight", ".bias")):
            w[k] = (rng.normal(1.0 if k.endswith("weight") else 0.1, 0.3, w[k].shape)).astype(np.float32)
    write_safetensors(f"{d}/weights.safetensors", w)


def run_dump(dump, model, slices, n, method, relu, sign, layer, prefix):
    subprocess.run([dump, model, slices, str(n), method, str(relu), str(sign), layer, prefix], check=True)
    ae = np.loadtxt(prefix + ".ae.txt", ndmin=2)
    inp = np.fromfile(prefix + ".input.f32", np.float32)
    feat = np.fromfile(prefix + ".feature.f32", np.float32) if os.path.exists(prefix + ".feature.f32") else None
    return ae, inp, feat


def torch_cam(net, x, method, target, sign, relu):
    """Returns per output: (pre-ReLU feature map [n,h,w] or None, input map [n,H,W])."""
    H, W = x.shape[-2:]
    n_out = len(net.spec["outputs"])
    res = []
    if method in ("gradxinput", "ig"):
        for c in range(n_out):
            if method == "gradxinput":
                xx = x.clone().requires_grad_(True)
                y, _ = net.forward_layers(xx)
                (g,) = torch.autograd.grad(sign * y[:, c].sum(), xx)
                m = (x * g).sum(1)  # one map per slice: the channels summed
            else:
                steps = 32
                acc = torch.zeros_like(x)
                for j in range(steps + 1):
                    wj = (0.5 if j in (0, steps) else 1.0) / steps
                    xx = (np.float32(j) / np.float32(steps) * x).clone().requires_grad_(True)
                    y, _ = net.forward_layers(xx)
                    (g,) = torch.autograd.grad(sign * y[:, c].sum(), xx)
                    acc += wj * g.double().float()
                m = (x * acc).sum(1)
            res.append((None, F.relu(m) if relu else m))
        return res
    x = x.clone().requires_grad_(True)  # so that the graph reaches A
    y, A = net.forward_layers(x, keep=target)
    x = x.detach()
    for c in range(n_out):
        if method == "eigencam":
            maps = []
            for a in A.detach().double():
                X = a.reshape(a.shape[0], -1).T
                Xc = X - X.mean(0)
                _, _, VT = torch.linalg.svd(Xc, full_matrices=True)
                v = VT[0]
                s = torch.dot(v, X.mean(0))
                if s < 0 or (s == 0 and v.sum() < 0):
                    v = -v
                maps.append((Xc @ v).reshape(a.shape[1:]))
            cam = torch.stack(maps).float()
        elif method == "scorecam":
            with torch.no_grad():
                up = torch.nn.UpsamplingBilinear2d(size=(H, W))(A)
                mx = up.flatten(2).max(-1)[0][:, :, None, None]
                mn = up.flatten(2).min(-1)[0][:, :, None, None]
                up = (up - mn) / (mx - mn + 1e-8)
                cams = []
                for s in range(x.shape[0]):
                    masked = x[s:s + 1] * up[s][:, None]
                    scores = sign * net.forward_layers(masked)[0][:, c]
                    wts = torch.softmax(scores, dim=0)
                    cams.append((wts[:, None, None] * A[s]).sum(0))
                cam = torch.stack(cams)
        else:
            (G,) = torch.autograd.grad(sign * y[:, c].sum(), A, retain_graph=True)
            Ad, G = A.detach(), G.detach()
            if method == "gradcam":
                cam = (G.mean((2, 3))[:, :, None, None] * Ad).sum(1)
            elif method == "hirescam":
                cam = (G * Ad).sum(1)
            elif method == "layercam":
                cam = (F.relu(G) * Ad).sum(1)
            elif method == "xgradcam":
                wts = (G * Ad / (Ad.sum((2, 3))[:, :, None, None] + 1e-7)).sum((2, 3))
                cam = (wts[:, :, None, None] * Ad).sum(1)
            elif method == "gradcam++":
                g2, g3 = G ** 2, G ** 3
                aij = g2 / (2 * g2 + Ad.sum((2, 3))[:, :, None, None] * g3 + 1e-6)
                aij = torch.where(G != 0, aij, torch.zeros_like(aij))
                wts = (F.relu(G) * aij).sum((2, 3))
                cam = (wts[:, :, None, None] * Ad).sum(1)
        chosen = F.relu(cam) if relu else cam
        up = F.interpolate(chosen[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
        res.append((cam, up))
    return res, y.detach(), A.shape


def cross_check_builder(net, model, xt):
    """Our functional builder against the nn.Module builder of the engine's
    own parity oracle (tests/nn/net_parity_oracle.py), when present."""
    nn_tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nn")
    sys.path.insert(0, nn_tests)
    try:
        import net_parity_oracle as npo
    except ImportError:
        print("note: tests/nn/net_parity_oracle.py not found; builder cross-check skipped")
        return
    ref = npo.Net(net.spec)
    state, _ = npo.read_safetensors(f"{model}/weights.safetensors")
    ref.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    ref.eval()
    target = net.spec["target_layer"]
    y_ref, a_ref = ref(xt.clone().requires_grad_(True), target)
    y, a = net.forward_layers(xt, keep=net.index(target))
    check("builder: outputs = nn.Module builder of net_parity_oracle", y.detach().numpy(), y_ref.detach().numpy(), 1e-6)
    check("builder: target activation = nn.Module builder", a.detach().numpy(), a_ref.detach().numpy(), 1e-6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--dump", required=True)
    args = ap.parse_args()
    # an empty folder: an output left by an earlier run must not stand in for this run's
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    torch.set_num_threads(1)
    model = os.path.join(args.workdir, "model")
    make_model(args.cbctiq, model)
    net = Net(model)
    n, H = 6, 32
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, (n, 1, H, H)).astype(np.float32)
    x[2] = 0.0  # a slice of zeros (air below hu_min)
    slices = os.path.join(args.workdir, "slices.f32")
    x.tofile(slices)
    xt = torch.from_numpy(x)
    cross_check_builder(net, model, xt)
    head_bias = net.t["head.bias"].double().numpy()

    cases = [("gradcam", 1, 1, "-"), ("gradcam", 0, 1, "-"), ("gradcam", 1, -1, "-"),
             ("gradcam", 1, 1, "block2.relu2"), ("hirescam", 1, 1, "-"), ("layercam", 1, 1, "-"),
             ("xgradcam", 1, 1, "-"), ("gradcam++", 1, 1, "-"), ("eigencam", 1, 1, "-"),
             ("scorecam", 1, 1, "-"), ("gradxinput", 0, 1, "-"), ("ig", 1, 1, "-")]
    for method, relu, sign, layer in cases:
        tag = f"{method} relu={relu} sign={sign:+d} layer={layer}"
        prefix = os.path.join(args.workdir, f"{method}_{relu}_{sign}_{layer}")
        ae, inp, feat = run_dump(args.dump, model, slices, n, method, relu, sign, layer, prefix)
        target = net.index(layer if layer != "-" else net.spec["target_layer"])
        out = torch_cam(net, xt, method, target, sign, relu)
        if method in ("gradxinput", "ig"):
            maps = out
        else:
            maps, y, _ = out
        n_out = len(maps)
        inp = inp.reshape(n_out, n, H, H)
        for c, (pre, up) in enumerate(maps):
            check(f"{tag} output {c} input-grid map", inp[c], up.numpy())
            check(f"{tag} output {c} AE", ae[c, 0], up.double().sum().item())
            if pre is None:
                continue
            chosen = F.relu(pre) if relu else pre
            fm = feat.reshape(n_out, n, *pre.shape[1:])
            check(f"{tag} output {c} feature-grid map", fm[c], chosen.numpy())
            check(f"{tag} output {c} AE feature", ae[c, 1], chosen.double().sum().item())
            if method == "gradcam" and layer == "-":
                # the identity, computed by PyTorch: pre-ReLU sum = sign * (y - b)
                want = sign * (y[:, c].double().numpy() - head_bias[c]).sum()
                check(f"{tag} output {c} identity (torch)", pre.double().sum().item(), want, 1e-5)
                check(f"{tag} output {c} pred part", ae[c, 4], want, 1e-5)
                check(f"{tag} output {c} pre-ReLU AE feature", ae[c, 2], want, 1e-4)
    if failures:
        print(f"{len(failures)} checks failed: {failures[:5]}")
        return 1
    print("all parity checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
