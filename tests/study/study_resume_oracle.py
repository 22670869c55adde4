"""`cbctiq study` survives kill -9: a run killed (SIGKILL) in the middle of
a stage, then rerun, ends with the same outputs as a run never
interrupted. Same cohort and options as study_e2e_oracle.py (a small
synthetic cohort, tiny net). Kill points: just after the train stage
starts and just after the attrib stage starts (the run is killed as soon
as the stage's "running" line appears on stderr, plus a short delay).
Compared: every file's bytes, except each train_log.csv's `seconds`
column (wall time) and the stamps of the stages that read train_log
(their digests include those seconds); no temporary file may remain.
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


def run(out):
    r = subprocess.run(cmd(out), capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        raise SystemExit("study failed")
    return r.stderr


def run_and_kill(out, marker, delay):
    log = open(os.path.join(work, "killed.log"), "w+")
    p = subprocess.Popen(cmd(out), stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        log.seek(0)
        if marker in log.read():
            time.sleep(delay)
            break
        time.sleep(0.02)
    killed = p.poll() is None
    if killed:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    log.close()
    return killed


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
            out[rel] = hashlib.sha256(data).hexdigest()
    return out


ref = os.path.join(work, "ref")
run(ref)
want = normalised(ref)

for marker, delay in [("] train     running", 0.5), ("] attrib    running", 0.3)]:
    out = os.path.join(work, "killed_" + marker.split()[1])
    killed = run_and_kill(out, marker, delay)
    print(f"kill at '{marker.strip()}' + {delay} s: {'killed' if killed else 'finished first'}")
    stderr = run(out)
    got = normalised(out)
    if got != want:
        diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        failures.append(f"after a kill at '{marker}': files differ: {diff[:10]}")
    if killed and "running" not in stderr:
        failures.append(f"after a kill at '{marker}' the rerun ran nothing")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study resume oracle: all checks passed")
