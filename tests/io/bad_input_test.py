"""bad_input_test.py - every bad input under tests/bad/io (static NIfTI files,
DICOM cases written by make_bad_dicom.py, and a FIFO and a folder made here)
through `cbctiq info` and
`cbctiq convert`: the exit status the listing gives (never a signal), the
expected message fragment and the file's name on stderr, no sanitizer
report, and no output file (nor temporary) left behind."""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from cli_check import bad_input_exit, run_problems  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--bad", required=True)
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
gen = os.path.join(args.workdir, "dicom")
subprocess.run([sys.executable, os.path.join(args.bad, "make_bad_dicom.py"), gen], check=True)
failures = []


def cases(listing, base):
    path = os.path.join(args.bad, listing)
    for number, line in enumerate(open(path), 1):
        if line.strip() and not line.startswith("#"):
            fields = [s.strip() for s in line.split("|", 2)]
            if len(fields) != 3:
                sys.exit(f"{path}:{number}: expected 'file | exit | message fragment'")
            name, code, fragment = fields
            yield os.path.join(base, name), name, bad_input_exit(code, f"{path}:{number}"), fragment


# Paths that are not regular files (git cannot hold them): a reader that
# opened them would wait forever for a writer, or read a folder as a file.
special = os.path.join(args.workdir, "special")
os.makedirs(special)
SPECIAL = (("fifo.nii.gz", os.mkfifo, "is a FIFO (named pipe); expected a volume file"),
           ("fifo_series", os.mkfifo, "is a FIFO (named pipe); expected a volume file or a DICOM series folder"),
           ("folder.nii", os.mkdir, "is a folder; expected a volume file"))
special_cases = []
for name, make, fragment in SPECIAL:
    make(os.path.join(special, name))
    special_cases.append((os.path.join(special, name), name, 1, fragment))

outdir = os.path.join(args.workdir, "out")
n = 0
for path, name, code, fragment in [*cases("expected.txt", args.bad), *cases("expected_dicom.txt", gen),
                                   *special_cases]:
    for cmd in (["info", path], ["convert", path, os.path.join(outdir, "x.nii.gz")]):
        os.makedirs(outdir, exist_ok=True)
        try:
            r = subprocess.run([args.cbctiq, *cmd], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            failures.append(name)
            print(f"FAIL {cmd[0]} {name}: still running after 60 s")
            n += 1
            shutil.rmtree(outdir)
            continue
        problems = run_problems(r, code, stderr=[fragment])
        if os.path.basename(name) not in r.stderr:
            problems.append("message does not name the file")
        if os.listdir(outdir):
            problems.append(f"left output: {os.listdir(outdir)}")
        if problems:
            failures.append(name)
            print(f"FAIL {cmd[0]} {name}: {', '.join(problems)}\n  stderr: {r.stderr.strip()[:600]}")
        n += 1
        shutil.rmtree(outdir)
if failures:
    print(f"{len(failures)} of {n} runs failed")
    sys.exit(1)
print(f"all {n} bad-input runs gave a clear error")
