"""peer_gradcam_torch.py - PyTorch CPU peer of bench_gradcam: Grad-CAM and
Attribution Energy of one volume for every output category, on the model
directory and raw slices that bench_gradcam wrote.

  peer_gradcam_torch.py MODEL_DIR SLICES.f32 N_SLICES THREADS BATCH REPEATS

Per batch: forward without gradients up to the target layer, then with a
gradient only from the target activation on (the same partial backward as
cbctiq), one autograd.grad per category with retain_graph, Grad-CAM weights,
ReLU, bilinear upsampling (align_corners=False), sum. Prints
"seconds <best wall time of REPEATS>", "cpu_seconds <that run's CPU time>"
and "ae <c> <value>" lines.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "attrib"))
from torch_model import Net  # noqa: E402


def gradcam_ae(net, x, target, batch):
    n_out = len(net.spec["outputs"])
    ae = np.zeros(n_out)
    layers = net.layers
    for b0 in range(0, x.shape[0], batch):
        xb = x[b0:b0 + batch]
        with torch.no_grad():
            a = xb
            for l in layers[:target + 1]:
                a = net._layer(l, a)
        A = a.requires_grad_(True)
        y = A
        for l in layers[target + 1:]:
            y = net._layer(l, y)
        for c in range(n_out):
            (G,) = torch.autograd.grad(y[:, c].sum(), A, retain_graph=c + 1 < n_out)
            cam = F.relu((G.mean((2, 3), keepdim=True) * A.detach()).sum(1, keepdim=True))
            up = F.interpolate(cam, size=xb.shape[-2:], mode="bilinear", align_corners=False)
            ae[c] += up.sum(dtype=torch.float64).item()
    return ae


def main():
    model, slices, n, threads, batch, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    torch.set_num_threads(threads)
    net = Net(model)
    h, w = net.spec["input"]["height"], net.spec["input"]["width"]
    x = torch.from_numpy(np.fromfile(slices, np.float32).reshape(n, 1, h, w))
    target = net.index(net.spec["target_layer"])
    gradcam_ae(net, x[:batch], target, batch)  # warm-up
    best, best_cpu = float("inf"), float("nan")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        ae = gradcam_ae(net, x, target, batch)
        t = time.perf_counter() - t0
        if t < best:
            best, best_cpu = t, time.process_time() - c0
    print(f"seconds {best:.6f}")
    print(f"cpu_seconds {best_cpu:.6f}")
    for c, v in enumerate(ae):
        print(f"ae {c} {v:.17g}")


if __name__ == "__main__":
    main()
