#!/usr/bin/env bash
# bench_io.sh [BUILD_DIR] - reading speed of cbctiq's DICOM and NIfTI readers
# against dcm2niix on the same 512x512x200 int16 CT series (written by
# pydicom into a temporary folder: an elliptic body of soft tissue and bone
# in air, with noise, 200 files). Verifies first that cbctiq and dcm2niix put
# the same values at the same world positions, then times each command
# (best of 3 wall-clock runs, with user+sys CPU of that run) and prints the
# ratios. Goal: cbctiq within 1.5x of dcm2niix.
#
# usage: bench/bench_io.sh [--quick] [BUILD_DIR]   (--quick: 8 slices, one
# run each: every step once, in seconds; the test bench_quick)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n_slices=200 runs=3
if [ "${1:-}" = --quick ]; then n_slices=8 runs=1; shift; fi
build="${1:-$root/build}"
cbctiq="$build/cbctiq"
py=/usr/bin/python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cbctiq: $("$cbctiq" --version); dcm2niix: $(dcm2niix -v 2>&1 | grep -o 'v[0-9][0-9.]*' | head -1)"
"$py" - "$root/tests/io" "$tmp" "$n_slices" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import dicomgen
rng = np.random.default_rng(0)
n, size = int(sys.argv[3]), 512
jj, ii = np.mgrid[0:size, 0:size]
body = ((ii - 256) / 180.0) ** 2 + ((jj - 270) / 140.0) ** 2 < 1
bone = ((ii - 256) / 40.0) ** 2 + ((jj - 330) / 30.0) ** 2 < 1
px = np.empty((n, size, size), np.int16)
for k in range(n):
    s = np.where(body, 1064, 24) + np.where(bone, 800, 0)
    px[k] = s + rng.normal(0, 15, (size, size)).round().astype(np.int16)
dicomgen.write_series(sys.argv[2] + "/series", px, [1, 0, 0, 0, 1, 0], (-250, -230, -200),
                      (0.9765625, 0.9765625), 2.0, slope=1, intercept=-1024, rng=rng)
PY
echo "series: $(ls "$tmp/series" | wc -l) files, $(du -sh "$tmp/series" | cut -f1)"

# Verify before timing.
"$cbctiq" convert --quiet "$tmp/series" "$tmp/c.nii.gz"
dcm2niix -z n -f d -o "$tmp" "$tmp/series" >/dev/null
"$py" - "$tmp/c.nii.gz" "$tmp/d.nii" <<'PY'
import sys
import nibabel as nib
import numpy as np
c, d = nib.load(sys.argv[1]), nib.load(sys.argv[2])
ijk = np.stack(np.meshgrid(*[np.arange(0, s, 37) for s in c.shape], indexing="ij"), 0).reshape(3, -1)
w = c.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
r = np.linalg.inv(d.affine) @ w
ri = np.rint(r[:3]).astype(int)
assert np.abs(r[:3] - ri).max() < 1e-3, "voxel grids differ"
cv = np.asarray(c.dataobj)[ijk[0], ijk[1], ijk[2]].astype(float)
dv = d.get_fdata()[ri[0], ri[1], ri[2]]
assert np.array_equal(cv, dv), "values differ"
print(f"verified: {ijk.shape[1]} sampled voxels equal at equal world positions")
PY

best() { # best wall time of $runs runs: prints "wall user+sys"
  local b="" bc=""
  for _ in $(seq "$runs"); do
    rm -f "$tmp"/o.* "$tmp"/d.*
    /usr/bin/time -f "%e %U %S" -o "$tmp/t" "$@" >/dev/null 2>&1
    read -r e u s <"$tmp/t"
    if [ -z "$b" ] || awk "BEGIN{exit !($e < $b)}"; then b=$e; bc=$(awk "BEGIN{print $u + $s}"); fi
  done
  echo "$b $bc"
}
row() { printf '%-44s %7.2f s wall %7.2f s cpu\n' "$1" $2 $3; }

read -r cw cc < <(best "$cbctiq" convert --quiet "$tmp/series" "$tmp/o.nii")
read -r dw dc < <(best dcm2niix -z n -f d -o "$tmp" "$tmp/series")
row "cbctiq convert series -> .nii" $cw $cc
row "dcm2niix -z n series -> .nii" $dw $dc
read -r czw czc < <(best "$cbctiq" convert --quiet "$tmp/series" "$tmp/o.nii.gz")
read -r dzw dzc < <(best dcm2niix -z y -f d -o "$tmp" "$tmp/series")
row "cbctiq convert series -> .nii.gz" $czw $czc
row "dcm2niix -z y series -> .nii.gz" $dzw $dzc
read -r nw nc < <(best "$cbctiq" convert --quiet "$tmp/c.nii.gz" "$tmp/o.nii")
row "cbctiq convert .nii.gz -> .nii" $nw $nc
read -r iw ic < <(best "$cbctiq" info "$tmp/c.nii.gz")
row "cbctiq info .nii.gz (read only)" $iw $ic
read -r sw sc < <(best "$cbctiq" info "$tmp/series")
row "cbctiq info series (read only)" $sw $sc
awk -v a="$cw" -v b="$dw" -v c="$czw" -v d="$dzw" -v e="$nw" 'BEGIN {
  printf "ratio cbctiq/dcm2niix (wall): .nii %.2f, .nii.gz %.2f; .nii.gz read+write vs dcm2niix .nii: %.2f (goal <= 1.5)\n", a/b, c/d, e/b }'
