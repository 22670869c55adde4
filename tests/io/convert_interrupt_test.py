"""convert_interrupt_test.py - an interrupted `cbctiq convert` (SIGTERM or
SIGINT while it writes) leaves nothing in the output folder: no hidden
temporary file, no partial output. The signal is sent once the temporary
file exists, and the process must still die of that signal."""
import os
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args()
W = args.workdir
failures = []

# Random float32 voxels: about 64 MB that compress slowly, so the write
# lasts long enough to be interrupted.
src = os.path.join(W, "noise.nii")
data = np.random.default_rng(0).standard_normal((256, 256, 256), dtype=np.float32) * 1000
nib.save(nib.Nifti1Image(data, np.eye(4)), src)
del data

for sig in (signal.SIGTERM, signal.SIGINT):
    out = os.path.join(W, f"out_{sig.name}")
    os.makedirs(out)
    p = subprocess.Popen([args.cbctiq, "convert", "--dtype", "float32", "--quiet", src,
                          os.path.join(out, "big.nii.gz")], stderr=subprocess.PIPE)
    seen = []
    deadline = time.monotonic() + 60
    while p.poll() is None and not seen and time.monotonic() < deadline:
        seen = [n for n in os.listdir(out) if n.startswith(".big.nii.gz.tmp")]
        time.sleep(0.002)
    if not seen:
        p.kill()
        p.wait()
        failures.append(f"{sig.name}: no temporary file seen before convert ended (exit {p.returncode})")
        continue
    p.send_signal(sig)
    p.wait(timeout=60)
    stderr = p.stderr.read().decode(errors="replace")
    if p.returncode != -sig:
        failures.append(f"{sig.name}: exit {p.returncode}, expected death by {sig.name}: {stderr}")
    if "Sanitizer" in stderr or "runtime error" in stderr:
        failures.append(f"{sig.name}: sanitizer report: {stderr}")
    left = os.listdir(out)
    if left:
        failures.append(f"{sig.name}: left in the output folder: {left}")

os.remove(src)
for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
