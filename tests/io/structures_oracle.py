"""structures_oracle.py - structure masks from RTSTRUCT contours and label
volumes against independent computations.

RTSTRUCT: an image series and an RTSTRUCT are written by pydicom; the
expected masks come from matplotlib's Path.contains_points on voxel centres
(one test per contour, combined per slice by XOR = even-odd rule, so an inner
contour is a hole), OR-ed over the ROIs of a category. Planning volumes and
PRVs must not contribute. An RTSTRUCT referencing another series is refused.
Labels: a label volume written by nibabel in another voxel order than the
image (same voxel centres) with a labels.json sidecar; expected masks are
nibabel's reoriented label array compared with the names.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
from matplotlib.path import Path
from nibabel import orientations as ornt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dicomgen  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq")
ap.add_argument("--workdir", required=True)
ap.add_argument("--helper", required=True)
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
rng = np.random.default_rng(3)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def structures(image, masks):
    prefix = os.path.join(args.workdir, "st")
    for f in os.listdir(args.workdir):
        if f.startswith("st.") and f.endswith(".raw"):
            os.remove(os.path.join(args.workdir, f))
    r = subprocess.run([args.helper, "structures", image, masks, prefix], capture_output=True,
                       text=True)
    return r, prefix


def load_mask(prefix, cat, shape):
    path = f"{prefix}.{cat}.raw"
    if not os.path.exists(path):
        return None
    nx, ny, nz = shape
    return np.fromfile(path, dtype=np.uint8).reshape(nz, ny, nx).transpose(2, 1, 0)


# ---- RTSTRUCT on an axial series (LPS cosines, 2 mm slices) ----
rows, cols, n = 48, 40, 6
series = os.path.join(args.workdir, "ct")
spacing = (1.5, 1.25)  # between rows, between columns
first = np.array([-30.0, -40.0, 50.0])
uids = dicomgen.write_series(series, rng.integers(-1000, 1000, (n, rows, cols)),
                             [1, 0, 0, 0, 1, 0], first, spacing, 2.0, rng=rng)


def lps_contour(k, pts_ij):
    """(col, row) voxel coordinates on slice k -> LPS mm points."""
    pts = np.asarray(pts_ij, float)
    x = first[0] + pts[:, 0] * spacing[1]
    y = first[1] + pts[:, 1] * spacing[0]
    return np.stack([x, y, np.full(len(pts), first[2] + 2.0 * k)], 1)


square_outer = [(4.3, 5.2), (20.7, 5.2), (20.7, 22.6), (4.3, 22.6)]
square_hole = [(9.4, 10.3), (15.6, 10.3), (15.6, 17.4), (9.4, 17.4)]
concave = [(25.2, 30.1), (36.6, 30.1), (36.6, 44.3), (31.4, 44.3), (31.4, 35.7), (25.2, 35.7)]
tri = [(5.5, 30.5), (18.2, 41.7), (3.1, 44.9)]
rois = [
    (1, "Parotid_L", [lps_contour(2, square_outer), lps_contour(2, square_hole),
                      lps_contour(3, square_outer)]),
    (2, "Parotid_R", [lps_contour(2, concave)]),
    (3, "Glnd_Submand_R", [lps_contour(4, tri)]),
    (4, "Bone_Mandible", [lps_contour(1, concave), lps_contour(1, square_outer)]),
    (5, "PTV_70", [lps_contour(2, [(0.5, 0.5), (39.5, 0.5), (39.5, 47.5), (0.5, 47.5)])]),
    (6, "Parotid_L_PRV03", [lps_contour(3, concave)]),
]
rt = os.path.join(args.workdir, "rtstruct.dcm")
dicomgen.write_rtstruct(rt, uids["series_uid"], uids["frame_uid"], rois)

jj, ii = np.mgrid[0:rows, 0:cols]
centres = np.stack([ii.ravel(), jj.ravel()], 1).astype(float)


def expected(names):
    m = np.zeros((cols, rows, n), bool)
    for _, name, contours in rois:
        if name not in names:
            continue
        per_roi = np.zeros_like(m)
        for c in contours:
            k = int(round((c[0, 2] - first[2]) / 2.0))
            ij = np.stack([(c[:, 0] - first[0]) / spacing[1], (c[:, 1] - first[1]) / spacing[0]], 1)
            inside = Path(ij).contains_points(centres).reshape(rows, cols).T
            per_roi[:, :, k] ^= inside
        m |= per_roi
    return m


r, prefix = structures(series, rt)
check(r.returncode == 0, f"rtstruct: {r.stderr}")
want = {"parotid": ["Parotid_L", "Parotid_R"], "submandibular": ["Glnd_Submand_R"],
        "mandible": ["Bone_Mandible"]}
for cat, names in want.items():
    got = load_mask(prefix, cat, (cols, rows, n))
    exp = expected(names)
    check(got is not None and np.array_equal(got.astype(bool), exp),
          f"rtstruct {cat}: {0 if got is None else int((got.astype(bool) != exp).sum())} "
          f"voxels differ from matplotlib (of {int(exp.sum())})")
check(load_mask(prefix, "larynx", (cols, rows, n)) is None, "larynx must be absent")
check("PTV" not in r.stdout and "PRV" not in r.stdout, f"derived structures used: {r.stdout}")
check(expected(["Parotid_L"])[:, :, 2][12, 14] == 0, "the hole must be empty (test design)")
print("ok  RTSTRUCT rasterisation (hole, concave, union) = matplotlib even-odd")

# An RTSTRUCT drawn on another series is an error naming the file.
rt_other = os.path.join(args.workdir, "rtstruct_other.dcm")
dicomgen.write_rtstruct(rt_other, "1.2.3.4.5.6.7", uids["frame_uid"], rois[:1])
r, _ = structures(series, rt_other)
check(r.returncode != 0 and "rtstruct_other.dcm" in r.stderr and "1.2.3.4.5.6.7" in r.stderr,
      f"other-series RTSTRUCT must be refused: {r.stderr!r}")
rt_frame = os.path.join(args.workdir, "rtstruct_frame.dcm")
dicomgen.write_rtstruct(rt_frame, uids["series_uid"], "1.2.3.9", rois[:1])
r, _ = structures(series, rt_frame)
check(r.returncode != 0 and "frame of reference" in r.stderr, f"frame mismatch: {r.stderr!r}")
print("ok  RTSTRUCT reference checks")

# ---- label volume in another voxel order than the image ----
img_aff = np.diag([-1.5, -1.5, 2.5, 1.0])
img_aff[:3, 3] = [40, 50, -20]
shape = (20, 18, 7)
image = os.path.join(args.workdir, "img.nii.gz")
nib.save(nib.Nifti1Image(rng.integers(-1000, 1000, shape).astype(np.int16), img_aff), image)
labels_canon = rng.integers(0, 9, shape).astype(np.uint8)
flip = ornt.ornt_transform(ornt.io_orientation(img_aff), ornt.axcodes2ornt(("R", "A", "I")))
lab_img = nib.Nifti1Image(labels_canon, img_aff).as_reoriented(flip)
os.makedirs(os.path.join(args.workdir, "lab", "pt1"))
label_path = os.path.join(args.workdir, "lab", "pt1", "labels.nii.gz")
nib.save(lab_img, label_path)
names = {"1": "brainstem", "3": "parotid_r", "4": "parotid_l", "6": "larynx", "7": "mandible",
         "8": "PTV_mandible"}
with open(os.path.join(args.workdir, "lab", "labels.json"), "w") as f:  # parent folder sidecar
    json.dump(names, f)
r, prefix = structures(image, label_path)
check(r.returncode == 0, f"labels: {r.stderr}")
for cat, values in {"parotid": [3, 4], "larynx": [6], "mandible": [7]}.items():
    got = load_mask(prefix, cat, shape)
    exp = np.isin(labels_canon, values)
    check(got is not None and np.array_equal(got.astype(bool), exp), f"labels {cat}")
check(load_mask(prefix, "submandibular", shape) is None, "no submandibular label")
print("ok  label volume (reoriented grid, parent labels.json)")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("all structure oracle checks passed")
