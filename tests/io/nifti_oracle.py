"""nifti_oracle.py - cbctiq's NIfTI reader and writer against nibabel.

Volumes are written by nibabel in many datatypes, byte orders, scalings and
orientations (sform, qform only, neither, LPS-like flips, oblique, NIfTI-2);
cbctiq must read the voxels nibabel's get_fdata() gives (to float32 rounding)
and the affine nibabel's `affine` gives. Then cbctiq writes volumes and
nibabel must read back the same voxels, sform and qform.
"""
import argparse
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq")
ap.add_argument("--workdir", required=True)
ap.add_argument("--helper", required=True)
args = ap.parse_args()
# an empty folder: an output left by an earlier run must not stand in for this run's
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
rng = np.random.default_rng(7)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def helper_read(path):
    prefix = os.path.join(args.workdir, "dump")
    for ext in (".txt", ".raw"):  # the previous read's dump must not stand in for this one
        if os.path.exists(prefix + ext):
            os.remove(prefix + ext)
    r = subprocess.run([args.helper, "read", path, prefix], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr
    with open(prefix + ".txt") as f:
        lines = f.read().split("\n")
    nx, ny, nz = (int(v) for v in lines[0].split())
    spacing = np.array([float(v) for v in lines[1].split()])
    aff = np.array([[float(v) for v in lines[2 + r].split()] for r in range(4)])
    vox = np.fromfile(prefix + ".raw", dtype=np.float32).reshape(nz, ny, nx).transpose(2, 1, 0)
    return (vox, spacing, aff), r.stderr


def rot(ax, deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    m = np.eye(3)
    i, j = [(1, 2), (0, 2), (0, 1)][ax]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def affine_of(kind):
    a = np.eye(4)
    if kind == "ras":
        a[:3, :3] = np.diag([0.9, 1.1, 2.5])
        a[:3, 3] = [-10.5, 20.25, -33.0]
    elif kind == "lps":   # DICOM-like: x and y flipped
        a[:3, :3] = np.diag([-0.75, -0.75, 2.0])
        a[:3, 3] = [96.0, 120.0, -50.0]
    elif kind == "lpi":   # k runs superior -> inferior
        a[:3, :3] = np.diag([-1.2, -1.2, -3.0])
        a[:3, 3] = [50.0, 60.0, 200.0]
    elif kind == "oblique":
        a[:3, :3] = rot(0, 17) @ rot(2, -8) @ np.diag([0.8, 0.9, 2.2])
        a[:3, 3] = [5.0, -7.5, 12.0]
    elif kind == "permuted":  # voxel axes not in x, y, z order (sagittal stack)
        a[:3, :3] = np.array([[0, 0, -2.0], [1.5, 0, 0], [0, -1.25, 0]])
        a[:3, 3] = [30.0, -40.0, 55.0]
    return a


def make_data(dtype, shape):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        lo, hi = max(info.min, -3000), min(info.max, 3000)
        return rng.integers(lo, hi + 1, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * 500).astype(dtype)


def case(name, dtype, kind, ext=".nii.gz", version=1, slope=None, inter=None,
         xform="both", endian="<", shape=(7, 6, 5)):
    data = make_data(np.dtype(dtype), shape)
    aff = affine_of(kind)
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    hdr_cls = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    img = cls(data, aff, header=hdr_cls(endianness=endian))
    img.set_data_dtype(np.dtype(dtype).newbyteorder(endian))
    if xform in ("both", "sform"):
        img.set_sform(aff, code=1)
    else:
        img.set_sform(None, code=0)
    if xform in ("both", "qform"):
        img.set_qform(aff, code=2)
    else:
        img.set_qform(None, code=0)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    path = os.path.join(args.workdir, name + ext)
    nib.save(img, path)
    ref = nib.load(path)
    want = ref.get_fdata(dtype=np.float64)
    got, msg = helper_read(path)
    if got is None:
        check(False, f"{name}: cbctiq refused a valid file: {msg.strip()}")
        return
    vox, spacing, gaff = got
    check(vox.shape == want.shape, f"{name}: shape {vox.shape} != {want.shape}")
    if vox.shape != want.shape:
        return
    want32 = want.astype(np.float32)
    ulp = np.spacing(np.abs(want32)).astype(np.float64)
    err = np.abs(vox.astype(np.float64) - want32.astype(np.float64))
    tol = 0 if slope is None and np.dtype(dtype) != np.float64 else 1
    check(np.all(err <= tol * ulp), f"{name}: voxels differ from nibabel by up to "
          f"{(err / np.maximum(ulp, 1e-300)).max():.1f} ulp")
    check(np.allclose(gaff, ref.affine, rtol=0, atol=1e-5),
          f"{name}: affine\n{gaff}\n!= nibabel\n{ref.affine}")
    check(np.allclose(spacing, np.sqrt((ref.affine[:3, :3] ** 2).sum(0)), atol=1e-6),
          f"{name}: spacing {spacing}")
    print(f"ok  {name}")


for dt in ["int16", "uint8", "int8", "uint16", "int32", "uint32", "int64", "float32", "float64"]:
    case(f"dt_{dt}", dt, "ras")
case("scaled_int16", "int16", "lps", slope=0.5, inter=-1024.0)
case("scaled_uint8", "uint8", "ras", slope=3.0, inter=-1000.0, ext=".nii")
case("scaled_float32", "float32", "oblique", slope=2.0, inter=1.5)
case("big_endian_int16", "int16", "lpi", endian=">")
case("big_endian_float64_v2", "float64", "oblique", endian=">", version=2)
case("nifti2_int16", "int16", "lps", version=2)
case("nifti2_uint8_nii", "uint8", "permuted", version=2, ext=".nii")
for kind in ["ras", "lps", "lpi", "oblique", "permuted"]:
    case(f"qform_only_{kind}", "int16", kind, xform="qform")
case("sform_only_oblique", "float32", "oblique", xform="sform")
case("no_xform", "int16", "ras", xform="none")
case("shape_1slice", "int16", "ras", shape=(9, 4, 1))

# slope 0 means "no scaling" (NIfTI standard): the stored values come back.
p = os.path.join(args.workdir, "slope0.nii")
img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
img.header["scl_slope"] = 0
img.header["scl_inter"] = 7
nib.save(img, p)
got, msg = helper_read(p)
check(got is not None and np.array_equal(got[0], np.arange(24).reshape(2, 3, 4)),
      "slope 0 must mean no scaling")

# Refusals: NaN voxels, 4D, complex.
def refused(name, img, fragment):
    path = os.path.join(args.workdir, name + ".nii.gz")
    nib.save(img, path)
    got, msg = helper_read(path)
    check(got is None and fragment in msg and name in msg,
          f"{name}: expected refusal with '{fragment}', got: {msg.strip()!r}")
    print(f"ok  {name} refused: {msg.strip()}")

nanvol = np.zeros((4, 4, 4), np.float32)
nanvol[1, 2, 3] = np.nan
nanvol[0, 0, 1] = np.inf
refused("nan_voxels", nib.Nifti1Image(nanvol, np.eye(4)), "2 voxels are NaN or infinite")
refused("four_d", nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.int16), np.eye(4)), "3D volumes only")
refused("complex", nib.Nifti1Image(np.zeros((4, 4, 4), np.complex64), np.eye(4)), "complex64")
got, _ = helper_read(os.path.join(args.workdir, "x.nii"))
four1 = os.path.join(args.workdir, "four_d_single.nii")
nib.save(nib.Nifti1Image(np.ones((4, 3, 2, 1), np.int16), np.eye(4)), four1)
got, msg = helper_read(four1)
check(got is not None and got[0].shape == (4, 3, 2), f"4D with one volume must read: {msg}")

