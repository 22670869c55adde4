#!/usr/bin/env bash
# `make bench`: every benchmark program under bench/, each printing its
# figures and its ratio to the peer measured in the same run.
set -euo pipefail
build=${1:-build}
shopt -s nullglob
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] && "$b"
done
for py in bench/bench_*.sh; do
  bash "$py" "$build"
done
