"""pydicom_files_test.py - `cbctiq info` on every file of pydicom's own test
data (Debian's python3-pydicom ships it in pydicom/data/test_files): files
from many writers, transfer syntaxes, and deliberately broken ones.

Each file is copied alone into a folder of its own (cbctiq reads a file's
whole folder as a series, and that folder holds a truncated file), then:
- it must be read (exit 0) or refused (exit 1 or 2), never a signal, and
  stderr must hold no sanitizer report;
- pydicom_files_expected.txt gives the outcome of every file: `ok`, or a
  fragment of the refusal message that names the real reason; a refusal
  must also name the file. A file missing from the list, or a listed file
  that is not there, fails the test (the list must follow pydicom's data);
- a file that is read must give pydicom's voxels (pixel_array masked to
  BitsStored, through the modality LUT) wherever pydicom itself can decode
  it without optional plugins.
pydicom is required: without it the test fails, it does not skip."""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np

try:
    import pydicom
    import pydicom.data
except ImportError:
    sys.exit("FAIL: pydicom is not installed (Debian: python3-pydicom, see scripts/deps.sh)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dicomgen  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--helper", required=True, help="io_dump")
ap.add_argument("--expected", required=True)
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)

data = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")
if not os.path.isdir(data):
    sys.exit(f"FAIL: pydicom {pydicom.__version__} has no test_files folder at {data}")
files = sorted(os.path.relpath(os.path.join(d, f), data) for d, _, fs in os.walk(data) for f in fs)

expected = {}
for line in open(args.expected):
    if line.strip() and not line.startswith("#"):
        name, outcome = (s.strip() for s in line.split("|", 1))
        expected[name] = outcome

failures = []


def fail(name, what):
    failures.append(name)
    print(f"FAIL {name}: {what}")


def read_voxels(path):
    prefix = os.path.join(args.workdir, "dump")
    r = subprocess.run([args.helper, "read", path, prefix], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    with open(prefix + ".txt") as f:
        nx, ny, nz = (int(v) for v in f.readline().split())
    return np.fromfile(prefix + ".raw", dtype=np.float32).reshape(nz, ny, nx).transpose(2, 1, 0)


def compare_with_pydicom(name, path):
    """True when compared, False when pydicom cannot decode the file itself."""
    ds = pydicom.dcmread(path)
    try:
        want = dicomgen._to_hu(ds)  # masked to BitsStored, modality LUT, padding as air
    except Exception as e:  # e.g. JPEG-LS needs a plugin pydicom does not have here
        print(f"     {name}: pydicom cannot decode it ({str(e)[:60]}...): not compared")
        return False
    got = read_voxels(path)
    want = want.T[:, :, None]  # [row, col] -> [i=col, j=row, k]
    if got is None or got.shape != want.shape:
        fail(name, f"voxels: shape {None if got is None else got.shape} != pydicom {want.shape}")
    elif not np.array_equal(got.astype(np.float64), want.astype(np.float32).astype(np.float64)):
        fail(name, f"voxels differ from pydicom by up to {np.abs(got - want).max()}")
    return True


n_read = n_refused = n_compared = 0
for i, name in enumerate(files):
    if name not in expected:
        fail(name, "not in the expected-outcome list")
        continue
    folder = os.path.join(args.workdir, "files", str(i))
    os.makedirs(folder)
    path = os.path.join(folder, os.path.basename(name))
    shutil.copyfile(os.path.join(data, name), path)
    r = subprocess.run([args.cbctiq, "info", path], capture_output=True, text=True, timeout=120)
    want = expected[name]
    if "Sanitizer" in r.stderr or "runtime error" in r.stderr:
        fail(name, f"sanitizer report:\n{r.stderr[-2000:]}")
    elif want == "ok":
        if r.returncode != 0:
            fail(name, f"refused (exit {r.returncode}), expected to be read: {r.stderr.strip()}")
        else:
            n_read += 1
            n_compared += compare_with_pydicom(name, path)
    elif r.returncode not in (1, 2):
        fail(name, f"exit status {r.returncode}, expected a refusal containing '{want}'")
    elif want not in r.stderr or os.path.basename(name) not in r.stderr:
        fail(name, f"message does not say '{want}' and name the file: {r.stderr.strip()[:400]}")
    else:
        n_refused += 1
for name in sorted(set(expected) - set(files)):
    fail(name, "listed but not in pydicom's test files")

print(f"pydicom {pydicom.__version__}: {len(files)} files, {n_read} read ({n_compared} compared "
      f"with pydicom's voxels), {n_refused} refused with the expected reason")
if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
