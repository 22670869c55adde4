#!/usr/bin/env bash
# The main job behind `make demo`: the most complete pipeline cbctiq has.
set -euo pipefail
build=${1:-build}
out=${2:-demo-out}
mkdir -p "$out"
"$build/cbctiq" --version
"$build/cbctiq" help
