#!/usr/bin/env bash
# `make bench`: every benchmark program under bench/, each printing its
# figures and its ratio to the peer measured in the same run; any benchmark
# that fails (its check against the peer, or the peer itself) fails the run.
#
# usage: scripts/bench.sh [--quick] [BUILD_DIR]
# --quick runs each benchmark on sizes that take seconds: every code path and
# every peer once, figures meaningless (the test bench_quick, so that no
# benchmark can rot unnoticed).
set -euo pipefail
# Both sides of every comparison wait the way the cbctiq command does
# (src/cli/wait_policy.c): idle OpenMP threads sleep instead of spinning.
# The PyTorch peers inherit it; set OMP_WAIT_POLICY yourself to compare
# libgomp's default.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
quick=()
if [ "${1:-}" = --quick ]; then quick=(--quick); shift; fi
build=$(cd "${1:-build}" && pwd)
cd "$(dirname "$0")/.."
shopt -s nullglob
programs=("$build"/bench/bench_*)
[ ${#programs[@]} -gt 0 ] || { echo "bench: no benchmark programs in $build/bench" >&2; exit 1; }
for b in "${programs[@]}"; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" "${quick[@]}"
done
for script in bench/bench_*.sh; do
  echo "== $(basename "$script")"
  bash "$script" "${quick[@]}" "$build"
done
