#!/usr/bin/env python3
"""`mpirun -np N cbctiq train` trains the one-process model (docs/cluster.md).

A small simulated cohort (2 validation volumes) is trained for 2 epochs as
one process, twice on 2 ranks and once on 3 (uneven blocks of each batch).
The ranks' runs must give the one-process per-epoch training and validation
losses to 1e-4 relative and its weights to 1e-3 (Adam amplifies rounding a
little), the same files (rank 0 alone writes), and two runs on the same
number of ranks the same bytes (the log but for its wall-time column).
--permute-labels writes the same permutation.csv. A batch that leaves a rank
without a slice is refused with a message naming the batch size, and no
model is written.

usage: mpi_train.py --cbctiq BIN --mpirun MPIRUN --workdir DIR
"""
import csv
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpi_job  # noqa: E402

args = mpi_job.parse_args()
W = args.workdir
run = mpi_job.runner(args)
failures = []


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def weights(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype={"F32": np.float32, "I64": np.int64}[t["dtype"]])
    return out


def close(a, b, rel, what):
    if not abs(a - b) <= rel * max(abs(b), 1e-12):
        failures.append(f"{what}: {a!r} vs one process {b!r} (relative {abs(a - b) / max(abs(b), 1e-12):.3g})")


sim = os.path.join(W, "sim")
run(0, "simulate", "--out", sim, "--volumes", "6", "--size", "32", "--slices", "24", "--spacing", "4",
    "--raters", "3", "--test", "1", "--seed", "7", "--threads", "1", "--quiet")
cohort = os.path.join(sim, "cohort.csv")
with open(cohort) as f:
    text = f.read()
with open(cohort, "w") as f:  # two validation volumes, so --permute-labels can derange them
    f.write(text.replace("sim003_labels.nii.gz,train", "sim003_labels.nii.gz,val")
                .replace("sim004_labels.nii.gz,train", "sim004_labels.nii.gz,val"))
consensus = os.path.join(W, "consensus.csv")
run(0, "consensus", "--ratings", os.path.join(sim, "ratings.csv"), "--raters", os.path.join(sim, "raters.csv"),
    "--out", consensus)
TRAIN = ["train", "--cohort", cohort, "--consensus", consensus, "--width", "4", "--depth", "2",
         "--input-size", "32", "--epochs", "2", "--batch", "8", "--slice-step", "1", "--threads", "1",
         "--seed", "3", "--patience", "0", "--quiet"]

models = {}
for key, ranks in (("np1", 0), ("np2", 2), ("np2b", 2), ("np3", 3)):
    models[key] = os.path.join(W, key)
    run(ranks, *TRAIN, "--out", models[key])

alone = read_log(os.path.join(models["np1"], "train_log.csv"))
w_alone = weights(os.path.join(models["np1"], "weights.safetensors"))
for key in ("np2", "np3"):
    m = models[key]
    if sorted(os.listdir(m)) != sorted(os.listdir(models["np1"])):
        failures.append(f"{key}: files {sorted(os.listdir(m))}, one process wrote {sorted(os.listdir(models['np1']))}")
    log = read_log(os.path.join(m, "train_log.csv"))
    if len(log) != len(alone):
        failures.append(f"{key}: {len(log)} epochs logged, one process {len(alone)}")
    for a, b in zip(log, alone):
        for col in ("train_loss", "val_loss", "val_mae_overall"):
            close(float(a[col]), float(b[col]), 1e-4, f"{key} epoch {a['epoch']} {col}")
        if a["lr"] != b["lr"] or a["improved"] != b["improved"]:
            failures.append(f"{key} epoch {a['epoch']}: lr/improved {a['lr']}/{a['improved']} vs {b['lr']}/{b['improved']}")
    w = weights(os.path.join(m, "weights.safetensors"))
    for name, ref in w_alone.items():
        got = w[name]
        if ref.dtype == np.int64:
            if not np.array_equal(got, ref):
                failures.append(f"{key}: {name} {got} vs {ref}")
            continue
        rel = np.max(np.abs(got.astype(np.float64) - ref) / np.maximum(np.abs(ref), 1e-2))
        if not rel <= 1e-3:
            failures.append(f"{key}: {name} differs from one process by {rel:.3g} relative")
    print(f"{key}: epoch losses and weights match one process "
          f"(train_loss {log[-1]['train_loss']} vs {alone[-1]['train_loss']})")

for name in ("weights.safetensors", "model.json"):
    with open(os.path.join(models["np2"], name), "rb") as f, open(os.path.join(models["np2b"], name), "rb") as g:
        if f.read() != g.read():
            failures.append(f"2 ranks twice: {name} differs")
strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
if strip(read_log(os.path.join(models["np2"], "train_log.csv"))) != strip(read_log(os.path.join(models["np2b"], "train_log.csv"))):
    failures.append("2 ranks twice: train_log.csv differs")

perm = {}
for key, ranks in (("perm_np1", 0), ("perm_np2", 2)):
    perm[key] = os.path.join(W, key)
    run(ranks, *TRAIN, "--permute-labels", "--out", perm[key])
with open(os.path.join(perm["perm_np1"], "permutation.csv"), "rb") as f, \
        open(os.path.join(perm["perm_np2"], "permutation.csv"), "rb") as g:
    if f.read() != g.read():
        failures.append("--permute-labels: permutation.csv differs between 1 process and 2 ranks")

small = os.path.join(W, "batch1")
p = run(2, *[a if a != "8" else "1" for a in TRAIN], "--out", small, expect_ok=False)
if "ranks need at least one slice each in every batch: batch 1" not in p.stderr:
    failures.append(f"--batch 1 on 2 ranks: message was {p.stderr!r}")
if os.path.exists(os.path.join(small, "weights.safetensors")):
    failures.append("--batch 1 on 2 ranks: a model was written")

if failures:
    sys.exit("FAILED:\n" + "\n".join(failures))
print("ok")
