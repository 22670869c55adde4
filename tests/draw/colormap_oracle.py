#!/usr/bin/python3
"""Oracle: cbctiq's viridis/inferno/grey tables against matplotlib's published ones.

The continuous table must stay within 0.5/255 of matplotlib's entries and the
8-bit table within 1 step (rounding of an already-close value)."""
import argparse
import subprocess
import sys

import numpy as np
from matplotlib import colormaps

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq")
ap.add_argument("--workdir")
ap.add_argument("--dump", required=True)
args = ap.parse_args()

out = subprocess.run([args.dump], check=True, capture_output=True, text=True).stdout
rows = {}
for line in out.splitlines():
    name, i, r, g, b, r8, g8, b8 = line.split()
    rows.setdefault(name, []).append(([float(r), float(g), float(b)], [int(r8), int(g8), int(b8)]))

ok = True
for name, ref_name in (("viridis", "viridis"), ("inferno", "inferno"), ("grey", "gray")):
    ours = np.array([r[0] for r in rows[name]])
    ours8 = np.array([r[1] for r in rows[name]])
    ref = colormaps[ref_name](np.arange(256))[:, :3]  # 256 entries, index i -> t = i/255
    err = np.abs(ours - ref).max() * 255
    err8 = np.abs(ours8 - np.round(ref * 255)).max()
    print(f"{name}: max |ours - matplotlib| = {err:.3f}/255, 8-bit max step difference {err8}")
    if ours.shape != (256, 3) or err > 0.5 or err8 > 1:
        ok = False
sys.exit(0 if ok else 1)
