"""layers_oracle.py - every engine layer, loss and optimiser against PyTorch.

For each case the script writes random inputs as raw float32 files, runs the
C helper nn_layer_dump on them and computes the same operation with torch
(float32, CPU). Every output is compared by relative error
max|ours - torch| / max(max|torch|, 1e-6) <= 1e-4 (optimisers: 1e-5 after
several steps; loss values: 1e-5; the outputs of the layers that came with
graph networks - conv dilation and groups, ceil_mode pools, identity, flatten,
sigmoid, silu, adaptive average pooling - 1e-5). Cases run with 1 and 2
threads.
Gradient clipping is checked after every SGD step, with per-step norms on
both sides of the threshold.
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOL = 1e-4
OUT_TOL = 1e-5  # outputs of the graph-network layer kinds
failures = []
checked = 0


def rel_err(ours, ref):
    ref = np.asarray(ref, dtype=np.float64).ravel()
    ours = np.asarray(ours, dtype=np.float64).ravel()
    if ours.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-6))


class Case:
    def __init__(self, workdir, helper, name):
        self.dir = os.path.join(workdir, name)
        self.name = name
        self.helper = helper
        os.makedirs(self.dir, exist_ok=True)

    def put(self, key, arr):
        np.asarray(arr, dtype="<f4").tofile(os.path.join(self.dir, key + ".f32"))

    def get(self, key):
        return np.fromfile(os.path.join(self.dir, key + ".f32"), dtype="<f4")

    def run(self, op, **kw):
        args = [self.helper, self.dir, op] + ["%s=%s" % (k, v) for k, v in kw.items()]
        subprocess.run(args, check=True)

    def compare(self, key, ref, tol=TOL):
        global checked
        checked += 1
        ref = ref.detach().numpy() if torch.is_tensor(ref) else ref
        e = rel_err(self.get(key), ref)
        status = "ok" if e <= tol else "FAIL"
        print("%-40s %-8s rel err %.2e (tol %.0e) %s" % (self.name, key, e, tol, status))
        if not e <= tol:
            failures.append("%s/%s" % (self.name, key))


def t32(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float32), requires_grad=grad)


def conv_case(a, rng, tag, threads, cin, cout, kh, kw, sh, sw, ph, pw, bias, n, h, w,
              dil=(1, 1), groups=1, out_tol=TOL):
    c = Case(a.workdir, a.helper, "conv2d_%s_t%d" % (tag, threads))
    x = rng.standard_normal((n, cin, h, w))
    wt = rng.standard_normal((cout, cin // groups, kh, kw)) * 0.3
    b = rng.standard_normal(cout)
    oh = (h + 2 * ph - dil[0] * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dil[1] * (kw - 1) - 1) // sw + 1
    g = rng.standard_normal((n, cout, oh, ow))
    for k, v in (("in", x), ("w", wt), ("b", b), ("dout", g)):
        c.put(k, v)
    c.run("conv2d", cin=cin, cout=cout, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, bias=int(bias),
          n=n, h=h, w=w, threads=threads, dh=dil[0], dw=dil[1], groups=groups)
    tx, tw, tb = t32(x, True), t32(wt, True), t32(b, True)
    y = F.conv2d(tx, tw, tb if bias else None, stride=(sh, sw), padding=(ph, pw), dilation=dil,
                 groups=groups)
    y.backward(t32(g))
    c.compare("out", y, tol=out_tol)
    c.compare("din", tx.grad)
    c.compare("dw", tw.grad)
    if bias:
        c.compare("db", tb.grad)


def bn_case(a, rng, tag, threads, train, n, ch, h, w, eps=1e-5, momentum=0.1):
    c = Case(a.workdir, a.helper, "bn_%s_t%d" % (tag, threads))
    x = rng.standard_normal((n, ch, h, w)) * 2 + 0.5
    gamma = rng.standard_normal(ch)
    beta = rng.standard_normal(ch)
    rm = rng.standard_normal(ch) * 0.1
    rv = rng.uniform(0.5, 2.0, ch)
    g = rng.standard_normal((n, ch, h, w))
    for k, v in (("in", x), ("gamma", gamma), ("beta", beta), ("rm", rm), ("rv", rv), ("dout", g)):
        c.put(k, v)
    c.run("bn", n=n, c=ch, h=h, w=w, train=int(train), eps=eps, momentum=momentum, threads=threads)
    bn = torch.nn.BatchNorm2d(ch, eps=eps, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(t32(gamma))
        bn.bias.copy_(t32(beta))
        bn.running_mean.copy_(t32(rm))
        bn.running_var.copy_(t32(rv))
    bn.train(train)
    tx = t32(x, True)
    y = bn(tx)
    y.backward(t32(g))
    c.compare("out", y)
    c.compare("din", tx.grad)
    c.compare("dgamma", bn.weight.grad)
    c.compare("dbeta", bn.bias.grad)
    c.compare("rm_new", bn.running_mean)
    c.compare("rv_new", bn.running_var)


def simple_case(a, rng, op, tag, threads, n, ch, h, w, fn, x=None, out_tol=TOL, **kw):
    c = Case(a.workdir, a.helper, "%s_%s_t%d" % (op, tag, threads))
    if x is None:
        x = rng.standard_normal((n, ch, h, w))
    tx = t32(x, True)
    y = fn(tx)
    g = rng.standard_normal(tuple(y.shape))
    c.put("in", x)
    c.put("dout", g)
    c.run(op, n=n, c=ch, h=h, w=w, threads=threads, **kw)
    y.backward(t32(g))
    c.compare("out", y, tol=out_tol)
    c.compare("din", tx.grad)


def nan_case(a, rng, threads):
    """2x2 max-pool on rows wide enough for the vectorised loop (and its
    remainder), with ties and one NaN in some windows: the NaN is the
    maximum and takes the gradient, as in PyTorch. Compared exactly."""
    x = np.round(rng.standard_normal((2, 3, 6, 42)))
    x[:, :, ::2, 4::9] = np.nan
    c = Case(a.workdir, a.helper, "maxpool_nan2x2_t%d" % threads)
    tx = t32(x, True)
    y = F.max_pool2d(tx, 2, 2)
    g = rng.standard_normal(tuple(y.shape))
    c.put("in", x)
    c.put("dout", g)
    c.run("maxpool", n=2, c=3, h=6, w=42, threads=threads, kh=2, kw=2, sh=2, sw=2, ph=0, pw=0)
    y.backward(t32(g))
    global checked
    for key, ref in (("out", y), ("din", tx.grad)):
        checked += 1
        same = np.array_equal(c.get(key), ref.detach().numpy().ravel(), equal_nan=True)
        print("%-40s %-8s exact (NaN where PyTorch has NaN) %s" % (c.name, key, "ok" if same else "FAIL"))
        if not same:
            failures.append("%s/%s" % (c.name, key))


def linear_case(a, rng, tag, bias, n, fin, fout):
    c = Case(a.workdir, a.helper, "linear_" + tag)
    x, wt, b = rng.standard_normal((n, fin)), rng.standard_normal((fout, fin)), rng.standard_normal(fout)
    g = rng.standard_normal((n, fout))
    for k, v in (("in", x), ("w", wt), ("b", b), ("dout", g)):
        c.put(k, v)
    c.run("linear", n=n, fin=fin, fout=fout, bias=int(bias))
    tx, tw, tb = t32(x, True), t32(wt, True), t32(b, True)
    y = F.linear(tx, tw, tb if bias else None)
    y.backward(t32(g))
    c.compare("out", y)
    c.compare("din", tx.grad)
    c.compare("dw", tw.grad)
    if bias:
        c.compare("db", tb.grad)


def loss_case(a, rng, tag, kind, n, k, fn, target, delta=1.0):
    c = Case(a.workdir, a.helper, "loss_" + tag)
    pred = rng.standard_normal((n, k)) * 1.5
    c.put("pred", pred)
    c.put("target", target)
    c.run("loss", n=n, k=k, kind=kind, delta=delta)
    tp = t32(pred, True)
    loss = fn(tp, t32(target))
    loss.backward()
    c.compare("loss", loss.detach().reshape(1), tol=1e-5)
    c.compare("dpred", tp.grad)


def optim_case(a, rng, tag, kind, make, steps=5, clip=0.0, **kw):
    c = Case(a.workdir, a.helper, "optim_" + tag)
    count = 37
    p0 = rng.standard_normal(count)
    gs = rng.standard_normal((steps, count))
    c.put("p", p0)
    c.put("g", gs)
    c.run("optim", kind=kind, count=count, steps=steps, clip=clip, **kw)
    p = torch.nn.Parameter(t32(p0))
    opt = make([p])
    for s in range(steps):
        p.grad = t32(gs[s]).clone()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_([p], clip)
        opt.step()
    c.compare("p_new", p.detach(), tol=1e-5)


def clip_case(a, rng, tag, kind, make, clip, scales, **kw):
    """Global-norm clipping step by step. Each step's gradient has its own
    scale, so that its norm lies below the threshold on some steps and above
    it on others: a wrong threshold, a rescale applied to every step or a
    wrong factor changes the parameters after some step. With SGD (no
    momentum) the update is proportional to the clipped gradient, so, unlike
    Adam, it does not hide a constant rescale."""
    c = Case(a.workdir, a.helper, "clip_" + tag)
    count, steps = 37, len(scales)
    p0 = rng.standard_normal(count)
    gs = rng.standard_normal((steps, count)) * np.asarray(scales)[:, None]
    c.put("p", p0)
    c.put("g", gs)
    c.run("optim", kind=kind, count=count, steps=steps, clip=clip, **kw)
    p = torch.nn.Parameter(t32(p0))
    opt = make([p])
    want_p, want_norm = [], []
    for s in range(steps):
        p.grad = t32(gs[s]).clone()
        want_norm.append(float(torch.nn.utils.clip_grad_norm_([p], clip)))
        opt.step()
        want_p.append(p.detach().clone().numpy())
    clipped = [n > clip for n in want_norm]
    if all(clipped) or not any(clipped):
        failures.append("%s: the case must clip some steps and not others (norms %s)" % (c.name, want_norm))
    c.compare("norms", np.asarray(want_norm), tol=1e-5)
    got = c.get("p_steps").reshape(steps, count)
    for s in range(steps):
        global checked
        checked += 1
        e = rel_err(got[s], want_p[s])
        print("%-40s step %d norm %.3f %s rel err %.2e %s" % (c.name, s, want_norm[s],
              "clipped" if clipped[s] else "kept   ", e, "ok" if e <= 1e-5 else "FAIL"))
        if not e <= 1e-5:
            failures.append("%s/step%d" % (c.name, s))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--helper", required=True)
    a = ap.parse_args()
    # an empty folder: a result file left by an earlier run must not stand in for this run's
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261127)

    for t in (1, 2):
        conv_case(a, rng, "3x3p1", t, 3, 5, 3, 3, 1, 1, 1, 1, True, 3, 9, 7)
        conv_case(a, rng, "5x3s2", t, 4, 6, 5, 3, 2, 1, 2, 1, False, 3, 11, 10)
        conv_case(a, rng, "1x1", t, 8, 4, 1, 1, 1, 1, 0, 0, True, 2, 5, 6)
        conv_case(a, rng, "16to32", t, 16, 32, 3, 3, 1, 1, 1, 1, True, 4, 16, 16)
        # "same"-width stride-1 unfolding (one copy per kernel tap): a kernel
        # taller and wider than the image, and a 3x5 kernel padded (2, 2)
        conv_case(a, rng, "5x5p2_small", t, 3, 4, 5, 5, 1, 1, 2, 2, False, 2, 3, 4)
        conv_case(a, rng, "3x5p2", t, 3, 4, 3, 5, 1, 1, 2, 2, True, 2, 6, 9)
        # small output planes: several samples per GEMM, a shorter last group
        conv_case(a, rng, "grouped3x3", t, 6, 5, 3, 3, 1, 1, 1, 1, True, 5, 5, 6)
        conv_case(a, rng, "grouped3x3s2", t, 4, 6, 3, 3, 2, 2, 1, 1, True, 7, 7, 7)
        conv_case(a, rng, "grouped1x1s2", t, 8, 4, 1, 1, 2, 2, 0, 0, False, 4, 6, 6)
        bn_case(a, rng, "train", t, True, 4, 6, 5, 7)
        bn_case(a, rng, "train_mom", t, True, 3, 5, 4, 4, eps=1e-3, momentum=0.3)
        bn_case(a, rng, "eval", t, False, 4, 6, 5, 7)
        # conv2d_general.c: dilation, groups, depthwise (with a channel multiplier), both
        conv_case(a, rng, "dil2", t, 3, 5, 3, 3, 1, 1, 2, 2, True, 3, 11, 9, dil=(2, 2), out_tol=OUT_TOL)
        conv_case(a, rng, "dil2x3s2", t, 4, 4, 3, 3, 2, 2, 1, 3, False, 2, 12, 13, dil=(2, 3),
                  out_tol=OUT_TOL)
        conv_case(a, rng, "groups2", t, 6, 8, 3, 3, 1, 1, 1, 1, True, 3, 9, 8, groups=2, out_tol=OUT_TOL)
        conv_case(a, rng, "depthwise", t, 8, 8, 3, 3, 1, 1, 1, 1, True, 3, 10, 9, groups=8,
                  out_tol=OUT_TOL)
        conv_case(a, rng, "depthwise_x2s2", t, 4, 8, 5, 5, 2, 2, 2, 2, False, 2, 11, 10, groups=4,
                  out_tol=OUT_TOL)
        conv_case(a, rng, "groups4_dil2", t, 8, 12, 3, 3, 1, 1, 2, 2, True, 2, 9, 9, dil=(2, 2),
                  groups=4, out_tol=OUT_TOL)
        conv_case(a, rng, "groups3_1x1", t, 6, 9, 1, 1, 1, 1, 0, 0, True, 2, 5, 6, groups=3,
                  out_tol=OUT_TOL)
    t = 2
    simple_case(a, rng, "relu", "x", t, 2, 3, 5, 6, F.relu)
    simple_case(a, rng, "leaky", "x", t, 2, 3, 5, 6, lambda x: F.leaky_relu(x, 0.2), slope=0.2)
    simple_case(a, rng, "maxpool", "k2s2", t, 2, 3, 8, 7, lambda x: F.max_pool2d(x, 2, 2),
                kh=2, kw=2, sh=2, sw=2, ph=0, pw=0)
    simple_case(a, rng, "maxpool", "k3s2p1", t, 2, 3, 9, 8, lambda x: F.max_pool2d(x, 3, 2, 1),
                kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)
    ties = np.round(rng.standard_normal((2, 3, 8, 8)))  # many equal values in each window
    simple_case(a, rng, "maxpool", "ties", t, 2, 3, 8, 8, lambda x: F.max_pool2d(x, 3, 1, 1),
                x=ties, kh=3, kw=3, sh=1, sw=1, ph=1, pw=1)
    simple_case(a, rng, "maxpool", "ties2x2", t, 2, 3, 8, 6, lambda x: F.max_pool2d(x, 2, 2),
                x=np.round(rng.standard_normal((2, 3, 8, 6))), kh=2, kw=2, sh=2, sw=2, ph=0, pw=0)
    nan_case(a, rng, t)
    simple_case(a, rng, "avgpool", "k3s2p1", t, 2, 3, 9, 8,
                lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=True),
                kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)
    simple_case(a, rng, "avgpool", "k2s2", t, 2, 3, 8, 6, lambda x: F.avg_pool2d(x, 2, 2),
                kh=2, kw=2, sh=2, sw=2, ph=0, pw=0)
    simple_case(a, rng, "gap", "x", t, 3, 4, 5, 7, lambda x: F.adaptive_avg_pool2d(x, 1))
    for t in (1, 2):
        simple_case(a, rng, "sigmoid", "x", t, 2, 3, 5, 6, torch.sigmoid, x=rng.standard_normal((2, 3, 5, 6)) * 4,
                    out_tol=OUT_TOL)
        simple_case(a, rng, "silu", "x", t, 2, 3, 5, 6, F.silu, x=rng.standard_normal((2, 3, 5, 6)) * 4,
                    out_tol=OUT_TOL)
        # ceil_mode, odd sizes: the last window hangs over the bottom/right edge
        simple_case(a, rng, "maxpool", "ceil_k3s2", t, 2, 3, 7, 6,
                    lambda x: F.max_pool2d(x, 3, 2, 0, ceil_mode=True), out_tol=OUT_TOL,
                    kh=3, kw=3, sh=2, sw=2, ph=0, pw=0, ceil=1)
        simple_case(a, rng, "maxpool", "ceil_k2s2", t, 2, 3, 7, 5,
                    lambda x: F.max_pool2d(x, 2, 2, 0, ceil_mode=True), out_tol=OUT_TOL,
                    kh=2, kw=2, sh=2, sw=2, ph=0, pw=0, ceil=1)
        simple_case(a, rng, "maxpool", "ceil_k3s2p1", t, 2, 3, 9, 8,
                    lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), out_tol=OUT_TOL,
                    kh=3, kw=3, sh=2, sw=2, ph=1, pw=1, ceil=1)
        simple_case(a, rng, "avgpool", "ceil_k3s2p1", t, 2, 3, 7, 6,
                    lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True),
                    out_tol=OUT_TOL, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1, ceil=1)
        simple_case(a, rng, "avgpool", "ceil_k2x3s2", t, 2, 3, 7, 6,
                    lambda x: F.avg_pool2d(x, (2, 3), 2, (0, 1), ceil_mode=True),
                    out_tol=OUT_TOL, kh=2, kw=3, sh=2, sw=2, ph=0, pw=1, ceil=1)
        simple_case(a, rng, "avgpool", "ceil_k3s3", t, 2, 3, 8, 7,
                    lambda x: F.avg_pool2d(x, 3, 3, 0, ceil_mode=True),
                    out_tol=OUT_TOL, kh=3, kw=3, sh=3, sw=3, ph=0, pw=0, ceil=1)
        # through a one-layer net (the engine's rows); the net's input has 1 channel
        simple_case(a, rng, "identity", "net", t, 3, 1, 5, 4, torch.nn.Identity(), out_tol=OUT_TOL)
        simple_case(a, rng, "flatten", "net", t, 3, 1, 5, 4, torch.nn.Flatten(), out_tol=OUT_TOL)
        simple_case(a, rng, "adaptive", "net", t, 3, 1, 6, 5, torch.nn.AdaptiveAvgPool2d(1),
                    out_tol=OUT_TOL)
    linear_case(a, rng, "bias", True, 5, 12, 4)
    linear_case(a, rng, "nobias", False, 3, 7, 5)

    tgt = rng.standard_normal((6, 5))
    loss_case(a, rng, "mse", 0, 6, 5, F.mse_loss, tgt)
    loss_case(a, rng, "huber_1", 1, 6, 5, lambda p, y: F.huber_loss(p, y, delta=1.0), tgt)
    loss_case(a, rng, "huber_0.5", 1, 6, 5, lambda p, y: F.huber_loss(p, y, delta=0.5), tgt, 0.5)
    loss_case(a, rng, "smoothl1", 1, 6, 5, F.smooth_l1_loss, tgt)
    onehot = np.eye(5)[rng.integers(0, 5, 6)]
    loss_case(a, rng, "ce_index", 2, 6, 5,
              lambda p, y: F.cross_entropy(p, torch.argmax(y, 1)), onehot)
    soft = rng.dirichlet(np.ones(5), 6)
    loss_case(a, rng, "ce_soft", 2, 6, 5, F.cross_entropy, soft)

    optim_case(a, rng, "sgd_plain", 0, lambda p: torch.optim.SGD(p, lr=0.1), lr=0.1)
    optim_case(a, rng, "sgd_momentum", 0,
               lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
               lr=0.05, momentum=0.9, dampening=0.1, wd=0.01)
    optim_case(a, rng, "sgd_nesterov", 0,
               lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
               lr=0.05, momentum=0.9, nesterov=1, wd=1e-3)
    optim_case(a, rng, "adam", 1,
               lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.05),
               lr=1e-2, beta1=0.8, beta2=0.99, wd=0.05)
    optim_case(a, rng, "adamw", 2, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
               lr=1e-2, wd=0.1)
    optim_case(a, rng, "adam_clip", 1, lambda p: torch.optim.Adam(p, lr=1e-3), clip=0.5, lr=1e-3)
    # per-step norms about 6 x scale: 3, 12, 4.8, 18, 7.2, 1.8 against a threshold of 6
    scales = [0.5, 2.0, 0.8, 3.0, 1.2, 0.3]
    clip_case(a, rng, "sgd", 0, lambda p: torch.optim.SGD(p, lr=0.1), 6.0, scales, lr=0.1)
    clip_case(a, rng, "sgd_momentum", 0, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
              6.0, scales, lr=0.05, momentum=0.9)

    print("%d comparisons, %d failed" % (checked, len(failures)))
    if failures:
        print("failed: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
