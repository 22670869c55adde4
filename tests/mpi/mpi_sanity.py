#!/usr/bin/env python3
"""`mpirun -np N cbctiq sanity` writes one process's sanity.csv (docs/cluster.md).

The cascading randomisation (and the permuted-model comparison) over a small
simulated cohort, two methods, as one process and on 2, 3 and 5 ranks (5
ranks for 4 volumes: one rank without a volume): sanity.csv must be
byte-identical, rank 0 alone writes it, and a missing volume on rank 1 stops
the job non-zero with its message and no sanity.csv.

usage: mpi_sanity.py --cbctiq BIN --mpirun MPIRUN --workdir DIR
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpi_job  # noqa: E402

args = mpi_job.parse_args()
W = args.workdir
run = mpi_job.runner(args)
failures = []


sim = os.path.join(W, "sim")
run(0, "simulate", "--out", sim, "--volumes", "5", "--size", "32", "--slices", "24", "--spacing", "4",
    "--raters", "3", "--test", "1", "--seed", "7", "--threads", "1", "--quiet")
for name, seed in (("model", "3"), ("perm", "4")):
    run(0, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "2", "--input", "32", "--seed", seed,
        "--quiet", "--out", os.path.join(W, name))
cohort = os.path.join(sim, "cohort.csv")
SANITY = ["sanity", "--model", os.path.join(W, "model"), "--permuted-model", os.path.join(W, "perm"),
          "--cohort", cohort, "--split", "train", "--methods", "gradcam,gradxinput", "--max-slices", "4",
          "--threads", "1", "--quiet"]
outs = {}
for ranks in (0, 2, 3, 5):
    d = os.path.join(W, f"np{ranks}")
    os.makedirs(d)
    outs[ranks] = os.path.join(d, "sanity.csv")
    run(ranks, *SANITY, "--out", outs[ranks])
    if os.listdir(d) != ["sanity.csv"]:
        failures.append(f"{ranks} ranks wrote {os.listdir(d)}")
with open(outs[0], "rb") as f:
    alone = f.read()
lines = alone.count(b"\n")
if lines < 10:
    failures.append(f"one process wrote only {lines} lines")
for ranks in (2, 3, 5):
    with open(outs[ranks], "rb") as f:
        if f.read() != alone:
            failures.append(f"sanity.csv on {ranks} ranks differs from one process")
        else:
            print(f"sanity.csv on {ranks} ranks: same bytes as one process")

# A volume missing from rank 1's block (train volumes 0-3: rank 1 has 2 and 3).
broken = os.path.join(W, "broken")
shutil.copytree(sim, broken)
os.remove(os.path.join(broken, "sim003.nii.gz"))
out = os.path.join(W, "broken_sanity.csv")
p = run(2, *[os.path.join(broken, "cohort.csv") if a == cohort else a for a in SANITY], "--out", out,
        expect_ok=False)
if "sim003" not in p.stderr:
    failures.append(f"missing volume on rank 1: message does not name it: {p.stderr!r}")
if os.path.exists(out):
    failures.append("missing volume on rank 1: sanity.csv was written")

if failures:
    sys.exit("FAILED:\n" + "\n".join(failures))
print("ok")
