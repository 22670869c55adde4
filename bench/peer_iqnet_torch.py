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
import os
import resource
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "nn"))
# The same model.json -> PyTorch builder the network parity oracle checks.
from net_parity_oracle import make_layer  # noqa: E402
from peer_timing import make_step, time_steps  # noqa: E402


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
    step = make_step(net, x, y, mode != "infer")
    if mode == "memory":
        step()
        step()
        print("peak_rss_kb %d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return
    time_steps(step, batch, 3, min_s)


if __name__ == "__main__":
    main()
