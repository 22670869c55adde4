"""peer_curves_torch.py - PyTorch CPU peer of bench_curves: the deletion and
insertion curves (map order and random order, 20 steps, blurred baseline) of
every output category, on the model directory, slices and maps that
bench_curves wrote.

  peer_curves_torch.py MODEL SLICES.f32 MAPS.f32 N THREADS BATCH REPEATS SIGMA SEED

The same definitions as docs/attribution.md ("Faithfulness"): per slice the
first floor(t HW / 20) pixels of the order replaced by (deletion) or taken
from (insertion) the baseline's counterpart; the map order a stable argsort
of -map, the random order ascending splitmix64 keys; every perturbed image
through a no-grad forward in batches of BATCH. Prints "seconds <best wall
time>", "cpu_seconds <that run's CPU time>" and "auc c del ins del_random
ins_random" lines.
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "attrib"))
from torch_model import Net  # noqa: E402

STEPS = 20
M64 = (1 << 64) - 1


def splitmix64(z):
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(M64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def random_orders(seed, n, hw):
    base = splitmix64(np.array([seed], np.uint64))[0]
    with np.errstate(over="ignore"):
        return [np.argsort(splitmix64(base + np.uint64(s << 32) + np.arange(hw, dtype=np.uint64)), kind="stable")
                for s in range(n)]


def blurred(x, sigma):
    r = min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1)
    d = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * d * d / sigma ** 2)
    k = torch.from_numpy(k / k.sum())
    t = F.pad(torch.from_numpy(x).double(), (r, r, r, r), mode="reflect")
    t = F.conv2d(F.conv2d(t, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return t.float().numpy()


def curves(net, x, maps, sigma, seed, batch):
    n, hw = x.shape[0], x.shape[2] * x.shape[3]
    n_out = maps.shape[0]
    flat_x, flat_b = x.reshape(n, hw), blurred(x, sigma).reshape(n, hw)
    orders = [[np.argsort(-maps[c, s].reshape(-1).astype(np.float64), kind="stable") for s in range(n)]
              for c in range(n_out)] + [random_orders(seed, n, hw)]
    images, tags = [flat_x, flat_b], [("orig",), ("base",)]
    for o, order in enumerate(orders):
        for kind in (0, 1):
            for t in range(1, STEPS):
                m = t * hw // STEPS
                img = (flat_x if kind == 0 else flat_b).copy()
                src = flat_b if kind == 0 else flat_x
                for s in range(n):
                    top = order[s][:m]
                    img[s, top] = src[s, top]
                images.append(img)
                tags.append((o, kind, t))
    allimg = torch.from_numpy(np.concatenate(images).reshape(-1, 1, x.shape[2], x.shape[3]))
    with torch.no_grad():
        ys = torch.cat([net.forward_layers(allimg[i:i + batch])[0] for i in range(0, allimg.shape[0], batch)])
    y = ys.double().numpy().reshape(len(images), n, n_out).mean(axis=1)
    orig, base = y[0], y[1]
    acc = {tag: y[i] for i, tag in enumerate(tags)}
    out = []
    for c in range(n_out):
        aucs = []
        for o in (c, n_out):
            for kind in (0, 1):
                first, last = (orig[c], base[c]) if kind == 0 else (base[c], orig[c])
                cur = np.array([first] + [acc[(o, kind, t)][c] for t in range(1, STEPS)] + [last])
                norm = (cur - base[c]) / (orig[c] - base[c])
                aucs.append(float(((norm[:-1] + norm[1:]) / 2).sum() / STEPS))
        out.append(aucs)
    return out


def main():
    model, slices, maps_path = sys.argv[1], sys.argv[2], sys.argv[3]
    n, threads, batch, repeats = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    sigma, seed = float(sys.argv[8]), int(sys.argv[9])
    torch.set_num_threads(threads)
    net = Net(model)
    h, w = net.spec["input"]["height"], net.spec["input"]["width"]
    n_out = len(net.spec["outputs"])
    x = np.fromfile(slices, np.float32).reshape(n, 1, h, w)
    maps = np.fromfile(maps_path, np.float32).reshape(n_out, n, h, w)
    best, best_cpu, aucs = float("inf"), float("nan"), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        aucs = curves(net, x, maps, sigma, seed, batch)
        t = time.perf_counter() - t0
        if t < best:
            best, best_cpu = t, time.process_time() - c0
    print(f"seconds {best:.6f}")
    print(f"cpu_seconds {best_cpu:.6f}")
    for c, a in enumerate(aucs):
        print(f"auc {c} " + " ".join(f"{v:.17g}" for v in a))


if __name__ == "__main__":
    main()
