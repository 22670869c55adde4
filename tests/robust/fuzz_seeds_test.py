#!/usr/bin/python3
"""fuzz_seeds_test.py - fuzz/seed_from_bad.py turns tests/bad into fuzzing
seeds: every committed bad NIfTI file and every stats case reaches its
target's seeds, each reader with bad inputs gets some, and two runs write
byte-identical seeds (a fuzzing run with one -seed must start from the same
inputs). Needs no fuzz build."""
import argparse
import os
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--source", required=True, help="the repository root")
ap.add_argument("--workdir", required=True)
a = ap.parse_args()
bad, corpus = os.path.join(a.source, "tests", "bad"), os.path.join(a.source, "fuzz", "corpus")
failures = []


def seeds(name):
    out = os.path.join(a.workdir, name)
    subprocess.run(["rm", "-rf", out], check=True)
    subprocess.run([sys.executable, os.path.join(a.source, "fuzz", "seed_from_bad.py"), bad, corpus, out],
                   check=True, capture_output=True)
    return {t: {f: open(os.path.join(out, t, f), "rb").read() for f in os.listdir(os.path.join(out, t))}
            for t in os.listdir(out)}


first, second = seeds("first"), seeds("second")
if first != second:
    failures.append("two runs wrote different seeds")
for target in ("nifti", "dicom", "rtstruct", "safetensors", "model_json", "csv", "ratings", "correlate"):
    if not first.get(target):
        failures.append(f"no seeds for fuzz_{target}")
nifti = set(first.get("nifti", {}).values())
for name in sorted(os.listdir(os.path.join(bad, "io"))):
    if name.endswith((".nii", ".nii.gz")):
        data = open(os.path.join(bad, "io", name), "rb").read()
        if data not in nifti:
            failures.append(f"tests/bad/io/{name} is not a fuzz_nifti seed")
stats = os.path.join(bad, "stats")
for line in open(os.path.join(stats, "cases.txt")):
    if line.strip() and not line.startswith("#"):
        fields = [s.strip() for s in line.split("|")]
        target = "correlate" if fields[0] == "correlate" else "ratings"
        data = b"\0".join(open(os.path.join(stats, f), "rb").read() for f in fields[2].split())
        if data not in first.get(target, {}).values():
            failures.append(f"stats case '{fields[0]} {fields[2]}' is not a fuzz_{target} seed")
for f in failures:
    print("FAIL:", f)
print(f"{sum(len(v) for v in first.values())} seeds for {len(first)} targets, {len(failures)} failures")
sys.exit(1 if failures else 0)
