"""A volume as cbctiq's own reader gives it, through the test program
io_dump (tests/io/io_dump.c, `io_dump read PATH PREFIX` writes PREFIX.txt
with the dimensions and affine and PREFIX.raw with the float32 voxels)."""
import os
import subprocess

import numpy as np


def read(helper, workdir, path):
    """((voxels [x, y, z], affine 4x4), "") or (None, the reader's error)."""
    prefix = os.path.join(workdir, "dump")
    for ext in (".txt", ".raw"):  # the previous read's dump must not stand in for this one
        if os.path.exists(prefix + ext):
            os.remove(prefix + ext)
    r = subprocess.run([helper, "read", path, prefix], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr
    with open(prefix + ".txt") as f:
        lines = f.read().split("\n")
    nx, ny, nz = (int(v) for v in lines[0].split())
    aff = np.array([[float(v) for v in lines[2 + row].split()] for row in range(4)])
    vox = np.fromfile(prefix + ".raw", dtype=np.float32).reshape(nz, ny, nx).transpose(2, 1, 0)
    return (vox, aff), ""
