"""peer_torch.py - PyTorch timings of the convolution shapes bench_layers
times, printed as plain lines it reads in the same run (the whole network's
peer is peer_iqnet_torch.py, on bench_iqnet's model.json).

  peer_torch.py layers --threads N --batch B --shapes "CIN,COUT,K,STRIDE,SIDE;..."
      "layer I fwd_ms bwd_ms fwd_cpu_ms bwd_cpu_ms" for each shape, in order
      (a K x K convolution with padding K // 2 and a bias on a SIDE x SIDE input)

Each figure is the fastest of several repetitions (the least disturbed by
other jobs on a shared machine), wall and process CPU time. Run with
Debian's /usr/bin/python3 (torch 1.13, oneDNN).
"""
import argparse
import time

import torch
import torch.nn as nn

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
    shapes = [tuple(int(v) for v in item.split(",")) for item in a.shapes.split(";")]
    for i, (cin, cout, k, stride, s) in enumerate(shapes):
        conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)
        x = torch.randn(a.batch, cin, s, s, requires_grad=cin > 1)
        g = torch.randn(conv(x).shape)

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
    ap.add_argument("--shapes", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    layers(a)


if __name__ == "__main__":
    main()
