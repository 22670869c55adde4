"""nifti_pair_oracle.py - cbctiq's reader of NIfTI .hdr/.img pairs against nibabel.

Pairs are written by nibabel (Nifti1Pair, Nifti2Pair) in several datatypes,
scalings, byte orders and geometries (sform, qform only, oblique), plain and
gzipped, and named by either file; nibabel's own test headers (nifti1.hdr,
nifti2.hdr, found through nibabel.testing.data_path) get an .img of random
voxels written here. cbctiq's voxels must equal nibabel's get_fdata() (to
float32 rounding) and its affine nibabel's `affine`. An Analyze 7.5 header
(nibabel's analyze.hdr) and a pair without its .img must be refused with a
message naming the file and the reason.
"""
import argparse
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
from nibabel.testing import data_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import io_dump_read  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--helper", required=True)
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
rng = np.random.default_rng(11)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def helper_read(path):
    return io_dump_read.read(args.helper, args.workdir, path)


def compare(name, path, img):
    """cbctiq's read of `path` against nibabel's read of the same pair."""
    got, why = helper_read(path)
    if got is None:
        check(False, f"{name}: cbctiq refused {os.path.basename(path)}: {why.strip()}")
        return
    vox, aff = got
    want = np.asarray(img.get_fdata(), dtype=np.float64)
    check(vox.shape == want.shape, f"{name}: shape {vox.shape} != nibabel {want.shape}")
    if vox.shape == want.shape:
        check(np.array_equal(vox, want.astype(np.float32)),
              f"{name}: voxels differ from nibabel by up to {np.abs(vox - want).max()}")
    check(np.allclose(aff, img.affine, rtol=0, atol=1e-5),
          f"{name}: affine\n{aff}\n!= nibabel's\n{img.affine}")


def rot(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def affine(kind):
    a = np.eye(4)
    if kind == "oblique":
        a[:3, :3] = rot(17) @ np.diag([0.8, 1.1, 2.5])
    else:
        a[:3, :3] = np.diag([-0.9, 1.2, 2.0])
    a[:3, 3] = [12.5, -30.0, 4.25]
    return a


CASES = [  # name, pair class, dtype, geometry, scaling, compressed, byte order
    ("int16_sform", nib.Nifti1Pair, np.int16, "sform", None, False, "<"),
    ("int16_scaled_gz", nib.Nifti1Pair, np.int16, "oblique", (0.5, -1024), True, "<"),
    ("uint8_qform_only", nib.Nifti1Pair, np.uint8, "qform", None, False, "<"),
    ("float32_bigendian", nib.Nifti1Pair, np.float32, "oblique", None, False, ">"),
    ("nifti2_int32", nib.Nifti2Pair, np.int32, "sform", (2.0, 3.0), False, "<"),
]
for name, cls, dtype, geom, scale, gz, order in CASES:
    shape = (7, 5, 4)
    data = (rng.uniform(-500, 500, shape) if dtype == np.float32 else
            rng.integers(0 if dtype == np.uint8 else -900, 250, shape)).astype(dtype)
    img = cls(data, affine(geom))
    if geom == "qform":
        img.set_sform(None, code=0)
        img.set_qform(affine("sform"), code=1)
    if scale:
        img.header.set_slope_inter(*scale)
    if order == ">":
        img = cls(data, img.affine, img.header.as_byteswapped(">"))
    base = os.path.join(args.workdir, name + (".hdr.gz" if gz else ".hdr"))
    nib.save(img, base)
    back = nib.load(base)
    check(back.header["magic"] in (b"ni1", b"ni2"), f"{name}: nibabel wrote magic {back.header['magic']}")
    compare(name + " (by .hdr)", base, back)
    compare(name + " (by .img)", base.replace(".hdr", ".img"), back)

# nibabel's own headers, with voxels written here in their datatype and byte order.
for name in ("nifti1.hdr", "nifti2.hdr"):
    hdr = os.path.join(args.workdir, "shipped_" + name)
    shutil.copyfile(os.path.join(data_path, name), hdr)
    shipped = nib.load(hdr)
    shape = shipped.header.get_data_shape()
    dt = shipped.header.get_data_dtype()
    vals = rng.integers(-2000, 2000, shape).astype(dt)
    with open(hdr[:-4] + ".img", "wb") as f:  # voxels from the header's vox_offset on
        f.write(b"\0" * int(shipped.dataobj.offset) + vals.tobytes(order="F"))
    compare(name + " (nibabel's)", hdr, nib.load(hdr))

# Refusals, through the command line as a user meets them.
ana = os.path.join(args.workdir, "analyze.hdr")
shutil.copyfile(os.path.join(data_path, "analyze.hdr"), ana)
ah = nib.load(ana).header
open(ana[:-4] + ".img", "wb").write(b"\0" * int(np.prod(ah.get_data_shape())) * ah.get_data_dtype().itemsize)
lonely = os.path.join(args.workdir, "lonely.hdr")
shutil.copyfile(os.path.join(data_path, "nifti1.hdr"), lonely)
for path, fragment in ((ana, "Analyze 7.5"), (lonely, "no image file")):
    r = subprocess.run([args.cbctiq, "info", path], capture_output=True, text=True)
    check(r.returncode == 1 and fragment in r.stderr and os.path.basename(path) in r.stderr,
          f"{os.path.basename(path)}: expected exit 1 with '{fragment}', got {r.returncode}: "
          f"{r.stderr.strip()}")
r = subprocess.run([args.cbctiq, "info", os.path.join(args.workdir, "int16_sform.hdr")],
                   capture_output=True, text=True)
check(r.returncode == 0 and "7 x 5 x 4 voxels" in r.stdout, f"cbctiq info on a pair: {r.stdout}{r.stderr}")

# The model path takes a pair like the .nii nibabel writes from the same
# voxels: the same pred.csv, the volume id without the extension.
w = args.workdir
model = os.path.join(w, "model")
a = rng.integers(-1000, 1000, (20, 16, 6)).astype(np.int16)
nib.save(nib.Nifti1Pair(a, np.diag([0.8, 0.8, 2.0, 1.0])), os.path.join(w, "vol.hdr"))
os.makedirs(os.path.join(w, "single"))
nib.save(nib.Nifti1Image(a, np.diag([0.8, 0.8, 2.0, 1.0])), os.path.join(w, "single", "vol.nii"))
preds = []
for cmd in (["model", "init", "--arch", "iqnet-s", "--seed", "1", "--out", model],
            ["predict", "--quiet", "--model", model, "--out", os.path.join(w, "pair.csv"),
             os.path.join(w, "vol.img")],
            ["predict", "--quiet", "--model", model, "--out", os.path.join(w, "single.csv"),
             os.path.join(w, "single", "vol.nii")]):
    r = subprocess.run([args.cbctiq, *cmd], capture_output=True, text=True)
    check(r.returncode == 0, f"cbctiq {' '.join(cmd[:2])}: {r.stderr.strip()}")
pair_csv = open(os.path.join(w, "pair.csv")).read() if os.path.exists(os.path.join(w, "pair.csv")) else ""
check(pair_csv.startswith("volume_id,") and "\nvol," in pair_csv,
      f"predict on vol.img: volume id is not 'vol':\n{pair_csv}")
check(os.path.exists(os.path.join(w, "single.csv")) and
      pair_csv == open(os.path.join(w, "single.csv")).read(),
      "predict on the pair and on the .nii of the same voxels differ")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print(f"{len(CASES)} written pairs (each by .hdr and .img) and nibabel's nifti1/nifti2 headers "
      "read as nibabel reads them; Analyze and a missing .img refused")
