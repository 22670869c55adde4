#!/usr/bin/python3
"""resource_limits.py - requests larger than memory are refused with a clear
message before anything is allocated, and small runs stay within a peak-RSS
bound measured by scripts/peak_rss.sh.

Every command runs with its address space limited to LIMIT_GIB (RLIMIT_AS),
so that "larger than memory" means the same on any machine: cbctiq reads
that limit (cbq_mem_available) and must refuse, fast and small, with exit 1 (or 2
for an option out of range) and a message naming what was too large; an allocation attempted anyway
would fail or crash instead of printing that message."""
import argparse
import os
import re
import resource
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np

LIMIT_GIB = 6
SMALL_RSS_MIB = 256      # a refused request: the process did not allocate it
RUN_RSS_MIB = 400        # simulate 2 x 64x64x48 and predict: measured ~25-60 MiB

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--peak-rss", required=True)
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
W = args.workdir
failures = []


def limit():
    lim = LIMIT_GIB << 30
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))


def run(cmd, expect_fail, fragments=(), max_mib=SMALL_RSS_MIB, must_not_exist=None):
    r = subprocess.run([args.peak_rss, args.cbctiq, *cmd], capture_output=True, text=True,
                       timeout=300, preexec_fn=limit)
    m = re.search(r"peak_rss_kib (\d+)", r.stderr)
    mib = int(m.group(1)) / 1024 if m else float("inf")
    what = f"cbctiq {' '.join(cmd)}"
    print(f"{what[:100]}: exit {r.returncode}, peak RSS {mib:.1f} MiB")
    problems = []
    if expect_fail and r.returncode not in (1, 2):
        problems.append(f"exit {r.returncode}, expected 1 (failure) or 2 (usage)")
    if not expect_fail and r.returncode != 0:
        problems.append(f"exit {r.returncode}")
    for f in fragments:
        if f not in r.stderr:
            problems.append(f"message lacks '{f}'")
    if mib > max_mib:
        problems.append(f"peak RSS {mib:.1f} MiB above {max_mib} MiB")
    if must_not_exist and os.path.exists(must_not_exist):
        problems.append(f"{must_not_exist} was created")
    if problems:
        failures.append(f"{what}: {', '.join(problems)}\n  stderr: {r.stderr.strip()[-500:]}")


# simulate: 1024^3 voxels need ~64 GiB.
big = os.path.join(W, "sim_big")
run(["simulate", "--out", big, "--volumes", "1", "--size", "1024", "--slices", "1024", "--quiet"],
    True, ["simulating 1024x1024x1024 volumes needs", "GiB of memory are available"], must_not_exist=big)
# The option range itself.
run(["simulate", "--out", big, "--size", "100000", "--quiet"], True, ["--size"], must_not_exist=big)

# A NIfTI-2 header claiming 2^20 x 2^20 x 2^10 int16 voxels over 16 bytes of data.
hdr = nib.Nifti2Header()
hdr.set_data_dtype(np.int16)
hdr.set_data_shape((1 << 20, 1 << 20, 1 << 10))
hdr["vox_offset"] = 544
huge = os.path.join(W, "huge_claim.nii")
with open(huge, "wb") as f:
    f.write(hdr.binaryblock + b"\0" * 4 + b"\0" * 16)
out = os.path.join(W, "out.nii.gz")
run(["convert", huge, out], True, ["huge_claim.nii"], must_not_exist=out)

# model init beyond the option range, and within it but beyond memory.
m = os.path.join(W, "model_big")
run(["model", "init", "--arch", "iqnet-s", "--input", "1000000", "--out", m, "--quiet"], True,
    ["--input"], must_not_exist=m)
run(["model", "init", "--arch", "iqnet-s", "--input", "30000", "--width", "16", "--depth", "1",
     "--out", m, "--quiet"], True, ["the network for batch 1 needs", "GiB of memory are available"],
    must_not_exist=os.path.join(m, "model.json"))

# Small runs within a bound: simulate, then predict on what it wrote.
sim = os.path.join(W, "sim")
run(["simulate", "--out", sim, "--volumes", "2", "--size", "64", "--slices", "48", "--raters", "2",
     "--test", "1", "--threads", "2", "--quiet"], False, max_mib=RUN_RSS_MIB)
small = os.path.join(W, "model")
run(["model", "init", "--arch", "iqnet-s", "--width", "8", "--depth", "2", "--input", "64", "--out",
     small, "--quiet"], False, max_mib=RUN_RSS_MIB)
vol = os.path.join(sim, "sim000.nii.gz")
run(["predict", "--model", small, "--out", os.path.join(W, "pred.csv"), "--threads", "2", "--quiet", vol],
    False, max_mib=RUN_RSS_MIB)

# A model whose 2000x2000 input needs ~GiBs of activations per batch of 64.
spec_dir = os.path.join(W, "model_wide")
shutil.copytree(small, spec_dir)
text = open(os.path.join(spec_dir, "model.json")).read()
text = text.replace('"height":64,"width":64', '"height":4000,"width":4000')
open(os.path.join(spec_dir, "model.json"), "w").write(text)
pred = os.path.join(W, "pred_wide.csv")
run(["predict", "--model", spec_dir, "--out", pred, "--batch", "64", "--quiet", vol], True,
    ["the network for batch", "GiB of memory are available"], must_not_exist=pred)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("resource limits: every oversized request refused before allocation")
