#!/usr/bin/env bash
# run_fuzz.sh BUILD_DIR SECONDS - builds the libFuzzer targets with clang-14
# (a separate CMake tree) and runs each on a copy of its seed corpus for
# SECONDS. Fails on any crash, sanitizer report, leak or timeout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?build dir}"
secs="${2:-20}"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
      -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$build" -j2 >/dev/null
for t in nifti dicom; do
  work="$build/corpus_$t"
  rm -rf "$work" && mkdir -p "$work"
  cp "$here/corpus/$t"/* "$work"/
  echo "fuzz_$t: ${secs}s"
  "$build/fuzz_$t" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/crash_$t-" "$work" 2>"$build/fuzz_$t.log" ||
    { tail -40 "$build/fuzz_$t.log"; exit 1; }
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$build/fuzz_$t.log" || true
done
