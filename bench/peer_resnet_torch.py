"""peer_resnet_torch.py - PyTorch CPU peer of bench_resnet: torchvision's
resnet18 with a 1-channel conv1 and 5 outputs, what the resnet18 preset is.

  peer_resnet_torch.py verify MODEL_DIR N
      loads MODEL_DIR/weights.safetensors into torchvision's resnet18, runs
      MODEL_DIR/x.f32 (N x 1 x side x side) in eval mode and compares with
      MODEL_DIR/out.f32 (cbctiq's outputs): exit 1 above 1e-4 relative
  peer_resnet_torch.py train|infer SIDE THREADS BATCH MIN_SECONDS
      prints "slices_per_s <wall> cpu_ms_per_slice <process CPU time>":
      training step = zero_grad, forward, MSE, backward, Adam step (what
      cbq_train_step does); inference = eval-mode forward under no_grad.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from torchvision.models import resnet18

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "attrib"))
from torch_model import read_safetensors  # noqa: E402
from peer_timing import make_step, time_steps  # noqa: E402


def model():
    net = resnet18(num_classes=5)
    net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return net


def verify(model_dir, n):
    spec = json.load(open(os.path.join(model_dir, "model.json")))
    side = spec["input"]["height"]
    net = model()
    weights = read_safetensors(os.path.join(model_dir, "weights.safetensors"))
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()}, strict=True)
    net.eval()
    x = np.fromfile(os.path.join(model_dir, "x.f32"), dtype="<f4").reshape(n, 1, side, side)
    ours = np.fromfile(os.path.join(model_dir, "out.f32"), dtype="<f4").reshape(n, 5)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    err = float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-12))
    print("verify %dx%d: outputs equal torchvision's resnet18 to %.1e%s" %
          (side, side, err, "" if err <= 1e-4 else " (MISMATCH)"))
    return 0 if err <= 1e-4 else 1


def timed(mode, side, threads, batch, min_s):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = model()
    x = torch.rand(batch, 1, side, side)
    y = torch.rand(batch, 5)
    time_steps(make_step(net, x, y, mode == "train"), batch, 2, min_s)
    return 0


def main():
    if sys.argv[1] == "verify":
        return verify(sys.argv[2], int(sys.argv[3]))
    return timed(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))


if __name__ == "__main__":
    sys.exit(main())
