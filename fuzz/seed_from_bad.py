#!/usr/bin/python3
"""seed_from_bad.py BAD_DIR CORPUS_DIR OUT_DIR - turns the bad inputs of the
test suite (tests/bad: the committed files and what its make_bad*.py write)
into fuzzing seeds, OUT_DIR/<target>/<name>, one folder per fuzz target that
reads that kind of file. These inputs sit on the edges the readers check, so
mutations of them reach the error paths sooner than mutations of good files.

  nifti        tests/bad/io/*.nii, *.nii.gz
  dicom        every file make_bad_dicom.py writes (each series' slices)
  rtstruct     its RTSTRUCT and its single damaged .dcm files
  safetensors  weights.safetensors of each broken model of tests/bad/model
  model_json   model.json of each broken model (from fuzz/corpus's iqnet_tiny)
  csv          tests/bad/stats/*.csv
  ratings      each consensus/agreement case: ratings, NUL, raters
  correlate    each correlate case: ae table, NUL, consensus table
cohort and study_config have no bad inputs in tests/bad yet. Seeds are
written by content (identical inputs once), so the set is the same on every
run for the same tests/bad."""
import hashlib
import itertools
import os
import runpy
import shutil
import subprocess
import sys
import tempfile


def add(out, target, name, data):
    """Writes data as OUT/target/bad_<name>, unless that folder already holds it."""
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()
    if any(hashlib.sha1(read(os.path.join(folder, f))).hexdigest() == digest for f in os.listdir(folder)):
        return
    with open(os.path.join(folder, f"bad_{name}"), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def nifti_seeds(bad, out):
    io = os.path.join(bad, "io")
    for name in sorted(os.listdir(io)):
        if name.endswith((".nii", ".nii.gz")):
            add(out, "nifti", name, read(os.path.join(io, name)))


def run_with_numbered_uids(script, *argv):
    """Runs a DICOM-writing script in this process with pydicom's random UIDs
    replaced by numbered ones, so that one tests/bad always gives the same
    seed bytes (and a fuzzing run with one -seed the same inputs)."""
    import pydicom.uid
    number = itertools.count(1)
    pydicom.uid.generate_uid = lambda prefix=pydicom.uid.PYDICOM_ROOT_UID, entropy_srcs=None: \
        f"{prefix or '2.25.'}{next(number)}"
    saved_argv, saved_path = sys.argv, sys.path[:]
    sys.argv = [script, *argv]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def dicom_seeds(bad, out, scratch):
    gen = os.path.join(scratch, "dicom")
    run_with_numbered_uids(os.path.join(bad, "io", "make_bad_dicom.py"), gen)
    for folder, _, files in sorted(os.walk(gen)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            label = os.path.relpath(path, gen).replace(os.sep, "_")
            add(out, "dicom", label, read(path))
            if name.endswith(".dcm") and (folder == gen or label.startswith("rtstruct_only")):
                add(out, "rtstruct", label, read(path))


def model_seeds(bad, corpus, out, scratch):
    good = os.path.join(scratch, "good_model")
    os.makedirs(good)
    shutil.copy(os.path.join(corpus, "model_json", "iqnet_tiny.json"), os.path.join(good, "model.json"))
    shutil.copy(os.path.join(corpus, "safetensors", "iqnet_tiny.safetensors"),
                os.path.join(good, "weights.safetensors"))
    gen = os.path.join(scratch, "model")
    subprocess.run([sys.executable, os.path.join(bad, "model", "make_bad.py"), good, gen], check=True)
    for case in sorted(os.listdir(gen)):
        for name, target in (("model.json", "model_json"), ("weights.safetensors", "safetensors")):
            path = os.path.join(gen, case, name)
            if os.path.exists(path):
                add(out, target, case, read(path))


def stats_seeds(bad, out):
    stats = os.path.join(bad, "stats")
    for name in sorted(os.listdir(stats)):
        if name.endswith(".csv"):
            add(out, "csv", name, read(os.path.join(stats, name)))
    # cases.txt: command | exit | files | file:line | fragment
    for line in open(os.path.join(stats, "cases.txt")):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [s.strip() for s in line.split("|")]
        command, files = fields[0], fields[2].split()
        target = "correlate" if command == "correlate" else "ratings"
        data = b"\0".join(read(os.path.join(stats, f)) for f in files)
        add(out, target, "_".join(os.path.splitext(f)[0] for f in files), data)


def main():
    bad, corpus, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        nifti_seeds(bad, out)
        dicom_seeds(bad, out, scratch)
        model_seeds(bad, corpus, out, scratch)
        stats_seeds(bad, out)
    for target in sorted(os.listdir(out)):
        print(f"{target}: {len(os.listdir(os.path.join(out, target)))} seeds from tests/bad")


if __name__ == "__main__":
    main()
