"""info_phi_test.py - patient identifiers stay out of what cbctiq prints and
writes. A pydicom series with PatientName and PatientID: `info` (text and
--json) hides both unless --show-phi; convert's NIfTI, predict's and ae's
CSVs and every command's stdout/stderr hold neither."""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dicomgen  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args()
W = args.workdir
NAME, PID = "Doe^Jane", "PID98765"
PHI = (NAME.encode(), b"Doe", PID.encode())
failures = []

series = os.path.join(W, "series")
pixels = np.random.default_rng(1).integers(-1000, 1000, size=(8, 32, 32)).astype(np.int16)
dicomgen.write_series(series, pixels, [1, 0, 0, 0, 1, 0], [0, 0, 0], (2.0, 2.0), 2.0,
                      extra={"PatientName": NAME, "PatientID": PID})


def run(*cmd, expect_phi=False):
    r = subprocess.run([args.cbctiq, *cmd], capture_output=True, timeout=300)
    if r.returncode != 0:
        failures.append(f"{cmd[0]}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    shown = [p for p in PHI if p in r.stdout or p in r.stderr]
    if expect_phi and len(shown) != len(PHI):
        failures.append(f"{' '.join(cmd[:2])}: patient identifiers not printed: {r.stdout!r}")
    if not expect_phi and shown:
        failures.append(f"{' '.join(cmd[:2])}: printed {shown}")
    return r


r = run("info", series)
if b"patient:      (hidden; --show-phi to print)" not in r.stdout:
    failures.append(f"info: no hidden-patient line in {r.stdout!r}")
r = run("info", "--json", series)
if b'"patient_name": null, "patient_id": null' not in r.stdout:
    failures.append(f"info --json: patient fields not null: {r.stdout!r}")
r = run("info", "--show-phi", series, expect_phi=True)
if f"patient:      {NAME} ({PID})".encode() not in r.stdout:
    failures.append(f"info --show-phi: {r.stdout!r}")
r = run("info", "--json", "--show-phi", series, expect_phi=True)
if f'"patient_name": "{NAME}", "patient_id": "{PID}"'.encode() not in r.stdout:
    failures.append(f"info --json --show-phi: {r.stdout!r}")

# What the other commands write from this series.
out = os.path.join(W, "out")
os.makedirs(out)
run("convert", series, os.path.join(out, "ct.nii"))
model = os.path.join(W, "model")
run("model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "2", "--input", "32", "--quiet",
    "--out", model)
run("predict", "--model", model, "--out", os.path.join(out, "pred.csv"), series)
with open(os.path.join(W, "cohort.csv"), "w") as f:
    f.write("volume_id,path\nv1,series\n")
run("ae", "--model", model, "--cohort", os.path.join(W, "cohort.csv"), "--out",
    os.path.join(out, "ae.csv"), "--threads", "1")
written = sorted(os.listdir(out))
if written != ["ae.csv", "ct.nii", "pred.csv"]:
    failures.append(f"outputs: {written}")
for name in written:
    data = open(os.path.join(out, name), "rb").read()
    if any(p in data for p in PHI):
        failures.append(f"{name} holds a patient identifier")

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
