"""ae_cli_equals_study.py - `cbctiq ae` on a study's own model and cohort
writes the study's attrib/ae.csv byte for byte (one cohort reader, one
model-input path, one ae.csv writer; src/data).

The study (train.slices = structures) runs on a small simulated cohort
(tests/study/make_cohort.py) whose test split also holds the real-data
fixture (tests/data): the two OpenKBP planning CTs with their organ label
volumes, and the three phantom DICOM slices with an RTSTRUCT written here
by pydicom on that series (a "Mandible" contour on two of the slices). Then

    cbctiq ae --model S/train/model --cohort S/cohort/cohort.csv
              --slices structures --split test --out ae.csv

must equal S/attrib/ae.csv byte for byte. Also checked, so that the
equality is not trivially met: the real volumes have their rows, the
structure columns are filled from the label volumes and the RTSTRUCT
(the phantom uses 2 of its 3 slices), and `--slices all` gives other
slice counts.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "io"))
import dicomgen  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--data", default=os.path.join(SRC, "tests", "data"))
args = ap.parse_args()
failures = []


def check(what, ok, detail=""):
    if not ok:
        failures.append(f"{what}: {detail}")


def run(*cmd):
    r = subprocess.run([args.cbctiq, *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit(f"cbctiq {cmd[0]} failed: {r.returncode}")
    return r


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


work = args.workdir
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(SRC, "tests", "study", "make_cohort.py"), "--out", cohort,
                "--n", "14", "--size", "48", "--slices", "16", "--test", "4", "--val", "2", "--ras",
                "--labels-beside-masks"], check=True)

# ---- the phantom's DICOM series with an RTSTRUCT on it -------------------------
dicom_dir = os.path.join(args.data, "hn_phantom_ct", "dicom_mandible_3")
slices = sorted((pydicom.dcmread(os.path.join(dicom_dir, f)) for f in os.listdir(dicom_dir)),
                key=lambda d: float(d.ImagePositionPatient[2]))
first = slices[0]
row_dir = np.array(first.ImageOrientationPatient[:3], float)  # along a row: column index
col_dir = np.array(first.ImageOrientationPatient[3:], float)  # down a column: row index
dr, dc = (float(x) for x in first.PixelSpacing)               # between rows, between columns


def contour(ds, pts_cr):
    """(column, row) pixel coordinates on slice ds -> LPS mm points."""
    ipp = np.array(ds.ImagePositionPatient, float)
    return np.array([ipp + c * dc * row_dir + r * dr * col_dir for c, r in pts_cr])


n_rows, n_cols = int(first.Rows), int(first.Columns)
square = [(n_cols * 0.3, n_rows * 0.55), (n_cols * 0.7, n_rows * 0.55), (n_cols * 0.7, n_rows * 0.8),
          (n_cols * 0.3, n_rows * 0.8)]
rtstruct = os.path.join(work, "phantom_rtstruct.dcm")
dicomgen.write_rtstruct(rtstruct, first.SeriesInstanceUID, first.FrameOfReferenceUID,
                        [(1, "Mandible", [contour(slices[0], square), contour(slices[1], square)])])

# ---- the study's cohort: simulated volumes + the real fixture in the test split --
rows = read_csv(os.path.join(cohort, "cohort.csv"))
real = [("kbp245", os.path.join(args.data, "openkbp_hn_ct", "openkbp_test_pt_245", "ct.nii.gz"),
         os.path.join(args.data, "openkbp_hn_ct", "openkbp_test_pt_245", "oar_labels.nii.gz"), ""),
        ("kbp132", os.path.join(args.data, "openkbp_hn_ct", "openkbp_train_pt_132", "ct.nii.gz"),
         os.path.join(args.data, "openkbp_hn_ct", "openkbp_train_pt_132", "oar_labels.nii.gz"), ""),
        ("phantom", dicom_dir, "", rtstruct)]
with open(os.path.join(cohort, "cohort.csv"), "w") as f:
    f.write("volume_id,path,mask,rtstruct,split\n")
    for r in rows:
        f.write(f"{r['volume_id']},{r['path']},{r['mask']},,{r['split']}\n")
    for vid, path, mask, rt in real:
        f.write(f"{vid},{path},{mask},{rt},test\n")
raters = [r["rater"] for r in read_csv(os.path.join(cohort, "raters.csv"))]
cats = sorted({r["category"] for r in read_csv(os.path.join(cohort, "ratings.csv"))})
rng = np.random.default_rng(3)
with open(os.path.join(cohort, "ratings.csv"), "a") as f:
    for vid, *_ in real:
        for rater in raters:
            for cat in cats:
                f.write(f"{vid},{rater},{cat},{int(rng.integers(1, 6))}\n")

config = {"cohort": {"csv": "cohort/cohort.csv"},
          "train": {"width": 8, "depth": 2, "input_size": 32, "epochs": 2, "batch": 8, "lr": 0.003,
                    "patience": 0, "hu_min": -500, "hu_max": 500, "slices": "structures"},
          "stats": {"bootstrap": 50, "permutations": 50},
          "sanity": {"enabled": False}}
cfg_path = os.path.join(work, "study.json")
with open(cfg_path, "w") as f:
    json.dump(config, f)
study = os.path.join(work, "out")
run("study", "--config", cfg_path, "--out", study, "--threads", "2", "--quiet")

# ---- the CLI on the study's model and cohort -------------------------------------
model = os.path.join(study, "train", "model")
cohort_csv = os.path.join(study, "cohort", "cohort.csv")
mine = os.path.join(work, "ae.csv")
run("ae", "--model", model, "--cohort", cohort_csv, "--slices", "structures", "--split", "test",
    "--out", mine, "--threads", "2", "--quiet")
want = open(os.path.join(study, "attrib", "ae.csv"), "rb").read()
got = open(mine, "rb").read()
check("cbctiq ae == the study's attrib/ae.csv, byte for byte", got == want,
      f"{len(got)} vs {len(want)} bytes; first difference at byte "
      f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")

# ---- what makes the equality mean something -----------------------------------------
ae = {(r["volume_id"], r["category"]): r for r in read_csv(mine)}
for vid, *_ in real:
    check(f"{vid} has a row per category", all((vid, c) in ae for c in cats), str(sorted(ae)))
for vid in ("kbp245", "kbp132"):
    r = ae.get((vid, "parotid"), {})
    check(f"{vid} parotid: energy inside the labelled parotids", r.get("ae_in_structure", "") != "", str(r))
    check(f"{vid}: structures select fewer than the 128 slices", 0 < int(r.get("n_slices", "0")) < 128,
          r.get("n_slices"))
r = ae.get(("phantom", "mandible"), {})
check("phantom mandible: energy inside the RTSTRUCT contour", r.get("ae_in_structure", "") != "", str(r))
check("phantom: the 2 slices the RTSTRUCT draws on", r.get("n_slices") == "2", r.get("n_slices"))
check("phantom parotid: no such structure -> empty", ae.get(("phantom", "parotid"), {}).get(
    "ae_in_structure") == "", str(ae.get(("phantom", "parotid"))))

every = os.path.join(work, "ae_all.csv")
run("ae", "--model", model, "--cohort", cohort_csv, "--slices", "all", "--split", "test", "--out", every,
    "--threads", "2", "--quiet")
n_all = {(r["volume_id"], r["category"]): r["n_slices"] for r in read_csv(every)}
check("--slices all: every slice of the phantom", n_all.get(("phantom", "mandible")) == "3",
      str(n_all.get(("phantom", "mandible"))))
check("--slices all: every slice of kbp245", n_all.get(("kbp245", "overall")) == "128",
      str(n_all.get(("kbp245", "overall"))))

for f in failures:
    print("FAIL", f)
print("ok" if not failures else f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