# Writer: cbctiq writes, nibabel reads.
codes = {"uint8": 2, "int16": 4, "int32": 8, "float32": 16, "float64": 64, "int8": 256,
         "uint16": 512}
for kind in ["ras", "lps", "oblique", "permuted"]:
    for dt, code in codes.items():
        for ext in [".nii", ".nii.gz"]:
            shape = (6, 5, 4)
            if dt.startswith("float"):
                vals = (rng.standard_normal(shape) * 300).astype(np.float32)
            else:
                info = np.iinfo(dt)
                vals = rng.integers(max(info.min, -2000), min(info.max, 2000) + 1,
                                    size=shape).astype(np.float32)
                vals[0, 0, 0] += 0.4  # rounding to nearest
            raw = os.path.join(args.workdir, "w.raw")
            vals.ravel(order="F").tofile(raw)
            aff = affine_of(kind)
            out = os.path.join(args.workdir, f"w_{kind}_{dt}{ext}")
            r = subprocess.run([args.helper, "write", raw, *map(str, shape),
                                *[repr(float(v)) for v in aff[:3].ravel()], str(code), out],
                               capture_output=True, text=True)
            name = f"write {kind} {dt}{ext}"
            if r.returncode != 0:
                check(False, f"{name}: {r.stderr.strip()}")
                continue
            img = nib.load(out)
            check(img.get_data_dtype() == np.dtype(dt), f"{name}: dtype {img.get_data_dtype()}")
            want = vals if dt.startswith("float") else np.rint(vals)
            check(np.array_equal(np.asarray(img.dataobj).astype(np.float64),
                                 want.astype(np.float64)), f"{name}: voxels differ")
            sf, scode = img.get_sform(coded=True)
            qf, qcode = img.get_qform(coded=True)
            check(scode == 1 and qcode == 1, f"{name}: codes {scode} {qcode}")
            check(np.allclose(sf, aff, atol=1e-5), f"{name}: sform\n{sf}")
            check(np.allclose(qf, aff, atol=1e-4), f"{name}: qform\n{qf}")
            check(np.allclose(img.header.get_zooms(), np.sqrt((aff[:3, :3] ** 2).sum(0)),
                              atol=1e-5), f"{name}: pixdim {img.header.get_zooms()}")
    print(f"ok  writer, {kind}")

