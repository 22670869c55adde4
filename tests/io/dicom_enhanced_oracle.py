"""dicom_enhanced_oracle.py - cbctiq's reader of enhanced multi-frame DICOM
(Enhanced CT, Enhanced MR, Parametric Map with Float / Double Float Pixel
Data) against pydicom.

Objects are written by pydicom (dicomgen.write_enhanced) with the geometry
in the functional groups: positions per frame in shuffled file order,
orientation shared or per frame, oblique cosines, rescale shared or
different per frame. cbctiq's voxels must equal pydicom's pixel_array of
each frame through that frame's rescale, sorted along the normal, exactly;
its affine the one pydicom's values give. A Parametric Map written on the
grid of a classic series must show the same grid in `cbctiq info --json`
as that series. Frames split over two enhanced files of one series read as
one stack. An Enhanced CT re-encoded with gdcmconv --j2k (one JPEG
2000 codestream per frame) must read as the plain one.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom

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
rng = np.random.default_rng(23)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def helper_read(path):
    return io_dump_read.read(args.helper, args.workdir, path)


def compare(name, path):
    got, why = helper_read(path)
    if got is None:
        check(False, f"{name}: cbctiq refused it: {why.strip()}")
        return None
    vox, aff = got
    want, ras = dicomgen.read_back_enhanced(path)
    check(vox.shape == want.shape, f"{name}: shape {vox.shape} != pydicom {want.shape}")
    if vox.shape == want.shape:
        diff = np.abs(vox.astype(np.float64) - want.astype(np.float32).astype(np.float64))
        check(diff.max() == 0, f"{name}: voxels differ from pydicom's by up to {diff.max()}")
    check(np.allclose(aff, ras, atol=1e-5), f"{name}: affine\n{aff}\n!= pydicom's\n{ras}")
    return got


def stack(iop, first, step, n):
    normal = np.cross(np.array(iop[:3], float), np.array(iop[3:], float))
    return [np.asarray(first, float) + k * step * normal for k in range(n)]


def shuffled(positions):
    order = rng.permutation(len(positions))
    return order, [positions[i] for i in order]


OBLIQUE = [0.8, 0.6, 0, -0.6 * 0.9, 0.8 * 0.9, np.sqrt(1 - 0.81)]
AXIAL = [1, 0, 0, 0, 1, 0]
SAGITTAL = [0, 1, 0, 0, 0, -1]
n, rows, cols = 6, 18, 22

# Enhanced CT: shuffled frames, a rescale per frame.
cells = rng.integers(-2000, 3000, (n, rows, cols))
order, pos = shuffled(stack(OBLIQUE, (5.0, -12.0, 30.0), 1.5, n))
rescale = [(1.0, float(rng.integers(-1100, -900))) for _ in range(n)]
ct = os.path.join(args.workdir, "enhanced_ct", "ct.dcm")
os.makedirs(os.path.dirname(ct))
dicomgen.write_enhanced(ct, cells, OBLIQUE, pos, (0.6, 0.8), rescale=rescale)
compare("enhanced CT, shuffled frames, rescale per frame", ct)

# The same frames split over two enhanced files of one series: one stack.
split = os.path.join(args.workdir, "enhanced_ct_split")
os.makedirs(split)
uids = {"series_uid": pydicom.uid.generate_uid(), "frame_uid": pydicom.uid.generate_uid(),
        "study_uid": pydicom.uid.generate_uid()}
for part, frames in (("a", slice(0, 4)), ("b", slice(4, n))):
    dicomgen.write_enhanced(os.path.join(split, part + ".dcm"), cells[frames], OBLIQUE, pos[frames],
                            (0.6, 0.8), rescale=rescale[frames], **uids)
whole, _ = helper_read(ct)
parts, why = helper_read(split)
check(whole is not None and parts is not None and np.array_equal(whole[0], parts[0]) and
      np.allclose(whole[1], parts[1], atol=1e-9),
      f"enhanced CT split over two files does not read as the single file: {why.strip()}")

# Enhanced CT, shared rescale, descending positions.
ct2 = os.path.join(args.workdir, "enhanced_ct_shared", "ct.dcm")
os.makedirs(os.path.dirname(ct2))
dicomgen.write_enhanced(ct2, rng.integers(-1000, 1000, (n, rows, cols)), AXIAL,
                        stack(AXIAL, (0, 0, 40.0), -2.0, n), (0.5, 0.5), rescale=(0.5, -1024))
compare("enhanced CT, shared rescale", ct2)

# Enhanced MR: orientation in every per-frame group, no rescale.
mr = os.path.join(args.workdir, "enhanced_mr", "mr.dcm")
os.makedirs(os.path.dirname(mr))
dicomgen.write_enhanced(mr, rng.integers(0, 4000, (n, rows, cols)), SAGITTAL,
                        shuffled(stack(SAGITTAL, (-20.0, 3.0, 7.0), 3.0, n))[1], (1.1, 0.9),
                        sop_class=dicomgen.ENHANCED_MR, orientation_per_frame=True)
compare("enhanced MR, orientation per frame", mr)

# The same Enhanced CT, one JPEG 2000 codestream per frame (gdcmconv).
ct_j2k = os.path.join(args.workdir, "enhanced_ct_j2k", "ct.dcm")
os.makedirs(os.path.dirname(ct_j2k))
r = subprocess.run(["gdcmconv", "--j2k", ct, ct_j2k], capture_output=True, text=True)
check(r.returncode == 0, f"gdcmconv --j2k failed: {r.stderr[-300:]}")
if r.returncode == 0:
    check(pydicom.dcmread(ct_j2k).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90",
          "gdcmconv did not write JPEG 2000 lossless")
    j2k = compare("enhanced CT in JPEG 2000", ct_j2k)
    plain, _ = helper_read(ct)
    check(j2k is not None and plain is not None and np.array_equal(j2k[0], plain[0]),
          "enhanced CT in JPEG 2000 differs from the plain one")

# Parametric Maps (float and double) on the grid of a classic series: cbctiq
# info must show the grid of the source.
src = os.path.join(args.workdir, "source_series")
ipp0, step = (12.0, -40.0, -3.0), 2.5
dicomgen.write_series(src, rng.integers(-1000, 1000, (n, rows, cols)), OBLIQUE, ipp0,
                      (0.7, 0.9), step, rng=rng)


def info(path):
    r = subprocess.run([args.cbctiq, "info", "--json", path], capture_output=True, text=True)
    check(r.returncode == 0, f"cbctiq info {os.path.basename(path)}: {r.stderr.strip()}")
    return json.loads(r.stdout) if r.returncode == 0 else None


src_info = info(src)
for kind in ("float", "double"):
    values = rng.normal(0, 1e-3, (n, rows, cols)) * 10.0 ** rng.integers(-3, 4, (n, 1, 1))
    order, pos = shuffled(stack(OBLIQUE, ipp0, step, n))
    pm = os.path.join(args.workdir, f"parametric_map_{kind}", "map.dcm")
    os.makedirs(os.path.dirname(pm))
    dicomgen.write_enhanced(pm, values[order], OBLIQUE, pos, (0.7, 0.9),
                            sop_class=dicomgen.PARAMETRIC_MAP, float_data=kind)
    compare(f"parametric map ({kind})", pm)
    pm_info = info(pm)
    if src_info and pm_info:
        for key in ("dims", "spacing", "orientation"):
            check(pm_info[key] == src_info[key],
                  f"parametric map ({kind}): {key} {pm_info[key]} != source {src_info[key]}")
        check(np.allclose(pm_info["affine"], src_info["affine"], atol=1e-6),
              f"parametric map ({kind}): affine {pm_info['affine']} != source {src_info['affine']}")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("enhanced CT/MR, their JPEG 2000 form and float/double parametric maps read as pydicom "
      "reads them; the maps on their source's grid")
