"""study_escape_test.py - a cohort whose volume id would lead out of the
study folder (`../../../escape`: the attrib stage writes maps/<id>_<category>
.nii.gz) makes `cbctiq study` fail before any stage runs, with a message
naming cohort.csv, the line and the id; nothing outside --out is created or
changed (a file already lying where the map would land keeps its bytes)."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args()
work = args.workdir
failures = []

cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", cohort, "--n", "8",
                "--size", "32", "--slices", "8", "--test", "3", "--val", "1"], check=True)
BAD = "../../../escape"
for name in ("cohort.csv", "ratings.csv"):
    path = os.path.join(cohort, name)
    text = open(path).read().replace("v00,", BAD + ",")
    open(path, "w").write(text)
bad_line = next(i for i, l in enumerate(open(os.path.join(cohort, "cohort.csv")), 1) if l.startswith(BAD))

# --out is work/a/b/study; maps/<id>_<category> would resolve to work/a/b/escape_<category>.
out = os.path.join(work, "a", "b", "study")
os.makedirs(os.path.dirname(out))
decoy = os.path.join(work, "a", "b", "escape_overall.nii.gz")
open(decoy, "w").write("a user's file\n")
with open(os.path.join(work, "s.json"), "w") as f:
    json.dump({"cohort": {"csv": os.path.join(cohort, "cohort.csv")},
               "train": {"width": 4, "depth": 2, "input_size": 16, "epochs": 1, "batch": 8},
               "attrib": {"save_maps": True}}, f)


def outside_out():
    files = {}
    for d, _, fs in os.walk(work):
        if os.path.commonpath([d, out]) == out:
            continue
        for f in fs:
            p = os.path.join(d, f)
            files[p] = open(p, "rb").read()
    return files


before = outside_out()
r = subprocess.run([args.cbctiq, "study", "--config", os.path.join(work, "s.json"), "--out", out,
                    "--threads", "1", "--quiet"], capture_output=True, text=True, timeout=600)
if r.returncode != 1:
    failures.append(f"exit {r.returncode}, expected 1")
for part in (f"cohort.csv:{bad_line}", f"volume id '{BAD}' contains '/'"):
    if part not in r.stderr:
        failures.append(f"message {r.stderr.strip()!r} lacks {part!r}")
if "Sanitizer" in r.stderr or "runtime error" in r.stderr:
    failures.append("sanitizer report")
after = outside_out()
if after != before:
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    failures.append(f"files outside --out created or changed: {changed}")
stages = sorted(os.listdir(out)) if os.path.isdir(out) else []
if any(s in stages for s in ("train", "attrib")):
    failures.append(f"stages ran before the cohort was checked: {stages}")

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
