#!/usr/bin/env bash
# The main job behind `make demo`: the whole poster study on the built-in
# simulated cohort (cbctiq study; see docs/study.md). Rerunning it skips the
# stages that are already done; the poster's table is printed at the end.
set -euo pipefail
build=${1:-build}
out=${2:-demo-out}
mkdir -p "$out"
"$build/cbctiq" --version
"$build/cbctiq" study --out "$out"
echo "report: $out/report/report.html"
