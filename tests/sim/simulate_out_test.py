"""simulate_out_test.py - `simulate --out DIR` never writes over a folder
that holds something: a non-empty folder (a user's file, or an earlier
cohort) is refused with exit 1 and a message naming it, and left exactly as
it was; --force writes the cohort there and keeps the other files; an empty
existing folder is used as is."""
import os
import subprocess
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args()
SMALL = ["--volumes", "1", "--size", "32", "--slices", "24", "--spacing", "4", "--raters", "1",
         "--test", "0", "--seed", "1", "--threads", "1", "--quiet"]
failures = []


def simulate(out, *extra):
    r = subprocess.run([args.cbctiq, "simulate", "--out", out, *SMALL, *extra], capture_output=True,
                       text=True, timeout=120)
    if "Sanitizer" in r.stderr or "runtime error" in r.stderr:
        failures.append(f"sanitizer report: {r.stderr}")
    return r


def snapshot(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


# A user's folder: refused, untouched.
user = os.path.join(args.workdir, "user")
os.makedirs(user)
open(os.path.join(user, "notes.txt"), "w").write("my notes\n")
r = simulate(user)
if r.returncode != 1:
    failures.append(f"non-empty folder: exit {r.returncode}, expected 1")
for part in (user, "--out folder is not empty", "notes.txt", "--force"):
    if part not in r.stderr:
        failures.append(f"non-empty folder: message {r.stderr!r} lacks {part!r}")
if snapshot(user) != {"notes.txt": b"my notes\n"}:
    failures.append(f"non-empty folder changed: {sorted(os.listdir(user))}")

# An earlier cohort: refused, its files keep their bytes.
cohort = os.path.join(args.workdir, "cohort")
if simulate(cohort).returncode != 0:
    failures.append("first cohort not written")
before = snapshot(cohort)
r = simulate(cohort, "--seed", "2")
if r.returncode != 1 or "--out folder is not empty" not in r.stderr:
    failures.append(f"second cohort over the first: exit {r.returncode}, {r.stderr!r}")
if snapshot(cohort) != before:
    failures.append("the first cohort was overwritten")

# --force: written, the user's file kept.
r = simulate(user, "--force")
if r.returncode != 0:
    failures.append(f"--force: exit {r.returncode}: {r.stderr}")
elif not os.path.exists(os.path.join(user, "cohort.csv")) or \
        open(os.path.join(user, "notes.txt")).read() != "my notes\n":
    failures.append(f"--force: folder holds {sorted(os.listdir(user))}")

# An existing empty folder is fine without --force.
empty = os.path.join(args.workdir, "empty")
os.makedirs(empty)
r = simulate(empty)
if r.returncode != 0 or not os.path.exists(os.path.join(empty, "cohort.csv")):
    failures.append(f"empty folder: exit {r.returncode}: {r.stderr}")

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
