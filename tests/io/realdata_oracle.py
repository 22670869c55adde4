"""realdata_oracle.py - the readers on real files.

Runs on a folder laid out as the real data set (openkbp_hn_ct/, hn_phantom_ct/):
the repository's fixture tests/data (a few files; always run), or the full set
at ../shared/data (label realdata; registered only when it is there).

- The phantom's original Siemens slices (hn_phantom_ct/<--dicom>): voxels and
  geometry equal to what pydicom reads; metadata as in the headers.
- With --phantom-nifti (the full set only): the same slices, 2x2
  block-averaged, equal hn_phantom_ct/ct.nii.gz at the matching z
  (PROVENANCE.md: averaged in-plane, rounded to int16, origin shifted half an
  original pixel), read by nibabel.
- OpenKBP volumes: CT voxels and affine equal nibabel's; structure masks from
  oar_labels.nii.gz + labels.json equal nibabel's label array, and their
  axial extent equals manifest.csv's mandible/larynx k ranges.
- Axial PNGs at the mandible level with structure outlines are written to
  the work folder for a human to look at.
Missing data is a failure, not a skip: --slices and --cases say how many
slices and volumes the folder must hold.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import matplotlib.image as mpimg
import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dicomgen  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--helper", required=True)
ap.add_argument("--data", required=True, help="folder holding openkbp_hn_ct/ and hn_phantom_ct/")
ap.add_argument("--dicom", required=True, help="the phantom's DICOM folder under hn_phantom_ct/")
ap.add_argument("--slices", type=int, required=True, help="slices the DICOM folder must hold")
ap.add_argument("--cases", type=int, required=True, help="volumes manifest.csv must list")
ap.add_argument("--phantom-nifti", action="store_true", help="also compare with hn_phantom_ct/ct.nii.gz")
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


if not os.path.isdir(os.path.join(args.data, "hn_phantom_ct", args.dicom)):
    sys.exit(f"real data not found: no folder hn_phantom_ct/{args.dicom} in {args.data}")


def helper(*a):
    r = subprocess.run([args.helper, *map(str, a)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"helper {a[0]} failed: {r.stderr}")
    return r.stdout


def read(path):
    prefix = os.path.join(args.workdir, "dump")
    for ext in (".txt", ".raw"):  # the previous read's dump must not stand in for this one
        if os.path.exists(prefix + ext):
            os.remove(prefix + ext)
    helper("read", path, prefix)
    with open(prefix + ".txt") as f:
        lines = f.read().split("\n")
    nx, ny, nz = (int(v) for v in lines[0].split())
    aff = np.array([[float(v) for v in lines[2 + r].split()] for r in range(4)])
    vox = np.fromfile(prefix + ".raw", dtype=np.float32).reshape(nz, ny, nx).transpose(2, 1, 0)
    return vox, aff


# ---- phantom DICOM vs pydicom ----
dcm = os.path.join(args.data, "hn_phantom_ct", args.dicom)
n_slices = args.slices
want, ras, dss = dicomgen.read_back(dcm)
vox, aff = read(dcm)
check(vox.shape == (512, 512, n_slices), f"phantom shape {vox.shape}")
check(np.array_equal(vox, want.astype(np.float32)), "phantom voxels differ from pydicom")
check(np.allclose(aff, ras, atol=1e-6), f"phantom affine\n{aff}\nvs pydicom\n{ras}")
r = subprocess.run([args.cbctiq, "info", "--json", dcm], capture_output=True, text=True)
info = json.loads(r.stdout)
d = info["dicom"]
check(d["manufacturer"] == str(dss[0].Manufacturer) and d["modality"] == "CT" and
      d["n_slices"] == n_slices and d["series_uid"] == str(dss[0].SeriesInstanceUID) and
      d["transfer_syntax_uid"] == "1.2.840.10008.1.2" and
      d["rescale_intercept"] == float(dss[0].RescaleIntercept), f"phantom metadata {d}")
check(info["orientation"] == "LPS", f"phantom orientation {info['orientation']}")
print(f"ok  phantom DICOM = pydicom ({info['dims']}, {d['manufacturer']} {d['model']}, "
      f"{d['transfer_syntax']})")


def check_phantom_nifti(vox, aff):
    """The 2x2 average of the DICOM slices (voxels vox, affine aff) equals
    ct.nii.gz, the full set's own conversion of the whole series."""
    ct = nib.load(os.path.join(args.data, "hn_phantom_ct", "ct.nii.gz"))
    ctd = ct.get_fdata()
    avg = vox.astype(np.float64).reshape(256, 2, 256, 2, vox.shape[2]).mean(axis=(1, 3))
    ks = []
    for k in range(vox.shape[2]):
        z = (aff @ [0, 0, k, 1])[2]
        kk = (np.linalg.inv(ct.affine) @ [0, 0, z, 1])[2]
        ks.append(kk)
    ks = np.array(ks)
    check(np.allclose(ks, np.rint(ks), atol=1e-3), f"slice z positions not on ct.nii.gz slices: {ks}")
    ks = np.rint(ks).astype(int)
    diff = np.abs(ctd[:, :, ks] - avg)
    check(diff.max() <= 0.5 + 1e-9, f"2x2 average differs from ct.nii.gz by up to {diff.max()}")
    # voxel (i, j) of ct.nii.gz sits at the centre of DICOM block (2i..2i+1, 2j..2j+1)
    centre = aff @ np.array([0.5, 0.5, 0, 1.0])
    check(np.allclose(ct.affine @ np.array([0, 0, ks[0], 1.0]), centre, atol=1e-3),
          "ct.nii.gz voxel centres are not the DICOM block centres")
    print(f"ok  2x2-averaged DICOM = ct.nii.gz slices k={ks[0]}..{ks[-1]} (max |diff| {diff.max()})")
    helper("png", os.path.join(args.data, "hn_phantom_ct", "ct.nii.gz"), "-", 104,
           os.path.join(args.workdir, "phantom_k104.png"))


