#!/usr/bin/env python3
"""cbctiq under mpirun gives the same files as one process (docs/cluster.md).

simulate, predict and ae run once as a plain process and then as 2 and 3 MPI ranks
(3 makes blocks of unequal size); every output file must be byte-identical
to the one-process run's. Then a rank that fails (its volume is missing)
must stop the whole job non-zero within seconds, with its message, leaving
neither ae.csv nor a rank's part file behind, and so must a rank killed
mid-run; a command that does not share
its work is refused under more than one rank.

usage: mpi_same_bytes.py --cbctiq BIN --mpirun MPIRUN --workdir DIR
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpi_job  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--mpirun", required=True)
ap.add_argument("--workdir", required=True)
args = ap.parse_args()
W = args.workdir
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
MPI = [args.mpirun, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
failures = []


def run(ranks, *cmd, expect=0, timeout=300):
    """expect: 0 for success, else the job must fail (exit status not checked: mpirun may remap it)."""
    line = ([*MPI, "-np", str(ranks)] if ranks else []) + [args.cbctiq, *cmd]
    t0 = time.monotonic()
    p = subprocess.run(line, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    if (p.returncode == 0) != (expect == 0):
        sys.exit(f"{' '.join(line)}: exit {p.returncode}, expected {'0' if expect == 0 else 'non-zero'}\n"
                 f"{p.stdout}{p.stderr}")
    return p, took


def same_tree(a, b, what):
    names_a, names_b = sorted(os.listdir(a)), sorted(os.listdir(b))
    if names_a != names_b:
        failures.append(f"{what}: files differ: {names_a} vs {names_b}")
        return
    for n in names_a:
        if not filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False):
            failures.append(f"{what}: {n} differs")
    print(f"{what}: {len(names_a)} files identical")


GRID = ["--size", "32", "--slices", "24", "--spacing", "4", "--raters", "3",
        "--test", "1", "--seed", "7", "--threads", "1", "--preview", "--quiet"]
SIM = ["--volumes", "5", *GRID]
sims = {}
for ranks in (0, 2, 3):
    sims[ranks] = os.path.join(W, f"sim_np{ranks}")
    run(ranks, "simulate", "--out", sims[ranks], *SIM)
same_tree(sims[0], sims[2], "simulate: 1 process vs 2 ranks")
same_tree(sims[0], sims[3], "simulate: 1 process vs 3 ranks")

model = os.path.join(W, "model")
run(0, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "2", "--input", "32", "--seed", "3",
    "--quiet", "--out", model)
cohort = os.path.join(sims[0], "cohort.csv")
aes = {}
for ranks in (0, 2, 3):
    aes[ranks] = os.path.join(W, f"ae_np{ranks}")
    os.makedirs(aes[ranks])
    run(ranks, "ae", "--model", model, "--cohort", cohort, "--out", os.path.join(aes[ranks], "ae.csv"),
        "--profile", os.path.join(aes[ranks], "profile.csv"), "--threads", "1", "--quiet")
same_tree(aes[0], aes[2], "ae: 1 process vs 2 ranks")
same_tree(aes[0], aes[3], "ae: 1 process vs 3 ranks")
with open(os.path.join(aes[0], "ae.csv")) as f:
    rows = sum(1 for _ in f) - 1
if rows != 5 * 5:  # 5 volumes x the model's 5 output categories
    failures.append(f"ae: {rows} rows, expected 25")

vols = sorted(os.path.join(sims[0], n) for n in os.listdir(sims[0])
              if n.endswith(".nii.gz") and "labels" not in n)
preds = {}
for ranks in (0, 2, 3):
    preds[ranks] = os.path.join(W, f"pred_np{ranks}")
    os.makedirs(preds[ranks])
    run(ranks, "predict", "--model", model, "--out", os.path.join(preds[ranks], "pred.csv"), "--per-slice",
        "--threads", "1", "--quiet", *vols)
same_tree(preds[0], preds[2], "predict: 1 process vs 2 ranks")
same_tree(preds[0], preds[3], "predict: 1 process vs 3 ranks")

# The last volume (rank 1's block) is missing: rank 0 finishes its block and
# waits for rank 1 in the gather; rank 1's failure must end the job.
bad = os.path.join(W, "bad")
os.makedirs(bad)
with open(cohort) as f:
    lines = f.read().splitlines()
lines[-1] = lines[-1].replace("sim004.nii.gz", "no_such_volume.nii.gz", 1)
bad_cohort = os.path.join(sims[0], "cohort_missing.csv")
with open(bad_cohort, "w") as f:
    f.write("\n".join(lines) + "\n")
p, took = run(2, "ae", "--model", model, "--cohort", bad_cohort, "--out", os.path.join(bad, "ae.csv"),
              "--threads", "1", "--quiet", expect=1, timeout=120)
print(f"failing rank: job ended with exit {p.returncode} after {took:.1f} s")
if "no_such_volume.nii.gz" not in p.stderr or "rank 1 of 2" not in p.stderr:
    failures.append(f"failing rank: its message is missing from stderr:\n{p.stderr}")
if took > 60:
    failures.append(f"failing rank: the job took {took:.1f} s to stop")
if os.listdir(bad):
    failures.append(f"failing rank: files left behind: {os.listdir(bad)}")

# A rank killed mid-run (SIGKILL: no message, no MPI_Abort of its own): the
# launcher sees it die and ends the job non-zero; rank 0 never writes the
# tables.
killed_dir = os.path.join(W, "sim_killed")
job = subprocess.Popen([*MPI, "-np", "2", args.cbctiq, "simulate", "--out", killed_dir,
                        "--volumes", "200", *GRID],  # minutes of work: killed long before its end
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
victim, t_end = None, time.monotonic() + 60
while victim is None and time.monotonic() < t_end and job.poll() is None:
    time.sleep(0.2)
    victim = mpi_job.rank_pid(job.pid, 1)
if victim is None:
    job.kill()
    failures.append("killed rank: rank 1's process was not found under mpirun")
else:
    time.sleep(1.0)  # let it get into its block of volumes
    mpi_job.kill_rank_and_wait(job, victim, 1, failures)
    if job.returncode == 0:
        failures.append("killed rank: the job exited 0")
    if os.path.exists(os.path.join(killed_dir, "cohort.csv")):
        failures.append("killed rank: rank 0 wrote cohort.csv for an incomplete cohort")

# A command that does not share its work would write the same files from
# every rank at once: refused, naming it.
p, _ = run(2, "consensus", "--ratings", os.path.join(sims[0], "ratings.csv"), "--out",
           os.path.join(W, "consensus.csv"), expect=2, timeout=120)
if "`cbctiq consensus` does not run on 2 MPI ranks" not in p.stderr or os.path.exists(
        os.path.join(W, "consensus.csv")):
    failures.append(f"consensus under 2 ranks: not refused as expected:\n{p.stderr}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("mpi: same bytes as one process; a failing rank stops the job")
