#!/usr/bin/env bash
# bench_mpi.sh [--quick] [BUILD_DIR] - MPI scale-out on the same two cores
# (docs/cluster.md): 1 rank x 2 threads against 2 ranks x 1 thread, with
# 1 rank x 1 thread as the base of the parallel efficiency.
#
# - training (`cbctiq train`, iqnet-s, default width) on simulated slices at
#   128x128, 256x256 and 512x512 input, global batch 16, one epoch, no
#   validation split: training slices per second from train_log.csv's epoch
#   seconds (the training alone, not the process start or the slice loading),
#   CPU seconds of the whole command (user + sys of every rank), and rank 0's
#   gradient allreduce time per step (printed by train under mpirun);
# - attribution (`cbctiq ae`) of a 16-volume simulated cohort (every slice,
#   iqnet-s at 128x128, Grad-CAM, 5 categories): wall and CPU seconds; the
#   2 x 1 ae.csv must equal the 1 x 1 one byte for byte (same threads per rank).
#
# Parallel efficiency of a layout = its throughput / (the 1 x 1 throughput
# x the cores it uses): 1.00 for 1 x 1, and for 2 cores half the speed-up. Each figure is the best (least wall time) of $runs runs.
# On a machine shared with other jobs the wall times wander; the CPU seconds
# say how much work each layout spends.
#
# usage: bench/bench_mpi.sh [--quick] [BUILD_DIR]   (--quick: 32x32 input, a
# 4-volume cohort, one run: every path once, in seconds; the test bench_quick)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
quick=0
if [ "${1:-}" = --quick ]; then
  quick=1
  shift
fi
build="${1:-$root/build}"
cbctiq="$build/cbctiq"
mpirun="$(command -v mpirun || true)"
if [ -z "$mpirun" ] || [[ "$(ldd "$cbctiq")" != *libmpi* ]]; then
  echo "bench_mpi: no mpirun, or cbctiq built without MPI (libopenmpi-dev): nothing to measure"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cbctiq: $("$cbctiq" --version | head -1); $("$mpirun" --version | head -1)"
exec /usr/bin/python3 - "$cbctiq" "$mpirun" "$tmp" "$quick" <<'PY'
import csv
import filecmp
import os
import re
import resource
import subprocess
import sys
import time

cbctiq, mpirun, tmp, quick = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
runs = 1 if quick else 2
LAYOUTS = [(1, 1), (1, 2), (2, 1)]  # (ranks, threads per rank)


def timed(cmd):
    """(wall s, CPU s of the process and its children, stderr) of one run."""
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"bench_mpi: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p.stderr


def launch(ranks, threads, *args):
    prefix = [mpirun, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(ranks)] \
        if ranks > 1 else []
    return [*prefix, cbctiq, *args, "--threads", str(threads)]


def cohort(name, volumes, size, slices, test):
    out = os.path.join(tmp, name)
    subprocess.run([cbctiq, "simulate", "--out", out, "--volumes", str(volumes), "--size", str(size),
                    "--slices", str(slices), "--spacing", "4", "--raters", "3", "--test", str(test),
                    "--seed", "7", "--threads", "2", "--quiet"], check=True)
    return out


def layout_name(ranks, threads):
    return f"{ranks} rank{'s' if ranks > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"


# ---- training ----------------------------------------------------------------------------
sim = cohort("train_sim", 5, 32 if quick else 64, 24 if quick else 32, 1)
consensus = os.path.join(tmp, "consensus.csv")
subprocess.run([cbctiq, "consensus", "--ratings", os.path.join(sim, "ratings.csv"), "--raters",
                os.path.join(sim, "raters.csv"), "--out", consensus], check=True, capture_output=True)
# (input, slice step): 4 train volumes of 32 slices, every 4th/4th/8th slice
sizes = [(32, 4)] if quick else [(128, 4), (256, 4), (512, 8)]
print("\ntraining: iqnet-s, global batch 16, one epoch; slices/s of the training (train_log.csv's seconds)")
print(f"{'input':>7} {'layout':<20} {'slices':>6} {'slices/s':>9} {'efficiency':>10} {'wall s':>7} {'CPU s':>7}"
      f" {'allreduce ms/step':>18}")
for size, step in sizes:
    base = None
    for ranks, threads in LAYOUTS:
        best = None
        for run in range(runs):
            model = os.path.join(tmp, f"model_{size}_{ranks}x{threads}")
            wall, cpu, err = timed(launch(ranks, threads, "train", "--cohort", os.path.join(sim, "cohort.csv"),
                                          "--consensus", consensus, "--input-size", str(size), "--epochs", "1",
                                          "--batch", "16", "--slice-step", str(step), "--patience", "0",
                                          "--seed", "3", "--out", model))
            with open(os.path.join(model, "train_log.csv")) as f:
                seconds = float(next(csv.DictReader(f))["seconds"])
            n = int(re.search(r"trained on (\d+) slices", err).group(1))
            m = re.search(r"gradient allreduce ([0-9.]+) ms per step", err)
            if ranks > 1 and not m:
                sys.exit(f"bench_mpi: {ranks} ranks did not train data-parallel:\n{err}")
            if best is None or seconds < best[1]:
                best = (n, seconds, wall, cpu, float(m.group(1)) if m else None)
        n, seconds, wall, cpu, allreduce = best
        rate = n / seconds
        base = base or rate
        ms = f"{allreduce:.1f}" if allreduce is not None else "-"
        print(f"{size:>7} {layout_name(ranks, threads):<20} {n:>6} {rate:>9.2f} {rate / base / (ranks * threads):>10.2f}"
              f" {wall:>7.2f} {cpu:>7.2f} {ms:>18}")

# ---- attribution -------------------------------------------------------------------------
volumes = 4 if quick else 16
sim = cohort("ae_sim", volumes, 32 if quick else 64, 24 if quick else 32, 1)
model = os.path.join(tmp, "ae_model")
init = ["model", "init", "--arch", "iqnet-s", "--seed", "3", "--quiet", "--out", model]
subprocess.run([cbctiq, *init, *(["--width", "4", "--depth", "2", "--input", "32"] if quick else
                                  ["--input", "128"])], check=True)
print(f"\nattribution: cbctiq ae of {volumes} volumes, every slice, Grad-CAM, 5 categories")
print(f"{'layout':<20} {'wall s':>7} {'CPU s':>7} {'volumes/s':>9} {'efficiency':>10}")
base, outs = None, {}
for ranks, threads in LAYOUTS:
    best = None
    for run in range(runs):
        out = os.path.join(tmp, f"ae_{ranks}x{threads}.csv")
        wall, cpu, _ = timed(launch(ranks, threads, "ae", "--model", model, "--cohort",
                                    os.path.join(sim, "cohort.csv"), "--out", out, "--quiet"))
        if best is None or wall < best[0]:
            best = (wall, cpu)
    outs[(ranks, threads)] = out
    wall, cpu = best
    rate = volumes / wall
    base = base or rate
    print(f"{layout_name(ranks, threads):<20} {wall:>7.2f} {cpu:>7.2f} {rate:>9.2f} {rate / base / (ranks * threads):>10.2f}")
if not filecmp.cmp(outs[(1, 1)], outs[(2, 1)], shallow=False):
    sys.exit("bench_mpi: ae.csv on 2 ranks x 1 thread differs from 1 rank x 1 thread")
print("ae.csv: 2 ranks x 1 thread = 1 rank x 1 thread, byte for byte")
PY
