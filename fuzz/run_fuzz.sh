#!/usr/bin/env bash
# run_fuzz.sh BUILD_DIR SECONDS [TARGET...] - builds the libFuzzer targets with
# clang-14 (a separate CMake tree) and runs each named target (default: all)
# for SECONDS. Fails on any crash, sanitizer report, leak or timeout; the
# input that failed is left as BUILD_DIR/crash_TARGET-*.
# Inputs, in libFuzzer's order (new ones are written to the first folder only):
#   BUILD_DIR/corpus/TARGET     grows: what earlier runs found, kept between runs
#   fuzz/corpus/TARGET          committed seeds and regression inputs, read only
#   BUILD_DIR/seeds_bad/TARGET  tests/bad's inputs (fuzz/seed_from_bad.py), remade each run
# Runs use -seed=CBQ_FUZZ_SEED (default 1), so one seed on one corpus replays
# the same inputs. Longer runs: run_fuzz.sh build-fuzz 3600 csv. See fuzz/README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?build dir}"
secs="${2:-20}"
seed="${CBQ_FUZZ_SEED:-1}"
python="${CBQ_PYTHON:-/usr/bin/python3}"
export OMP_NUM_THREADS=1   # one thread: reproducible inputs, no time lost to thread start-up
shift 2 || shift $#
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(nifti dicom rtstruct safetensors model_json onnx csv ratings correlate study_config cohort)
fi
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
      -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$build" -j2 >/dev/null
rm -rf "$build/seeds_bad"
"$python" "$here/seed_from_bad.py" "$here/../tests/bad" "$here/corpus" "$build/seeds_bad" >/dev/null
# The committed seeds must come out of a run as they went in.
committed_before="$(cd "$here/corpus" && find . -type f -exec sha1sum {} + | sort)"
for t in "${targets[@]}"; do
  [ -x "$build/fuzz_$t" ] || { echo "fuzz_$t: not built"; exit 1; }
  grown="$build/corpus/$t"
  mkdir -p "$grown"
  inputs=("$grown" "$here/corpus/$t")
  [ -d "$build/seeds_bad/$t" ] && inputs+=("$build/seeds_bad/$t")
  echo "fuzz_$t: ${secs}s, -seed=$seed, $(ls "$grown" | wc -l) inputs kept from earlier runs"
  # Every input in these folders (regression inputs included) runs first, then mutations.
  "$build/fuzz_$t" -seed="$seed" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/crash_$t-" "${inputs[@]}" 2>"$build/fuzz_$t.log" ||
    { tail -40 "$build/fuzz_$t.log"; exit 1; }
  grep -E 'stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb' "$build/fuzz_$t.log" || true
done
committed_after="$(cd "$here/corpus" && find . -type f -exec sha1sum {} + | sort)"
[ "$committed_before" = "$committed_after" ] || { echo "fuzz/corpus was changed by the run"; exit 1; }
