"""make_bad_dicom.py OUTDIR - writes the bad DICOM inputs (too big to keep
as files) with pydicom; expected_dicom.txt lists what cbctiq must say."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom
from pydicom.encaps import decode_data_sequence, encapsulate

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


def slice_files(name):
    folder = os.path.join(out, name)
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))]


# One slice without RescaleIntercept while the others have -1024: it would
# read 1024 HU too bright.
series("missing_intercept", n=4, intercept=-1024.0)
victim = slice_files("missing_intercept")[2]
ds = pydicom.dcmread(victim)
del ds.RescaleIntercept
ds.save_as(victim)

# RescaleSlope 0 (every voxel = the intercept) and a slope that is text.
series("slope_zero", n=3, slope=0.0)
series("slope_text", n=3, slope=77.5)
victim = slice_files("slope_text")[1]
data = open(victim, "rb").read()
assert data.count(b"77.5") == 1
open(victim, "wb").write(data.replace(b"77.5", b"abc "))

# Rows too small for the pixel data: 8x16 pixels declared, 16x16 stored.
series("rows_too_small", n=3)
for f in slice_files("rows_too_small"):
    ds = pydicom.dcmread(f)
    ds.Rows = 8
    ds.save_as(f)

# In-plane offsets jumping back and forth along the stack; the first and
# last slices line up, so the stack shows no overall drift (tilt).
series("zigzag", n=5, positions=[np.array([x, 0.0, z]) for x, z in
                                 zip([0, 0.6, 0, 0.6, 0], [0, 2, 4, 6, 8])])

# JPEG lossless series (DCMTK's dcmcjpeg) whose second slice lost part of its
# entropy-coded data: the decoder warns "premature end of data segment" and
# would fill the rest of the slice with whatever it had.
series("corrupt_jpeg_plain", n=3)
os.makedirs(os.path.join(out, "corrupt_jpeg"))
for f in slice_files("corrupt_jpeg_plain"):
    subprocess.run(["dcmcjpeg", "+e1", f, os.path.join(out, "corrupt_jpeg", os.path.basename(f))],
                   check=True)
shutil.rmtree(os.path.join(out, "corrupt_jpeg_plain"))
victim = slice_files("corrupt_jpeg")[1]
ds = pydicom.dcmread(victim)
stream = b"".join(decode_data_sequence(ds.PixelData))
sos = stream.find(b"\xff\xda")
scan_start = sos + 2 + int.from_bytes(stream[sos + 2:sos + 4], "big")
ds.PixelData = encapsulate([stream[:scan_start + 100] + stream[-2:]])  # keep EOI
ds.save_as(victim)

# JPEG 2000 lossless series (GDCM's gdcmconv, explicit VR input so that it
# keeps the VRs) whose second slice lost the second half of its codestream.
series("truncated_j2k_plain", n=3, ts=pydicom.uid.ExplicitVRLittleEndian)
os.makedirs(os.path.join(out, "truncated_j2k"))
for f in slice_files("truncated_j2k_plain"):
    subprocess.run(["gdcmconv", "--j2k", f, os.path.join(out, "truncated_j2k", os.path.basename(f))],
                   check=True)
shutil.rmtree(os.path.join(out, "truncated_j2k_plain"))
victim = slice_files("truncated_j2k")[1]
ds = pydicom.dcmread(victim)
stream = b"".join(decode_data_sequence(ds.PixelData))
ds.PixelData = encapsulate([stream[:len(stream) // 2]])
ds.save_as(victim)
# The same codestreams under a header that says 20 rows: the decoder's image
# size is checked against Rows and Columns before it decodes.
os.makedirs(os.path.join(out, "j2k_wrong_rows"))
for f in slice_files("truncated_j2k")[::2]:
    ds = pydicom.dcmread(f)
    ds.Rows = 20
    ds.save_as(os.path.join(out, "j2k_wrong_rows", os.path.basename(f)))


# Enhanced CT objects (geometry in the functional groups) that cannot be placed.
def enhanced(name, n=4):
    os.makedirs(os.path.join(out, name))
    path = os.path.join(out, name, "enhanced.dcm")
    zs = [np.array([0.0, 0.0, 2.0 * k]) for k in range(n)]
    dicomgen.write_enhanced(path, rng.integers(-1000, 1000, (n, 8, 8)), AX, zs, (1, 1))
    return path, pydicom.dcmread(path)


path, ds = enhanced("enhanced_frame_count")  # NumberOfFrames 4, three per-frame groups
del ds.PerFrameFunctionalGroupsSequence[3]
ds.save_as(path)
path, ds = enhanced("enhanced_no_position")  # frame 3 has no PlanePositionSequence
del ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
ds.save_as(path)
path, ds = enhanced("enhanced_no_orientation")  # no PlaneOrientationSequence anywhere
del ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
ds.save_as(path)
path, ds = enhanced("enhanced_duplicate_frames")  # two frames at one position
ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0].ImagePositionPatient = [0, 0, 2]
ds.save_as(path)
