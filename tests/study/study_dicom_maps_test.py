"""study_dicom_maps_test.py - attrib.save_maps = "dicom" in the study:

- a cohort whose test volumes are DICOM series (written by pydicom from the
  synthetic cohort's NIfTI volumes): the attrib stage writes, beside each
  NIfTI map, attrib/dicom/<volume_id>_<category>/map.dcm, a Parametric Map
  that pydicom reads, whose frames equal the NIfTI map voxel for voxel
  through each frame's own position (the checks of
  tests/attrib/dicom_map_oracle.py), in the series' study;
- --print-config shows the value as "dicom";
- the built-in (NIfTI) cohort is refused when the configuration is read, and
  a cohort with a NIfTI test row at the attrib stage, naming cohort.csv, the
  line and the volume, before any map is written."""
import glob
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
sys.path.insert(0, os.path.join(HERE, "..", "io"))
sys.path.insert(0, os.path.join(HERE, "..", "attrib"))
from test_args import parse_test_args  # noqa: E402
import dicomgen  # noqa: E402
import dicom_map_oracle as oracle  # noqa: E402

args = parse_test_args()
work = args.workdir
failures = oracle.failures  # one list: the oracle's checks append to it
check = oracle.check

cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", cohort, "--n", "6",
                "--size", "32", "--slices", "6", "--test", "3", "--val", "1"], check=True)
csv_path = os.path.join(cohort, "cohort.csv")
lines = open(csv_path).read().splitlines()
header = lines[0].split(",")
rows = [dict(zip(header, l.split(","))) for l in lines[1:]]


def nifti_to_dicom(path, folder):
    """The NIfTI volume as a DICOM series on the same grid (LPS, rows = j)."""
    img = nib.load(path)
    a = img.affine
    data = np.asarray(img.dataobj)
    lps = np.diag([-1.0, -1.0, 1.0])
    row_dir = lps @ a[:3, 0] / np.linalg.norm(a[:3, 0])
    col_dir = lps @ a[:3, 1] / np.linalg.norm(a[:3, 1])
    spacing = (np.linalg.norm(a[:3, 1]), np.linalg.norm(a[:3, 0]))
    step = np.linalg.norm(a[:3, 2])
    check(f"{os.path.basename(path)}: slices along the row x column normal",
          np.allclose(np.cross(row_dir, col_dir) * step, lps @ a[:3, 2]))
    pixels = np.rint(np.transpose(data, (2, 1, 0))).astype(np.int16)
    dicomgen.write_series(folder, pixels, list(row_dir) + list(col_dir), lps @ a[:3, 3], spacing, step)


series = {}
for r in rows:
    if r["split"] == "test":
        folder = os.path.join(cohort, "dicom", r["volume_id"])
        nifti_to_dicom(os.path.join(cohort, r["path"]), folder)
        series[r["volume_id"]] = folder


def write_cohort(nifti_test_row):
    """cohort.csv with the test rows on their DICOM series (no mask: the
    structures are not what this test is about), except one left NIfTI."""
    out = [",".join(header)]
    for i, r in enumerate(rows):
        cells = dict(r)
        if r["volume_id"] in series and r["volume_id"] != nifti_test_row:
            cells["path"] = os.path.relpath(series[r["volume_id"]], cohort)
            cells["mask"] = ""
        out.append(",".join(cells[h] for h in header))
    open(csv_path, "w").write("\n".join(out) + "\n")
    return next(i for i, r in enumerate(rows, 2) if r["volume_id"] == nifti_test_row) if nifti_test_row else 0


def study(config, out):
    cfg = os.path.join(work, "s.json")
    json.dump(config, open(cfg, "w"))
    return subprocess.run([args.cbctiq, "study", "--config", cfg, "--out", out, "--threads", "1", "--quiet"],
                          capture_output=True, text=True, timeout=600)


base = {"cohort": {"csv": csv_path},
        "train": {"width": 4, "depth": 2, "input_size": 16, "epochs": 1, "batch": 8},
        "sanity": {"enabled": False}, "attrib": {"save_maps": "dicom"}}

# the configuration: printed as "dicom"; the built-in cohort refused at once
cfg = os.path.join(work, "p.json")
json.dump(base, open(cfg, "w"))
p = subprocess.run([args.cbctiq, "study", "--config", cfg, "--print-config"], capture_output=True, text=True)
check("--print-config shows save_maps dicom", p.returncode == 0 and
      json.loads(p.stdout)["attrib"]["save_maps"] == "dicom", p.stderr.strip())
out0 = os.path.join(work, "builtin")
p = study({"attrib": {"save_maps": "dicom"}}, out0)
check("built-in cohort + dicom: exit 1 before any stage", p.returncode == 1 and "simulated cohort" in p.stderr
      and not os.path.exists(os.path.join(out0, "cohort")), p.stderr.strip())

# DICOM test volumes: the maps
write_cohort(None)
out = os.path.join(work, "study")
p = study(base, out)
check("study with DICOM test volumes: exit 0", p.returncode == 0, p.stderr.strip()[-400:])
cats = ["parotid", "submandibular", "larynx", "mandible", "overall"]
if p.returncode == 0:
    for vid, folder in sorted(series.items()):
        src = [pydicom.dcmread(f) for f in sorted(glob.glob(os.path.join(folder, "*.dcm")))]
        for cat in cats:
            pm = os.path.join(out, "attrib", "dicom", f"{vid}_{cat}", "map.dcm")
            nii = os.path.join(out, "attrib", "maps", f"{vid}_{cat}.nii.gz")
            if not os.path.exists(pm):
                check(f"{vid} {cat}: map.dcm written", False)
                continue
            if cat == "overall":  # one full set of checks per volume; the rest: values
                oracle.check_parametric_map(f"{vid} {cat}", pm, nii, src, [cat])
            else:
                frames = pydicom.dcmread(pm).pixel_array.astype(np.float64)
                vol = np.asarray(nib.load(nii).dataobj, np.float64)
                check(f"{vid} {cat}: frames = NIfTI map (same grid, slices in order)",
                      np.allclose(frames, np.transpose(vol, (2, 1, 0)), rtol=1e-6, atol=0))

# a NIfTI test row: refused at the attrib stage, naming the file, line and volume
nifti_vid = sorted(series)[0]
line = write_cohort(nifti_vid)
out2 = os.path.join(work, "study_nifti")
p = study(base, out2)
check("a NIfTI test row: exit 1 naming cohort.csv:line and the volume",
      p.returncode == 1 and f"line {line}" in p.stderr and nifti_vid in p.stderr and "cohort.csv" in p.stderr,
      p.stderr.strip()[-300:])
check("... before any map", not glob.glob(os.path.join(out2, "attrib", "*", "*")))

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