if args.phantom_nifti:
    check_phantom_nifti(vox, aff)
helper("png", dcm, "-", n_slices // 2, os.path.join(args.workdir, f"phantom_dicom_k{n_slices // 2}.png"))

# ---- OpenKBP: CT, labels, structures ----
kbp = os.path.join(args.data, "openkbp_hn_ct")
with open(os.path.join(kbp, "manifest.csv")) as f:
    rows = list(csv.DictReader(f))
check(len(rows) == args.cases, f"manifest has {len(rows)} rows, expected {args.cases}")
names = json.load(open(os.path.join(kbp, "labels.json")))
values = {"parotid": [int(k) for k, v in names.items() if v.startswith("parotid")],
          "larynx": [int(k) for k, v in names.items() if v == "larynx"],
          "mandible": [int(k) for k, v in names.items() if v == "mandible"]}
for row in rows if len(rows) <= 6 else rows[:4] + rows[-2:]:
    folder = os.path.join(kbp, row["id"])
    img = nib.load(os.path.join(folder, "ct.nii.gz"))
    vox, aff = read(os.path.join(folder, "ct.nii.gz"))
    check(np.array_equal(vox, img.get_fdata().astype(np.float32)), f"{row['id']}: CT voxels")
    check(np.allclose(aff, img.affine, atol=1e-6), f"{row['id']}: CT affine")
    labels = nib.load(os.path.join(folder, "oar_labels.nii.gz")).get_fdata()
    out = helper("structures", os.path.join(folder, "ct.nii.gz"),
                 os.path.join(folder, "oar_labels.nii.gz"), os.path.join(args.workdir, "st"))
    for cat, vals in values.items():
        path = os.path.join(args.workdir, f"st.{cat}.raw")
        m = np.fromfile(path, np.uint8).reshape(128, 128, 128).transpose(2, 1, 0)
        check(np.array_equal(m.astype(bool), np.isin(labels, vals)), f"{row['id']}: {cat} mask")
        os.remove(path)
        rng_key = {"mandible": "mandible_k_range", "larynx": "larynx_k_range"}.get(cat)
        if rng_key and row[rng_key]:
            lo, hi = (int(v) for v in row[rng_key].split("-"))
            ks = np.nonzero(m.any(axis=(0, 1)))[0]
            check(ks.min() == lo and ks.max() == hi,
                  f"{row['id']}: {cat} k range {ks.min()}-{ks.max()} != manifest {lo}-{hi}")
    check("parotid_r + parotid_l" in out or "parotid_l + parotid_r" in out,
          f"{row['id']}: parotid sources {out!r}")
    print(f"ok  {row['id']}: CT = nibabel, parotid/larynx/mandible masks = labels, k ranges = manifest")
row = rows[0]
png = os.path.join(args.workdir, f"{row['id']}_mandible.png")
helper("png", os.path.join(kbp, row["id"], "ct.nii.gz"),
       os.path.join(kbp, row["id"], "oar_labels.nii.gz"), row["preview_mandible_k"], png)
pix = mpimg.imread(png)
check(pix.shape == (256, 256, 3), f"png shape {pix.shape}")
yellow = (pix[:, :, 0] > 0.99) & (pix[:, :, 1] > 0.85) & (pix[:, :, 2] < 0.2)
check(yellow.sum() > 20, "mandible outline missing from the PNG")
print(f"ok  PNGs written to {args.workdir}")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("all real-data checks passed")
