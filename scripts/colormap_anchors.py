#!/usr/bin/python3
"""Prints the anchor colours of src/draw/colormap.c from matplotlib's tables.

viridis and inferno (van der Walt & Smith, 2015) are published as 256-entry
sRGB tables (matplotlib's `_cm_listed`). cbctiq keeps every 4th entry plus
the last (65 anchors) and rebuilds the table with a natural cubic spline;
tests/draw/colormap_oracle.py checks the result against matplotlib within
0.5/255. Run once when the anchors must change; the output is pasted into
colormap.c by hand.
"""
import numpy as np
from matplotlib import colormaps

ANCHOR_INDEX = list(range(0, 256, 4)) + [255]

for name in ("viridis", "inferno"):
    table = np.asarray(colormaps[name].colors)
    print(f"static const double {name}_anchors[CMAP_ANCHORS][3] = {{")
    for i in ANCHOR_INDEX:
        r, g, b = table[i]
        print(f"    {{{r:.6f}, {g:.6f}, {b:.6f}}}, /* {i} */")
    print("};")
