"""peer_ae_torch.py - PyTorch CPU peer of bench_ae.sh: what `cbctiq ae` does
for one volume, done in one Python process with nibabel and PyTorch.

  peer_ae_torch.py MODEL_DIR VOLUME.nii.gz THREADS BATCH REPEATS

The volume must already be on the model's grid (input height x width
slices, canonical orientation: affine diag(-dx, -dy, dz)), so that no
resampling is needed and PyTorch can redo cbctiq's pipeline exactly. Timed,
per repeat: read and decompress the NIfTI (nibabel), window to [0, 1] with
the model's HU range, load the model (model.json + safetensors), Grad-CAM +
AE of every category (bench/peer_gradcam_torch.py: one forward per batch, one
partial backward per category), and write the AE table as CSV. Not timed:
the interpreter's start and the imports (cbctiq's time includes its whole
process). Prints "seconds <best wall time of REPEATS>", "cpu_seconds <the
least CPU time of REPEATS>", "kernel_cpu_seconds <Grad-CAM + AE alone, in the
run with the least CPU time>" and "ae <c> <value>" lines.
"""
import os
import sys
import tempfile
import time

import nibabel as nib
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests", "attrib"))
from peer_gradcam_torch import gradcam_ae  # noqa: E402
from torch_model import Net  # noqa: E402


def ae_of_volume(model_dir, volume, batch, out_csv):
    """The whole in-process pipeline; returns (AE per category, CPU seconds
    of the Grad-CAM + AE part)."""
    hu = np.asarray(nib.load(volume).dataobj, dtype=np.float32)
    net = Net(model_dir)
    spec = net.spec["input"]
    lo, hi = float(spec["hu_min"]), float(spec["hu_max"])
    x = np.clip((hu - lo) / (hi - lo), 0, 1).astype(np.float32)
    x = torch.from_numpy(np.transpose(x, (2, 1, 0))[:, None].copy())  # [k, 1, j, i]
    target = net.index(net.spec["target_layer"])
    c0 = time.process_time()
    ae = gradcam_ae(net, x, target, batch)
    kernel = time.process_time() - c0
    with open(out_csv, "w") as f:
        f.write("volume_id,category,ae\n")
        for name, v in zip(net.spec["outputs"], ae):
            f.write(f"v1,{name},{v!r}\n")
    return ae, kernel


def main():
    model, volume, threads, batch, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        out_csv = os.path.join(tmp, "ae.csv")
        ae_of_volume(model, volume, batch, out_csv)  # warm-up: the page cache, PyTorch's first calls
        best, best_cpu, kernel_cpu = float("inf"), float("inf"), float("nan")
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            ae, kernel = ae_of_volume(model, volume, batch, out_csv)
            best = min(best, time.perf_counter() - t0)
            cpu = time.process_time() - c0
            if cpu < best_cpu:
                best_cpu, kernel_cpu = cpu, kernel
    print(f"seconds {best:.6f}")
    print(f"cpu_seconds {best_cpu:.6f}")
    print(f"kernel_cpu_seconds {kernel_cpu:.6f}")
    for c, v in enumerate(ae):
        print(f"ae {c} {v:.17g}")


if __name__ == "__main__":
    main()