# A sheared affine has no qform (a rotation, sizes and a flip): cbctiq keeps
# it exactly in the sform and leaves the qform unset (code 0), rather than
# writing the nearest rotation as a qform that disagrees with the sform.
# Both through the writer and through `convert` of a nibabel file.
sheared = affine_of("oblique")
sheared[:3, 1] += 0.3 * sheared[:3, 0]
src = os.path.join(args.workdir, "sheared_src.nii.gz")
vals = rng.integers(-1000, 1000, size=(6, 5, 4)).astype(np.int16)
img = nib.Nifti1Image(vals, None)
img.set_sform(sheared, code=1)
img.set_qform(None, code=0)
nib.save(img, src)
raw = os.path.join(args.workdir, "w.raw")
vals.astype(np.float32).ravel(order="F").tofile(raw)
written = os.path.join(args.workdir, "sheared_written.nii")
r1 = subprocess.run([args.helper, "write", raw, "6", "5", "4",
                     *[repr(float(v)) for v in sheared[:3].ravel()], "4", written],
                    capture_output=True, text=True)
converted = os.path.join(args.workdir, "sheared_converted.nii.gz")
r2 = subprocess.run([args.cbctiq, "convert", "--quiet", src, converted], capture_output=True,
                    text=True)
for name, r, out in [("write sheared", r1, written), ("convert sheared", r2, converted)]:
    if r.returncode != 0:
        check(False, f"{name}: {r.stderr.strip()}")
        continue
    back = nib.load(out)
    sf, scode = back.get_sform(coded=True)
    _, qcode = back.get_qform(coded=True)
    check(scode == 1 and qcode == 0, f"{name}: sform code {scode}, qform code {qcode} (want 1, 0)")
    check(np.allclose(sf, sheared, atol=1e-5) and np.allclose(back.affine, sheared, atol=1e-5),
          f"{name}: sform\n{sf}")
    check(np.allclose(back.header.get_zooms(), np.sqrt((sheared[:3, :3] ** 2).sum(0)), atol=1e-5),
          f"{name}: pixdim {back.header.get_zooms()}")
    check(np.array_equal(np.asarray(back.dataobj), vals), f"{name}: voxels differ")
print("ok  sheared affine: sform only")

# Integer overflow on write is refused and leaves no file.
vals = np.full((2, 2, 2), 300, np.float32)
raw = os.path.join(args.workdir, "w.raw")
vals.ravel(order="F").tofile(raw)
out = os.path.join(args.workdir, "overflow.nii.gz")
r = subprocess.run([args.helper, "write", raw, "2", "2", "2", *["1", "0", "0", "0", "0", "1",
                    "0", "0", "0", "0", "1", "0"], "2", out], capture_output=True, text=True)
check(r.returncode != 0 and "does not fit uint8" in r.stderr and not os.path.exists(out),
      f"uint8 overflow must be refused: {r.stderr!r}")
check(not any(f.startswith(".overflow") for f in os.listdir(args.workdir)), "temp file left")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("all NIfTI oracle checks passed")
