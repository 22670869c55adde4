#!/usr/bin/env bash
# run_fuzz.sh BUILD_DIR SECONDS [TARGET...] - builds the libFuzzer targets with
# clang-14 (a separate CMake tree) and runs each named target (default: all)
# on a copy of its seed corpus fuzz/corpus/TARGET for SECONDS. Fails on any
# crash, sanitizer report, leak or timeout; the input that failed is left as
# BUILD_DIR/crash_TARGET-*. Longer runs: run_fuzz.sh build-fuzz 3600 csv
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?build dir}"
secs="${2:-20}"
export OMP_NUM_THREADS=1   # one thread: reproducible inputs, no time lost to thread start-up
shift 2 || shift $#
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(nifti dicom rtstruct safetensors model_json csv ratings correlate study_config cohort)
fi
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
      -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$build" -j2 >/dev/null
for t in "${targets[@]}"; do
  [ -x "$build/fuzz_$t" ] || { echo "fuzz_$t: not built"; exit 1; }
  work="$build/corpus_$t"
  rm -rf "$work" && mkdir -p "$work"
  cp "$here/corpus/$t"/* "$work"/
  echo "fuzz_$t: ${secs}s"
  # The seeds (regression inputs included) run first, then mutations.
  "$build/fuzz_$t" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/crash_$t-" "$work" 2>"$build/fuzz_$t.log" ||
    { tail -40 "$build/fuzz_$t.log"; exit 1; }
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$build/fuzz_$t.log" || true
done
