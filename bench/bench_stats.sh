#!/usr/bin/env bash
# bench_stats.sh - `cbctiq correlate` (Spearman, t p, leave-one-out, bootstrap
# BCa with 10,000 resamples, permutation p with 100,000 permutations,
# Pearson, Kendall) against SciPy doing the same, for n = 16 and n = 1000,
# in the same run. Verifies rho and p agree before it reports times.
#
# usage: bench/bench_stats.sh [--quick] [BUILD_DIR] [THREADS]
# (--quick: n = 16 only, one run: every step once; the test bench_quick)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sizes="16 1000" runs=3
if [ "${1:-}" = --quick ]; then sizes=16 runs=1; shift; fi
build=${1:-$here/../build}
threads=${2:-$(nproc)}
cbctiq=$build/cbctiq
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n_boot=10000
n_perm=100000
seed=3

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; cbctiq threads: $threads"
echo "SciPy $($py -c 'import scipy; print(scipy.__version__)'), NumPy $($py -c 'import numpy; print(numpy.__version__)')"
echo "wall = best of $runs run(s) of the whole command (process start and file I/O included); cpu = user + sys seconds"
printf '%-6s %9s %9s %9s %9s %9s %9s   %s\n' n cbq_wall cbq_cpu scipy_wall scipy_cpu wall_x cpu_x check
for n in $sizes; do
  $py - "$work" "$n" <<'PY'
import sys, numpy as np
work, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(n)
x = rng.normal(size=n)
y = np.clip(np.round(3 + 0.8 * x + rng.normal(size=n)), 1, 5)  # Likert-like, with ties
with open(f"{work}/ae.csv", "w") as f:
    f.write("volume_id,category,ae\n" + "".join(f"v{i},parotid,{x[i]!r}\n" for i in range(n)))
with open(f"{work}/consensus.csv", "w") as f:
    f.write("volume_id,category,consensus\n" + "".join(f"v{i},parotid,{y[i]!r}\n" for i in range(n)))
with open(f"{work}/both.csv", "w") as f:
    f.write("ae,consensus\n" + "".join(f"{x[i]!r},{y[i]!r}\n" for i in range(n)))
PY
  best=1e9
  best_cpu=1e9
  for _ in $(seq "$runs"); do
    /usr/bin/time -o "$work/time" -f "%e %U %S" \
      "$cbctiq" correlate --x "$work/ae.csv:ae" --y "$work/consensus.csv:consensus" --out "$work/stats.json" \
      --n-boot $n_boot --n-perm $n_perm --seed $seed --threads "$threads" --quiet
    read -r wall user sys < "$work/time"
    best=$(awk -v a="$wall" -v b="$best" 'BEGIN{print (a < b) ? a : b}')
    best_cpu=$(awk -v u="$user" -v s="$sys" -v b="$best_cpu" 'BEGIN{c = u + s; print (c < b) ? c : b}')
  done
  peer=$($py "$here/peer_scipy_stats.py" "$work/both.csv" $n_boot $n_perm $seed)
  check=$($py - "$work/stats.json" "$peer" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["categories"]["parotid"]
s = json.loads(sys.argv[2])
ok = abs(c["rho"] - s["rho"]) < 1e-12 and abs(c["p"] - s["p"]) <= 1e-9 * s["p"]
ok &= abs(c["loo"]["median_rho"] - s["loo_median_rho"]) < 1e-12
ok &= abs(c["p_perm"] - s["p_perm"]) < 0.01 + 0.05 * s["p_perm"]
ok &= all(abs(a - b) < 0.05 for a, b in zip(c["ci95_bootstrap"]["bca"], s["bca"]))
print(("ok" if ok else "MISMATCH") + f" rho={c['rho']:.6f} p={c['p']:.3g} p_perm={c['p_perm']:.3g}/{s['p_perm']:.3g} "
      f"bca=[{c['ci95_bootstrap']['bca'][0]:.3f},{c['ci95_bootstrap']['bca'][1]:.3f}]/[{s['bca'][0]:.3f},{s['bca'][1]:.3f}]")
PY
)
  scipy_s=$(echo "$peer" | $py -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
  scipy_cpu=$(echo "$peer" | $py -c 'import json,sys; print(json.load(sys.stdin)["cpu_seconds"])')
  ratio=$(awk -v a="$scipy_s" -v b="$best" 'BEGIN{print a / b}')
  ratio_cpu=$(awk -v a="$scipy_cpu" -v b="$best_cpu" 'BEGIN{print a / (b > 0.005 ? b : 0.005)}')
  printf '%-6s %9.3f %9.3f %9.3f %9.3f %8.1fx %8.1fx   %s\n' "$n" "$best" "$best_cpu" "$scipy_s" "$scipy_cpu" \
    "$ratio" "$ratio_cpu" "$check"
  case "$check" in ok*) ;; *) echo "bench_stats: cbctiq and SciPy disagree (n = $n)" >&2; exit 1 ;; esac
done
