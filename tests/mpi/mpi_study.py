#!/usr/bin/env python3
"""`mpirun -np N cbctiq study` (docs/cluster.md).

A small simulated study with cohort.folds = 2 (two trainings, and the
permuted-labels control of the sanity stage):

- on 2 ranks every training runs on a rank of its own, so the study equals
  the one-process study bit for bit: stats.json, the models, every file
  of the stages cohort, consensus, evaluate (shared volumes), attrib
  (shared volumes: maps, ae.csv, profiles, curves), stats and atypical,
  the cascade rows of sanity.csv and the printed verdict and table (the permuted-labels model is trained data-parallel over both
  ranks: its rows agree to 0.05 in rho); each stage line is printed once
  (rank 0 alone prints) and each stage folder stamped;
- on 3 ranks fold 1 trains data-parallel on ranks 0 and 1 (its weights
  agree with one process's to rounding, which training amplifies, so
  stats.json has the same keys, not the same bits) and fold 2 alone on rank
  2 (one process's model, bit for bit);
- a rank that fails (rank 1's config asks for a grid too small for its
  share of the simulated volumes) stops the job non-zero with its message;
- rank 1 killed with SIGKILL during the training stage: the job exits
  non-zero within seconds, and a rerun on 2 ranks resumes from the cache
  (cohort and consensus up to date) and ends with the one-process stats.json.

usage: mpi_study.py --cbctiq BIN --mpirun MPIRUN --workdir DIR
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpi_job  # noqa: E402

args = mpi_job.parse_args()
W = args.workdir
run = mpi_job.runner(args)
failures = []
MPI = [args.mpirun, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]

config = {"cohort": {"folds": 2, "simulate": {"volumes": 12, "size": 32, "slices": 24, "spacing": 4,
                                               "test": 3, "raters": 3}},
          "train": {"width": 4, "depth": 2, "input_size": 32, "epochs": 40, "batch": 8, "patience": 0},
          "stats": {"bootstrap": 200, "permutations": 200},
          "sanity": {"max_slices": 2, "methods": "gradcam"}}
cfg_path = os.path.join(W, "study.json")
with open(cfg_path, "w") as f:
    json.dump(config, f)
STAGES = ["cohort", "consensus", "train", "evaluate", "attrib", "stats", "atypical", "sanity", "report"]


def study(ranks, out, **kw):
    return run(ranks, "study", "--config", cfg_path, "--out", os.path.join(W, out), "--threads", "1", **kw)


def read(*parts):
    with open(os.path.join(W, *parts), "rb") as f:
        return f.read()


def numbers(a, b, path=""):
    """(worst absolute difference, structure differs) between two JSON values."""
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return 0.0, True
        res = [numbers(a[k], b[k], f"{path}/{k}") for k in a]
        return max([0.0] + [r[0] for r in res]), any(r[1] for r in res)
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return 0.0, True
        res = [numbers(x, y) for x, y in zip(a, b)]
        return max([0.0] + [r[0] for r in res]), any(r[1] for r in res)
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        if not isinstance(b, (int, float)) or isinstance(b, bool):
            return 0.0, True
        return abs(a - b), False
    return 0.0, a != b


def stamped(stage_dir):
    """The stage's stamp is written (a stage that started and did not finish
    has its "running" mark instead)."""
    path = os.path.join(stage_dir, "stage.done")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return "running" not in f.read().splitlines()


def sanity_rows(out, permuted):
    rows = read(out, "sanity", "sanity.csv").decode().splitlines()
    return [r for r in rows[1:] if ("permuted" in r) == permuted]


alone = study(0, "one")
SAME = [("stats", "stats.json"), ("attrib", "ae.csv"), ("evaluate", "pred.csv"),
        ("train", "fold1", "model", "weights.safetensors"), ("train", "fold2", "model", "weights.safetensors")]



def stage_files(out, stage):
    """Every file a stage wrote but its stamp, relative to the study folder."""
    top = os.path.join(W, out)
    return sorted(os.path.relpath(os.path.join(d, n), top) for d, _, names in os.walk(os.path.join(top, stage))
                  for n in names if n != "stage.done")


two = study(2, "two")
for parts in SAME:
    if read("one", *parts) != read("two", *parts):
        failures.append(f"2 ranks: {'/'.join(parts)} differs from one process")
# Every file of the stages without a training (the simulated volumes, the
# maps, the tables), byte for byte.
compared = 0
for stage in ("cohort", "consensus", "evaluate", "attrib", "stats", "atypical"):
    names = stage_files("one", stage)
    if names != stage_files("two", stage):
        failures.append(f"2 ranks: {stage} wrote {stage_files('two', stage)}, one process {names}")
        continue
    differ = [n for n in names if read("one", n) != read("two", n)]
    compared += len(names)
    if differ:
        failures.append(f"2 ranks: {differ} differ from one process")
if sanity_rows("one", False) != sanity_rows("two", False) or not sanity_rows("one", False):
    failures.append("2 ranks: the cascade rows of sanity.csv differ from one process")
perm_one, perm_two = sanity_rows("one", True), sanity_rows("two", True)
if not perm_one or len(perm_one) != len(perm_two):
    failures.append(f"permuted-labels rows: {len(perm_one)} alone, {len(perm_two)} on 2 ranks")
if two.stdout != alone.stdout or "verdict:" not in alone.stdout:
    failures.append(f"2 ranks: the printed verdict and table differ:\n{alone.stdout}\n{two.stdout}")
for i, name in enumerate(STAGES):
    line = f"[{i + 1}/9] {name:<9} running..."
    if two.stderr.count(line) != 1:
        failures.append(f"2 ranks: '{line}' printed {two.stderr.count(line)} times")
    if not stamped(os.path.join(W, "two", name)):
        failures.append(f"2 ranks: stage {name} not stamped")
if not failures:
    print(f"2 ranks: {compared} files of cohort..atypical, the models, the sanity cascade: same bytes as one process")

study(3, "three")
worst, differs = numbers(json.loads(read("one", "stats", "stats.json")),
                         json.loads(read("three", "stats", "stats.json")))
print(f"3 ranks (fold 1 data-parallel): largest difference of a stats.json number from one process {worst:.3g}")
if read("one", *SAME[-1]) != read("three", *SAME[-1]):
    failures.append("3 ranks: fold 2's model, trained alone on rank 2, differs from one process")
keys = [sorted(json.loads(read(d, "stats", "stats.json"))["categories"]) for d in ("one", "three")]
if keys[0] != keys[1] or not keys[0]:
    failures.append(f"3 ranks: stats.json categories {keys[1]}, one process {keys[0]}")

# A rank that fails: rank 1 (its own app context) reads a config whose grid
# leaves the structures of its simulated volumes outside the field of view.
bad_cfg = dict(config, cohort=dict(config["cohort"], simulate=dict(config["cohort"]["simulate"], slices=12)))
bad_path = os.path.join(W, "bad.json")
with open(bad_path, "w") as f:
    json.dump(bad_cfg, f)
broken = os.path.join(W, "broken")
cmd = ["study", "--out", broken, "--threads", "1", "--quiet"]
t0 = time.monotonic()
p = subprocess.run([*MPI, "-np", "1", args.cbctiq, *cmd, "--config", cfg_path, ":",
                    "-np", "1", args.cbctiq, *cmd, "--config", bad_path],
                   capture_output=True, text=True, timeout=300)
took = time.monotonic() - t0
print(f"failing rank: job ended with exit {p.returncode} after {took:.1f} s")
if p.returncode == 0 or "rank 1 of 2" not in p.stderr or "outside the reconstructed field of view" not in p.stderr:
    failures.append(f"failing rank: exit {p.returncode}, message missing:\n{p.stderr}")
if stamped(os.path.join(broken, "cohort")):
    failures.append("failing rank: the cohort stage was stamped")

# Rank 1 killed during the training stage, then a rerun resumes.
killed = os.path.join(W, "killed")
line = ["study", "--config", cfg_path, "--out", killed, "--threads", "1"]
job = subprocess.Popen([*MPI, "-np", "2", args.cbctiq, *line], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
# Rank 1 makes its fold's folder as its training starts.
fold2, victim, t_end = os.path.join(killed, "train", "fold2"), None, time.monotonic() + 120
while job.poll() is None and time.monotonic() < t_end and not os.path.isdir(fold2):
    time.sleep(0.02)
victim = mpi_job.rank_pid(job.pid, 1)
if victim is None or job.poll() is not None:
    job.kill()
    sys.exit(f"killed rank: rank 1 not found while training:\n{job.stderr.read()}")
took = mpi_job.kill_rank_and_wait(job, victim, 1, failures)
if job.returncode == 0 or took > 30:
    failures.append(f"killed rank: exit {job.returncode} after {took:.1f} s")
if stamped(os.path.join(killed, "train")) or not stamped(os.path.join(killed, "consensus")):
    failures.append("killed rank: the train stage was stamped, or consensus was not")
rerun = run(2, *line)
for name in ("cohort", "consensus"):
    if f"{name:<9} up to date (cached)" not in rerun.stderr:
        failures.append(f"rerun: {name} was not taken from the cache:\n{rerun.stderr}")
if "train     running..." not in rerun.stderr:
    failures.append("rerun: the train stage did not run again")
if read("killed", "stats", "stats.json") != read("one", "stats", "stats.json"):
    failures.append("rerun: stats.json differs from one process")
else:
    print("rerun after the kill: resumed from the cache, the one-process stats.json")

if failures:
    sys.exit("FAILED:\n" + "\n".join(failures))
print("ok")
