#!/usr/bin/env bash
# bench_ae.sh [--quick] [BUILD_DIR] - `cbctiq ae` as a whole process (start,
# model load, reading and decompressing the .nii.gz, slicing, Grad-CAM + AE
# of all five categories, writing ae.csv) on one 128x128x96 int16 volume with
# iqnet-s, against PyTorch CPU doing the same work in one process
# (bench/peer_ae_torch.py: nibabel read, window, model load, Grad-CAM + AE,
# CSV; its interpreter start and imports are not counted, cbctiq's process
# start is). Same thread count on both sides, 1 then 2 threads, batch 16
# (cbctiq ae's default). `--perturbation none`: ae.csv's deletion/insertion
# curves (by default 20 steps x 2 orders x 2 curves x 5 categories of extra
# forward passes, 3.4x the slices of the AE itself) are work the peer does
# not do, so they are left out on our side too.
#
# Verifies first that PyTorch's AE equals the AE in cbctiq's ae.csv (1e-4
# relative), then times: for cbctiq the run with the least user + sys CPU time
# of $runs processes (getrusage of the children), for PyTorch the least CPU time of $runs
# in-process repeats. CPU time is the figure to compare on a shared machine;
# wall times are printed beside it. Prints the ratios PyTorch / cbctiq.
#
# usage: bench/bench_ae.sh [--quick] [BUILD_DIR]   (--quick: a 32x32x6 volume
# and a small model, one run each: every step once, in seconds; the test
# bench_quick)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
side=128 depth=96 runs=5 model_opts=()
if [ "${1:-}" = --quick ]; then
  side=32 depth=6 runs=1 model_opts=(--width 4 --depth 3 --input 32)
  shift
fi
build="${1:-$root/build}"
cbctiq="$build/cbctiq"
py=/usr/bin/python3
batch=16
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cbctiq: $("$cbctiq" --version | head -1); PyTorch $("$py" -c 'import torch; print(torch.__version__)')"
"$cbctiq" model init --arch iqnet-s "${model_opts[@]}" --seed 7 --out "$tmp/model" --quiet
"$py" - "$tmp/ct.nii.gz" "$side" "$depth" <<'PY'
import sys
import nibabel as nib
import numpy as np
# A head-sized disc of soft tissue with smooth structure and noise in air,
# int16 HU, already on the model's grid (canonical: affine diag(-dx, -dy, dz)).
path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(2026)
i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
r = np.hypot(i - n / 2, j - n / 2) / (n / 2)
vol = np.empty((n, n, d), np.int16)
for k in range(d):
    v = np.where(r < 0.8, 40.0, -1000.0) + 300 * np.sin(0.2 * i + 0.05 * k) * np.cos(0.15 * j)
    vol[:, :, k] = np.round(v + 30 * rng.standard_normal((n, n)))
aff = np.diag([-256.0 / n, -256.0 / n, 2.0, 1.0])
nib.save(nib.Nifti1Image(vol, aff), path)
PY
printf 'volume_id,path\nv1,ct.nii.gz\n' >"$tmp/cohort.csv"
echo "volume: ${side}x${side}x${depth} int16, $(du -h "$tmp/ct.nii.gz" | cut -f1) .nii.gz; model: iqnet-s ${side}x${side}, batch $batch, 5 categories"

ours() { # threads
  "$cbctiq" ae --model "$tmp/model" --cohort "$tmp/cohort.csv" --out "$tmp/ae.csv" --batch "$batch" \
    --perturbation none --threads "$1" --quiet
}
best_ours() { # threads: prints "wall cpu" of the process with the least CPU time
  "$py" - "$runs" "$cbctiq" ae --model "$tmp/model" --cohort "$tmp/cohort.csv" --out "$tmp/ae.csv" \
    --batch "$batch" --perturbation none --threads "$1" --quiet <<'PY'
import resource, subprocess, sys, time
best = None
for _ in range(int(sys.argv[1])):
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(sys.argv[2:], check=True)
    r1, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - t0
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if best is None or cpu < best[1]:
        best = (wall, cpu)
print(f"{best[0]:.6f} {best[1]:.6f}")
PY
}

for threads in 1 2; do
  ours "$threads"
  "$py" "$root/bench/peer_ae_torch.py" "$tmp/model" "$tmp/ct.nii.gz" "$threads" "$batch" "$runs" >"$tmp/peer"
  "$py" - "$tmp/ae.csv" "$tmp/peer" <<'PY'
import csv, sys
ours = [float(r["ae"]) for r in csv.DictReader(open(sys.argv[1]))]
peer = [float(l.split()[2]) for l in open(sys.argv[2]) if l.startswith("ae ")]
assert len(ours) == len(peer) == 5, (ours, peer)
worst = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(ours, peer))
print(f"verify: AE agrees to {worst:.1e} for all 5 categories{'' if worst <= 1e-4 else ' (MISMATCH)'}")
sys.exit(0 if worst <= 1e-4 else 1)
PY
  times=$(best_ours "$threads") # a failing run fails the benchmark (set -e)
  read -r ow oc <<<"$times"
  pw=$(awk '$1 == "seconds" {print $2}' "$tmp/peer")
  pc=$(awk '$1 == "cpu_seconds" {print $2}' "$tmp/peer")
  pk=$(awk '$1 == "kernel_cpu_seconds" {print $2}' "$tmp/peer")
  awk -v t="$threads" -v ow="$ow" -v oc="$oc" -v pw="$pw" -v pc="$pc" -v pk="$pk" 'BEGIN {
    printf "threads %d: cbctiq ae process %.3f s wall, %.3f s CPU; PyTorch in-process %.3f s wall, %.3f s CPU (Grad-CAM + AE alone %.3f s CPU); ratio %.2fx CPU, %.2fx wall\n",
      t, ow, oc, pw, pc, pk, pc / (oc > 0 ? oc : 1e-9), pw / ow }'
done
