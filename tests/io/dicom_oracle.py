"""dicom_oracle.py - cbctiq's DICOM series reader against pydicom and dcm2niix.

Series are written at test time by pydicom (dicomgen.py) with shuffled
random file names, InstanceNumbers that disagree with the geometry,
descending slice positions, rescale slope/intercept, axial, coronal,
sagittal and oblique orientation cosines, 12-bit values in 16-bit cells
with garbage above BitsStored, and re-encoded with DCMTK's command-line
tools in RLE and JPEG lossless. cbctiq's voxels must equal
pydicom's pixel_array through the modality LUT, its affine the standard
DICOM formula from pydicom's values (LPS -> RAS+), and every voxel must sit
where dcm2niix's NIfTI puts the same value.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import io_dump_read  # noqa: E402
import dicomgen  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--helper", required=True)
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
rng = np.random.default_rng(5)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def cbctiq(*a):
    return subprocess.run([args.cbctiq, *a], capture_output=True, text=True)


def helper_read(path):
    return io_dump_read.read(args.helper, args.workdir, path)


def rotation(axis, deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def compare_with_dcm2niix(name, folder, vox, aff):
    out = os.path.join(args.workdir, name + "_d2n")
    os.makedirs(out, exist_ok=True)
    r = subprocess.run(["dcm2niix", "-z", "n", "-f", "x", "-o", out, folder], capture_output=True,
                       text=True)
    niis = sorted(glob.glob(os.path.join(out, "x*.nii")))
    if r.returncode != 0 or not niis:
        check(False, f"{name}: dcm2niix failed: {r.stdout[-300:]}")
        return
    ref = nib.load(niis[0])
    rdata = ref.get_fdata()
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in vox.shape], indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)])
    world = aff @ ijk
    ridx = np.linalg.inv(ref.affine) @ world
    near = np.rint(ridx[:3]).astype(int)
    ok_grid = np.abs(ridx[:3] - near).max() < 1e-3
    inside = all((near[a] >= 0).all() and (near[a] < rdata.shape[a]).all() for a in range(3))
    check(ok_grid and inside, f"{name}: cbctiq voxel centres are not dcm2niix voxel centres "
          f"(max off-grid {np.abs(ridx[:3] - near).max():.2g})")
    if ok_grid and inside:
        same = np.array_equal(rdata[near[0], near[1], near[2]], vox.ravel().astype(np.float64))
        check(same, f"{name}: values differ from dcm2niix at the same world positions")


def case(name, iop, step, slope, intercept, signed=True, ts=None, rows=24, cols=30, n=7,
         spacing=(0.7, 0.8), first=(-20.0, 35.5, 100.25), encode=None, d2n=True, extra=None,
         mark=None, full_cells=False):
    folder = os.path.join(args.workdir, name)
    lo, hi = (-2000, 3000) if signed else (0, 4000)
    if full_cells:  # every bit of the 16-bit cells set at random, above BitsStored too
        lo, hi = (-32768, 32768) if signed else (0, 65536)
    pixels = rng.integers(lo, hi, size=(n, rows, cols))
    if mark is not None:  # stored value written over a corner of every slice
        pixels[:, :3, :4] = mark
    kw = {"ts": ts} if ts else {}
    if extra:
        kw["extra"] = extra
    uids = dicomgen.write_series(folder, pixels, iop, first, spacing, step, slope, intercept,
                                 signed=signed, rng=rng, **kw)
    want, ras, dss = dicomgen.read_back(folder)
    n_padding = int(sum(dicomgen.padding_mask(d).sum() for d in dss))
    check(("PixelPaddingValue" in (extra or {})) == (n_padding > 0),
          f"{name}: {n_padding} padding voxels written")
    if full_cells:  # the masking must matter: raw cells differ from stored values
        check(any(not np.array_equal(d.pixel_array, dicomgen.stored_values(d)) for d in dss),
              f"{name}: no cell has bits above BitsStored")
    if encode:  # lossless: the decoded voxels must equal the originals
        enc = folder + "_" + encode[0]
        os.makedirs(enc)
        for f in os.listdir(folder):
            r = subprocess.run([*encode[1:], os.path.join(folder, f), os.path.join(enc, f)],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"{name}: {encode[1]} failed: {r.stderr}")
        folder = enc
        f0 = os.path.join(enc, sorted(os.listdir(enc))[0])
        dss = [pydicom.dcmread(f0, stop_before_pixels=True)]
        check(dss[0].file_meta.TransferSyntaxUID.is_compressed, f"{name}: not compressed")
    got, msg = helper_read(folder)
    if got is None:
        check(False, f"{name}: cbctiq refused: {msg.strip()}")
        return
    vox, aff = got
    check(vox.shape == want.shape, f"{name}: shape {vox.shape} != {want.shape}")
    if vox.shape == want.shape:
        check(np.array_equal(vox.astype(np.float64), want.astype(np.float32).astype(np.float64)),
              f"{name}: voxels differ from pydicom by up to {np.abs(vox - want).max()}")
    check(np.allclose(aff, ras, atol=1e-6), f"{name}: affine\n{aff}\n!= pydicom\n{ras}")
    r = cbctiq("info", "--json", folder)
    check(r.returncode == 0, f"{name}: info failed: {r.stderr}")
    if r.returncode == 0:
        info = json.loads(r.stdout)
        check(info["dims"] == list(want.shape), f"{name}: info dims {info['dims']}")
        check(np.allclose(info["affine"], ras, atol=1e-6), f"{name}: info affine")
        check(np.allclose(info["spacing"], np.sqrt((ras[:3, :3] ** 2).sum(0)), atol=1e-6),
              f"{name}: info spacing {info['spacing']}")
        check(info["orientation"] == "".join(nib.aff2axcodes(ras)),
              f"{name}: orientation {info['orientation']} != nibabel {nib.aff2axcodes(ras)}")
        d = info["dicom"]
        check(d["series_uid"] == uids["series_uid"] and d["n_slices"] == n and
              d["modality"] == "CT" and d["transfer_syntax_uid"] == dss[0].file_meta.TransferSyntaxUID
              and d["rescale_slope"] == slope and d["rescale_intercept"] == intercept
              and d["padding_voxels"] == n_padding,
              f"{name}: metadata {d}")
        check(info["hu_min"] == float(want.min()) and info["hu_max"] == float(want.max()),
              f"{name}: HU range")
    if d2n:
        compare_with_dcm2niix(name, folder, vox, aff)
    print(f"ok  {name}")


AX = [1, 0, 0, 0, 1, 0]
case("axial_descending", AX, -2.5, 2.0, -1024.0)
case("axial_explicit_unsigned", AX, 1.25, 1.0, -1024.0, signed=False, ts=ExplicitVRLittleEndian)
case("coronal", [1, 0, 0, 0, 0, -1], 3.0, 1.0, -1000.0)
case("sagittal", [0, 1, 0, 0, 0, -1], -2.0, 0.5, 10.0)
R = rotation([0.3, -0.5, 0.8], 25)
case("oblique", list(R[:, 0]) + list(R[:, 1]), 1.5, 1.0, -1024.0)
case("rle", AX, 2.0, 1.0, -1024.0, encode=("rle", "dcmcrle"))
case("jpeg_lossless", AX, 2.0, 1.0, -1024.0, encode=("jpegll", "dcmcjpeg", "+e1"))
case("single_slice", AX, 2.0, 1.0, -1024.0, n=1, d2n=False)
# BitsStored 12 in 16-bit cells whose upper 4 bits hold garbage: the value is
# the low 12 bits, as dcm2niix reads it; signed values are sign-extended
# from bit 11 (PS3.5 8.1.1). dcm2niix 1.0.20220720 masks signed cells
# without sign-extending them (a stored -1 reads as 4095), so the signed
# case is compared with pydicom only.
case("bits_stored_12_unsigned", AX, 2.0, 1.0, -1024.0, signed=False, full_cells=True,
     extra={"BitsStored": 12, "HighBit": 11})
case("bits_stored_12_signed", AX, 2.0, 1.0, 0.0, full_cells=True, d2n=False,
     extra={"BitsStored": 12, "HighBit": 11})
# Padding outside the reconstructed circle: 65535 stored would read as 64511 HU
# (dcm2niix does not apply padding, so it is not compared there).
case("padding_unsigned", AX, 2.0, 1.0, -1024.0, signed=False, mark=65535, d2n=False,
     extra={"PixelPaddingValue": 65535})
case("padding_range_signed", AX, 2.0, 1.0, -1024.0, ts=ExplicitVRLittleEndian, d2n=False,
     extra={"PixelPaddingValue": -2000, "PixelPaddingRangeLimit": -1500})

# Two series in one folder: an error that lists both, unless --series picks one.
two = os.path.join(args.workdir, "two_series")
u1 = dicomgen.write_series(two, rng.integers(0, 100, (3, 8, 8)), AX, (0, 0, 0), (1, 1), 2,
                           description="first", rng=rng)
u2 = dicomgen.write_series(two, rng.integers(0, 100, (4, 8, 8)), AX, (0, 0, 0), (1, 1), 2,
                           description="second", rng=rng)
r = cbctiq("info", two)
check(r.returncode == 1 and u1["series_uid"] in r.stderr and u2["series_uid"] in r.stderr and
      "first" in r.stderr and "4 files" in r.stderr and "--series" in r.stderr,
      f"two series: {r.stderr!r}")
r = cbctiq("info", "--json", "--series", u2["series_uid"], two)
check(r.returncode == 0 and json.loads(r.stdout)["dims"] == [8, 8, 4], f"--series: {r.stderr}")
# One file of a series stands for its series.
r = cbctiq("info", "--json", os.path.join(two, sorted(os.listdir(two))[0]))
check(r.returncode == 0, f"single file path: {r.stderr}")
print("ok  series selection")

# convert: DICOM -> NIfTI keeps voxels and world coordinates (nibabel reads it).
folder = os.path.join(args.workdir, "oblique")
want, ras, _ = dicomgen.read_back(folder)
for opt in [[], ["--canonical"]]:
    out = os.path.join(args.workdir, "conv%s.nii.gz" % "".join(opt).replace("-", "_"))
    r = cbctiq("convert", "--quiet", *opt, folder, out)
    check(r.returncode == 0 and r.stdout == "", f"convert {opt}: {r.stderr}")
    img = nib.load(out)
    check(img.get_data_dtype() == np.int16, f"convert {opt}: auto dtype {img.get_data_dtype()}")
    if not opt:
        check(np.array_equal(img.get_fdata(), want) and np.allclose(img.affine, ras, atol=1e-4),
              "convert: voxels/affine differ")
    else:
        check(nib.aff2axcodes(img.affine) == ("L", "P", "S"), "convert --canonical: not LPS")
        # same world position -> same value
        wpos = img.affine @ np.array([3, 5, 2, 1.0])
        src = np.rint(np.linalg.inv(ras) @ wpos).astype(int)
        check(img.get_fdata()[3, 5, 2] == want[src[0], src[1], src[2]], "canonical value moved")
print("ok  convert")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("all DICOM oracle checks passed")
