"""peer_torch.py - PyTorch timings of the shapes cbctiq's benchmarks time,
printed as plain lines the C benchmark programs read in the same run.

  peer_torch.py layers --threads N --batch B --size S
      "layer I fwd_ms bwd_ms fwd_cpu_ms bwd_cpu_ms" for the iqnet-s convs
  peer_torch.py net --threads N --batch B --size S
      "net train_ms infer_ms train_cpu_ms infer_cpu_ms" for iqnet-s

Each figure is the fastest of several repetitions (the least disturbed by
other jobs on a shared machine), wall and process CPU time. Run with
Debian's /usr/bin/python3 (torch 1.13, oneDNN).
"""
import argparse
import time

import torch
import torch.nn as nn

SHAPES = [(1, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 2), (32, 64, 4), (64, 64, 4),
          (64, 128, 8), (128, 128, 8)]


def best(fn, reps):
    fn()
    bw, bc = 1e30, 0.0
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if w < bw:
            bw, bc = w, c
    return bw * 1e3, bc * 1e3


def layers(a):
    for i, (cin, cout, div) in enumerate(SHAPES):
        s = a.size // div
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        x = torch.randn(a.batch, cin, s, s, requires_grad=cin > 1)
        g = torch.randn(a.batch, cout, s, s)

        def fwd():
            with torch.no_grad():
                conv(x)
        y = conv(x)

        def bwd():
            conv.zero_grad(set_to_none=True)
            y.backward(g, retain_graph=True)
        fw, fc = best(fwd, 7)
        bw, bc = best(bwd, 7)
        print("layer %d %.3f %.3f %.3f %.3f" % (i, fw, bw, fc, bc), flush=True)


def iqnet_s(size):
    mods, cin = [], 1
    for stage, ch in enumerate((16, 32, 64, 128)):
        for j in range(2):
            mods += [nn.Conv2d(cin if j == 0 else ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU()]
        cin = ch
        if stage < 3:
            mods.append(nn.MaxPool2d(2))
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, 5)]
    return nn.Sequential(*mods)


def net(a):
    model = iqnet_s(a.size)
    x = torch.rand(a.batch, 1, a.size, a.size)
    t = torch.rand(a.batch, 5) * 4 + 1
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = nn.MSELoss()

    def train():
        model.train()
        opt.zero_grad()
        loss = lossf(model(x), t)
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)
    tw, tc = best(train, a.reps)
    iw, ic = best(infer, a.reps)
    print("net %.3f %.3f %.3f %.3f" % (tw, iw, tc, ic), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["layers", "net"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    layers(a) if a.mode == "layers" else net(a)


if __name__ == "__main__":
    main()
