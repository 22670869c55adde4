"""peer_torch.py - PyTorch timings of the convolution shapes bench_layers
times, printed as plain lines it reads in the same run (the whole network's
peer is peer_iqnet_torch.py, on bench_iqnet's model.json).

  peer_torch.py layers --threads N --batch B --size S
      "layer I fwd_ms bwd_ms fwd_cpu_ms bwd_cpu_ms" for the iqnet-s convs

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["layers"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    layers(a)


if __name__ == "__main__":
    main()
