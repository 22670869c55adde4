"""dicom_j2k_oracle.py - cbctiq's JPEG 2000 pixel data (OpenJPEG behind the
DICOM adapter) against pydicom.

Series written by pydicom (signed and unsigned 12-bit values in 16-bit
cells, with garbage above BitsStored in the plain files, rescale) are
encoded by GDCM's gdcmconv, losslessly (1.2.840.10008.1.2.4.90) and lossily
(.91). cbctiq's voxels must equal pydicom's decoded pixel_array through the
modality LUT exactly (for lossless data also the plain series', masked to
BitsStored), its affine
the one pydicom's values give. pydicom's own JPEG 2000 test files (found
through pydicom.data, not a path) must read as pydicom reads them,
J2K_pixelrep_mismatch.dcm included (PixelRepresentation 1 over unsigned
13-bit samples). pydicom decodes JPEG 2000 through Pillow; without it the
test fails, it does not skip.
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
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
rng = np.random.default_rng(19)
failures = []
J2K_LOSSLESS, J2K_LOSSY = "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def helper_read(path):
    return io_dump_read.read(args.helper, args.workdir, path)


def j2k_hu(ds):
    """pydicom's pixel_array (its JPEG 2000 corrections: the codestream's
    precision and sign decide, BitsStored is not applied) through the
    modality LUT, padding read as air (dicomgen.PADDING_HU)."""
    stored = ds.pixel_array.astype(np.int64)
    hu = pydicom.pixel_data_handlers.util.apply_modality_lut(stored, ds).astype(np.float64)
    if "PixelPaddingValue" in ds:
        a = int(ds.PixelPaddingValue)
        b = int(ds.get("PixelPaddingRangeLimit", a))
        hu[(stored >= min(a, b)) & (stored <= max(a, b))] = dicomgen.PADDING_HU
    return hu


def same_voxels(name, got, want):
    check(got.shape == want.shape, f"{name}: shape {got.shape} != pydicom {want.shape}")
    if got.shape == want.shape:
        diff = np.abs(got.astype(np.float64) - want.astype(np.float32).astype(np.float64))
        check(diff.max() == 0, f"{name}: voxels differ from pydicom's by up to {diff.max()} "
              f"({int((diff > 0).sum())} voxels)")


def encode(plain, folder, lossy):
    os.makedirs(folder)
    for f in sorted(os.listdir(plain)):
        cmd = ["gdcmconv", "--j2k", os.path.join(plain, f), os.path.join(folder, f)]
        if lossy:
            cmd[2:2] = ["--lossy", "--irreversible", "-q", "40"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        check(r.returncode == 0, f"gdcmconv {' '.join(cmd[1:-2])} failed: {r.stderr[-300:]}")


CASES = [  # name, signed, lossy, slope, intercept
    ("lossless_signed", True, False, 1.0, 0.0),
    ("lossless_unsigned", False, False, 1.0, -1024.0),
    ("lossless_rescaled", True, False, 0.5, -300.0),
    ("lossy_signed", True, True, 1.0, -1024.0),
]
for name, signed, lossy, slope, inter in CASES:
    n, rows, cols = 5, 20, 26
    values = rng.integers(-2048 if signed else 0, 2048 if signed else 4096, (n, rows, cols))
    garbage = rng.integers(0, 16, values.shape) << 12  # above BitsStored: masked off
    cells = (values & 0xFFF) | garbage
    plain = os.path.join(args.workdir, name + "_plain")
    iop = [0.8, 0.6, 0, -0.6, 0.8, 0]
    dicomgen.write_series(plain, cells.astype(np.uint16).astype(np.int16 if signed else np.uint16),
                          iop, (10.0, -20.0, 5.0), (0.7, 0.9), 1.25, slope=slope, intercept=inter,
                          signed=signed, rng=rng, ts=ExplicitVRLittleEndian,  # gdcmconv: VR kept
                          extra={"BitsStored": 12, "HighBit": 11})
    folder = os.path.join(args.workdir, name)
    encode(plain, folder, lossy)
    ts = {pydicom.dcmread(os.path.join(folder, f)).file_meta.TransferSyntaxUID
          for f in os.listdir(folder)}
    check(ts == {J2K_LOSSY if lossy else J2K_LOSSLESS}, f"{name}: gdcmconv wrote {ts}")
    got, why = helper_read(folder)
    if got is None:
        check(False, f"{name}: cbctiq refused the series: {why.strip()}")
        continue
    vox, aff = got
    _, ras, dss = dicomgen.read_back(folder)  # sorted along the normal
    want = np.stack([j2k_hu(d) for d in dss]).transpose(2, 1, 0)
    same_voxels(name, vox, want)
    check(np.allclose(aff, ras, atol=1e-5), f"{name}: affine\n{aff}\n!= pydicom's\n{ras}")
    if not lossy:
        plain_hu, _, _ = dicomgen.read_back(plain)
        same_voxels(name + " vs the plain series", vox, plain_hu)
    elif np.array_equal(vox, dicomgen.read_back(plain)[0]):
        check(False, f"{name}: lossy data decoded to the plain values: not lossy, so not tested")

# pydicom's JPEG 2000 files, each alone in a folder. JPEG2000.dcm has no
# geometry; a copy gets one (the pixel data stay as they are).
SHIPPED = ["MR_small_jp2klossless.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm",
           "JPEG2000.dcm"]
for name in SHIPPED:
    ds = pydicom.dcmread(get_testdata_file(name))
    folder = os.path.join(args.workdir, "shipped_" + name[:-4])
    os.makedirs(folder)
    path = os.path.join(folder, name)
    if "ImagePositionPatient" not in ds:
        ds.ImagePositionPatient = [0, 0, 0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1, 1]
        ds.save_as(path)
    else:
        shutil.copyfile(get_testdata_file(name), path)
    ds = pydicom.dcmread(path)
    check(ds.file_meta.TransferSyntaxUID in (J2K_LOSSLESS, J2K_LOSSY),
          f"{name}: transfer syntax {ds.file_meta.TransferSyntaxUID}")
    got, why = helper_read(path)
    if got is None:
        check(False, f"{name}: cbctiq refused it: {why.strip()}")
        continue
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    check(frames == 1, f"{name}: {frames} frames; the test expects one")
    same_voxels(name, got[0], j2k_hu(ds).T[:, :, None])

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print(f"{len(CASES)} gdcmconv-encoded series and {len(SHIPPED)} pydicom JPEG 2000 files read as "
      "pydicom reads them")
