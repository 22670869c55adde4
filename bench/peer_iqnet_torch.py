"""peer_iqnet_torch.py - PyTorch CPU peer of bench_iqnet: the same network,
built from the model.json that bench_iqnet wrote, timed the same way.

  peer_iqnet_torch.py MODEL_JSON THREADS MODE(train|infer|memory) BATCH MIN_SECONDS

Prints one line: "slices_per_s <wall> cpu_ms_per_slice <process CPU time>". Training step: zero_grad, forward,
MSE loss, backward, Adam step (what cbq_train_step does); inference: eval-mode
forward under no_grad. Mode memory: two training steps, then "peak_rss_kb <the
process's peak resident set>" (interpreter and libraries included, as in
cbctiq's figure).
"""
import json
import resource
import sys
import time

import torch
import torch.nn as nn


class FlatLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x.flatten(1))


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


def make_layer(L):
    t = L["type"]
    if t == "conv2d":
        return nn.Conv2d(L["in_channels"], L["out_channels"], pair(L["kernel_size"]), pair(L["stride"]),
                         pair(L["padding"]), bias=L["bias"], dilation=pair(L.get("dilation", 1)),
                         groups=L.get("groups", 1))
    if t == "batchnorm2d":
        return nn.BatchNorm2d(L["num_features"], eps=L["eps"], momentum=L["momentum"])
    if t == "relu":
        return nn.ReLU()
    if t == "maxpool2d":
        return nn.MaxPool2d(pair(L["kernel_size"]), pair(L["stride"]), pair(L["padding"]),
                            ceil_mode=L.get("ceil_mode", False))
    if t == "avgpool2d":
        return nn.AvgPool2d(pair(L["kernel_size"]), pair(L["stride"]), pair(L["padding"]),
                            ceil_mode=L.get("ceil_mode", False))
    if t in ("global_avgpool", "adaptive_avgpool2d"):
        return nn.AdaptiveAvgPool2d(1)
    if t == "identity":
        return nn.Identity()
    if t == "flatten":
        return nn.Flatten()
    if t == "sigmoid":
        return nn.Sigmoid()
    if t == "silu":
        return nn.SiLU()
    if t == "linear":
        return FlatLinear(L["in_features"], L["out_features"], bias=L["bias"])
    raise ValueError(t)


def main():
    path, threads, mode, batch, min_s = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), \
        float(sys.argv[5])
    torch.set_num_threads(threads)
    spec = json.load(open(path))
    net = nn.Sequential(*[make_layer(L) for L in spec["layers"]])
    h, w, k = spec["input"]["height"], spec["input"]["width"], len(spec["outputs"])
    torch.manual_seed(0)
    x = torch.rand(batch, 1, h, w)
    y = torch.rand(batch, k)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()

    def step():
        if mode in ("train", "memory"):
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                net(x)

    net.train(mode != "infer")
    step()  # warm-up: allocations, oneDNN primitive creation
    if mode == "memory":
        step()
        print("peak_rss_kb %d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        step()
        n += 1
        el = time.perf_counter() - t0
        if n >= 3 and el >= min_s:
            break
    cpu = time.process_time() - c0
    print("slices_per_s %.4f cpu_ms_per_slice %.4f" % (n * batch / el, 1e3 * cpu / (n * batch)))


if __name__ == "__main__":
    main()
