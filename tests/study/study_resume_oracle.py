"""`cbctiq study` survives kill -9: a run killed (SIGKILL) in the middle of
a stage, then rerun, ends with the same outputs as a run never
interrupted. Same cohort and options as study_e2e_oracle.py (a small
synthetic cohort, tiny net). Kill points, found by watching the stage's
folder (not by timing, which a loaded machine upsets): in the train stage
once its train_log.csv is being written (training has begun), and in the
sanity stage once its permuted-labels model is saved (the cascade of map
comparisons, most of the stage, is still to come). The kill must have
landed inside that stage: the run had not printed the stage's "done" line
nor "study complete", and the stage's stage.done is the "running" marker. The rerun must rerun that stage (and the ones after it)
and take every earlier stage from the cache.
Compared: every file's bytes, except each train_log.csv's `seconds`
column (wall time), the stamps of the stages that read train_log (their
digests include those seconds) and cbctiq-study.lock (the PID of the last
run); no temporary file may remain.
"""
import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
args = ap.parse_args()
failures = []

work = args.workdir
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", cohort, "--n", "20",
                "--size", "48", "--slices", "16", "--test", "6", "--val", "2"], check=True)
config = {"cohort": {"csv": "cohort/cohort.csv"},
          "train": {"width": 8, "depth": 2, "input_size": 32, "epochs": 8, "batch": 8,
                    "lr": 0.003, "patience": 0, "hu_min": -500, "hu_max": 500},
          "stats": {"bootstrap": 200, "permutations": 500}}
cfg_path = os.path.join(work, "study.json")
with open(cfg_path, "w") as f:
    json.dump(config, f)


def cmd(out):
    return [args.cbctiq, "study", "--config", cfg_path, "--out", out, "--threads", "2"]


STAGES = ["cohort", "consensus", "train", "evaluate", "attrib", "stats", "atypical", "sanity", "report"]


def line(stage, what):
    return f"] {stage:<9} {what}"


def run(out):
    r = subprocess.run(cmd(out), capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        raise SystemExit("study failed")
    return r.stderr


def run_and_kill(out, stage, ready):
    """Starts a run and SIGKILLs it as soon as `stage` runs and ready(stage folder)
    holds; returns its stderr."""
    log_path = os.path.join(work, f"killed_{stage}.log")
    stage_dir = os.path.join(out, stage)
    with open(log_path, "w+") as log:
        p = subprocess.Popen(cmd(out), stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 600
        while time.time() < deadline and p.poll() is None:
            if line(stage, "running") in open(log_path).read() and ready(stage_dir):
                break
            time.sleep(0.005)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
    return open(log_path).read()


def training_log_open(d):
    return os.path.isdir(d) and any(f.startswith(".train_log.csv.tmp") for f in os.listdir(d))


def permuted_model_saved(d):
    return os.path.exists(os.path.join(d, "permuted_model", "model.json"))


def normalised(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            rel = os.path.relpath(path, root)
            if f.startswith(".") or ".tmp" in f:
                failures.append(f"temporary file left: {rel}")
            with open(path, "rb") as fh:
                data = fh.read()
            if f == "train_log.csv":
                rows = list(csv.reader(io.StringIO(data.decode())))
                col = rows[0].index("seconds")
                data = "\n".join(",".join(r[:col] + r[col + 1:]) for r in rows).encode()
            if f == "stage.done" and rel.split(os.sep)[0] != "cohort" and rel.split(os.sep)[0] != "consensus":
                data = b"(depends on wall-clock seconds in train_log.csv)"
            if rel == "cbctiq-study.lock":
                data = b"(the PID of the last run)"
            out[rel] = hashlib.sha256(data).hexdigest()
    return out


ref = os.path.join(work, "ref")
run(ref)
want = normalised(ref)

for stage, ready in (("train", training_log_open), ("sanity", permuted_model_saved)):
    out = os.path.join(work, "killed_" + stage)
    log = run_and_kill(out, stage, ready)
    print(f"killed in '{stage}' when {ready.__name__}")
    if line(stage, "running") not in log or line(stage, "done") in log or "study complete" in log:
        failures.append(f"the kill did not land inside '{stage}': {log[-300:]!r}")
        continue
    stamp = open(os.path.join(out, stage, "stage.done")).read()
    if stamp != "cbctiq-stage 2\nrunning\n":
        failures.append(f"{stage}/stage.done after the kill is {stamp[:60]!r}, want the running marker")
    stderr = run(out)
    k = STAGES.index(stage)
    for s in STAGES[:k]:
        if line(s, "up to date (cached)") not in stderr:
            failures.append(f"after a kill in '{stage}' the finished stage '{s}' did not come from the cache")
    for s in STAGES[k:]:
        if line(s, "running") not in stderr:
            failures.append(f"after a kill in '{stage}' the rerun did not run '{s}'")
    got = normalised(out)
    if got != want:
        diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        failures.append(f"after a kill in '{stage}': files differ: {diff[:10]}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study resume oracle: all checks passed")
