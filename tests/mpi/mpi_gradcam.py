#!/usr/bin/env python3
"""`mpirun -np N cbctiq gradcam` writes one process's maps (docs/cluster.md).

One simulated volume of 40 slices in batches of 8 (5 batches): as one
process and on 2, 3 and 7 ranks (7: ranks without a batch), every map
format must be byte-identical to the one-process file (the NIfTI on the
source, input and feature grids, the PNG overlays), rank 0 alone writes,
and the printed AE and prediction are the same; the feature-grid sums
(added per rank's block) agree to 1e-9. The DICOM Parametric Map and
Secondary Capture series of a real scanner series (tests/data), in batches
of one slice over 2 ranks: the same pixel data as one process, frame for
frame (read with pydicom; their UIDs and times are new on every run). A
missing volume stops the job non-zero with its message and no map.

usage: mpi_gradcam.py --cbctiq BIN --mpirun MPIRUN --workdir DIR --data TESTDATA
"""
import glob
import os
import re
import sys

import pydicom

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpi_job  # noqa: E402

args = mpi_job.parse_args()
W = args.workdir
run = mpi_job.runner(args)
failures = []

sim = os.path.join(W, "sim")
run(0, "simulate", "--out", sim, "--volumes", "1", "--size", "32", "--slices", "40", "--spacing", "4",
    "--raters", "3", "--seed", "7", "--threads", "1", "--quiet")
model = os.path.join(W, "model")
run(0, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "2", "--input", "32", "--seed", "3",
    "--quiet", "--out", model)
volume = os.path.join(sim, "sim000.nii.gz")
BASE = ["gradcam", "--model", model, "--category", "mandible", volume, "--batch", "8", "--threads", "1"]
VARIANTS = {  # name: (extra options, what it writes)
    "source": ([], "map.nii.gz"),
    "input": (["--map-grid", "input"], "map.nii.gz"),
    "feature": (["--map-grid", "feature"], "map.nii.gz"),
    "png": (["--png", "PNG", "--slices", "0,9,17,31,39"], "map.nii.gz"),
}


def numbers(stdout):
    """The summary's name/value pairs."""
    pairs = re.findall(r"(ae|ae_feature|ae_per_slice|pred|pre-ReLU ae_feature|prediction part|clipped remainder) "
                       r"(-?[0-9][0-9.e+-]*)", stdout)
    return {k: float(v) for k, v in pairs}


def files_of(d):
    return sorted(os.path.relpath(p, d) for p in glob.glob(os.path.join(d, "**"), recursive=True)
                  if os.path.isfile(p))


def read(path):
    with open(path, "rb") as f:
        return f.read()


alone = {}
for ranks in (0, 2, 3, 7):
    for name, (extra, out) in VARIANTS.items():
        if ranks == 7 and name != "source":
            continue
        d = os.path.join(W, f"{name}_np{ranks}")
        os.makedirs(d)
        extra = [os.path.join(d, "png") if e == "PNG" else e for e in extra]
        p = run(ranks, *BASE, *extra, "--out", os.path.join(d, out))
        got = (files_of(d), {f: read(os.path.join(d, f)) for f in files_of(d)}, numbers(p.stdout))
        if ranks == 0:
            alone[name] = got
            if name == "png" and len(got[0]) != 6:
                failures.append(f"png: one process wrote {got[0]}")
            continue
        want = alone[name]
        if got[0] != want[0]:
            failures.append(f"{name} on {ranks} ranks wrote {got[0]}, one process {want[0]}")
            continue
        differ = [f for f in got[0] if got[1][f] != want[1][f]]
        if differ:
            failures.append(f"{name} on {ranks} ranks: {differ} differ from one process")
        for key, value in want[2].items():
            exact = key in ("ae", "ae_per_slice", "pred", "prediction part")
            close = abs(got[2].get(key, float("nan")) - value) <= (0 if exact else 1e-9 * max(1e-30, abs(value)))
            if not close:
                failures.append(f"{name} on {ranks} ranks: printed {key} {got[2].get(key)}, one process {value}")
        if not differ:
            print(f"gradcam {name} on {ranks} ranks: {len(got[0])} files, same bytes as one process")
if len(alone["source"][2]) != 7:
    failures.append(f"the summary's numbers were not found: {alone['source'][2]}")

# DICOM maps of a real series (3 slices): batches of one slice over 2 ranks.
series = os.path.join(args.data, "hn_phantom_ct", "dicom_mandible_3")
run(0, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "2", "--input", "64", "--seed", "3",
    "--quiet", "--out", os.path.join(W, "model64"))
for fmt in ("dicom", "dicom-sc"):
    pixels = {}
    for ranks in (0, 2):
        d = os.path.join(W, f"{fmt}_np{ranks}")
        run(ranks, "gradcam", "--model", os.path.join(W, "model64"), "--category", "mandible", series,
            "--batch", "1", "--threads", "1", "--quiet", "--format", fmt, "--out", d)
        pixels[ranks] = {}
        for f in files_of(d):
            ds = pydicom.dcmread(os.path.join(d, f))
            pixels[ranks][ds.get("InstanceNumber", f)] = ds.get("FloatPixelData", ds.get("PixelData"))
    if not pixels[0] or any(v is None for v in pixels[0].values()):
        failures.append(f"{fmt}: one process wrote no pixel data")
    elif pixels[0] != pixels[2]:
        failures.append(f"{fmt}: the pixel data on 2 ranks differ from one process")
    else:
        print(f"gradcam --format {fmt} on 2 ranks: {len(pixels[0])} files, the same pixel data")

missing = os.path.join(W, "missing.nii.gz")
out = os.path.join(W, "missing_map.nii.gz")
p = run(2, "gradcam", "--model", model, "--category", "mandible", missing, "--out", out, "--quiet",
        expect_ok=False)
if "missing.nii.gz" not in p.stderr or os.path.exists(out):
    failures.append(f"missing volume: message or leftover map wrong: {p.stderr!r}")

if failures:
    sys.exit("FAILED:\n" + "\n".join(failures))
print("ok")
