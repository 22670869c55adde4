"""make_bad_dicom.py OUTDIR - writes the bad DICOM inputs (too big to keep
as files) with pydicom; expected_dicom.txt lists what cbctiq must say."""
import os
import sys

import numpy as np
import pydicom

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "io"))
import dicomgen  # noqa: E402

out = sys.argv[1]
rng = np.random.default_rng(2)
AX = [1, 0, 0, 0, 1, 0]


def series(name, n=5, **kw):
    return dicomgen.write_series(os.path.join(out, name), rng.integers(-1000, 1000, (n, 16, 16)),
                                 kw.pop("iop", AX), kw.pop("first", (0, 0, 0)), (1, 1),
                                 kw.pop("step", 2.0), rng=rng, **kw)


def positions(zs, shift=None):
    return [np.array([0.0 if shift is None else shift * i, 0.0, z]) for i, z in enumerate(zs)]


series("missing_slice", n=5, positions=positions([0, 2, 4, 8, 10]))
series("uneven_gaps", n=5, positions=positions([0, 2, 4, 5.1, 7.1]))
series("duplicate_position", n=4, positions=positions([0, 2, 2, 4]))
series("gantry_tilt", n=5, positions=positions([0, 2, 4, 6, 8], shift=0.35))
series("mixed_orientation", n=4)
folder = os.path.join(out, "mixed_orientation")
victim = os.path.join(folder, sorted(os.listdir(folder))[0])
ds = pydicom.dcmread(victim)
ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, -0.6]
ds.save_as(victim)

os.makedirs(os.path.join(out, "no_images"), exist_ok=True)
for i in range(3):
    open(os.path.join(out, "no_images", f"notes{i}.txt"), "w").write("not DICOM\n")
os.makedirs(os.path.join(out, "empty_folder"), exist_ok=True)

u = series("for_rtstruct", n=3)
os.makedirs(os.path.join(out, "rtstruct_only"), exist_ok=True)
rt = os.path.join(out, "rtstruct_only", "rtstruct.dcm")
dicomgen.write_rtstruct(rt, u["series_uid"], u["frame_uid"],
                        [(1, "Larynx", [np.array([[0, 0, 0], [5, 0, 0], [5, 5, 0]], float)])])

# Pixel data cut short in one file of a series.
series("truncated_slice", n=4)
folder = os.path.join(out, "truncated_slice")
victim = os.path.join(folder, sorted(os.listdir(folder))[1])
data = open(victim, "rb").read()
open(victim, "wb").write(data[:-300])

# Rows x Columns claiming far more pixels than the file holds.
series("huge_rows", n=2)
folder = os.path.join(out, "huge_rows")
for f in os.listdir(folder):
    ds = pydicom.dcmread(os.path.join(folder, f))
    ds.Rows = 65535
    ds.Columns = 65535
    ds.save_as(os.path.join(folder, f))

# Not DICOM at all, under a .dcm name; and a DICOM file with garbage after the preamble.
# Seeded garbage, so that a failure reproduces (and the fuzzers' seeds stay fixed).
garbage = np.random.default_rng(3)
open(os.path.join(out, "garbage.dcm"), "wb").write(garbage.bytes(2000))
open(os.path.join(out, "bad_after_preamble.dcm"), "wb").write(b"\0" * 128 + b"DICM" + garbage.bytes(500))
