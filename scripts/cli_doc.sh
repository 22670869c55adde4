#!/usr/bin/env bash
# Prints docs/cli.md from the binary's own help texts, so the page cannot
# drift from the program: `scripts/cli_doc.sh build/cbctiq > docs/cli.md`.
# The test cli_doc_current compares the two.
set -euo pipefail
cbctiq=${1:-build/cbctiq}
echo "# Command-line reference"
echo
echo "Generated from \`cbctiq help\` by \`scripts/cli_doc.sh\`; the test"
echo "\`cli_doc_current\` fails when this page and the program disagree."
echo
echo '```'
"$cbctiq" help
echo '```'
for cmd in $("$cbctiq" help | awk '/^commands:/{on=1; next} on && /^  [a-z]/ {print $1}' | grep -v '^help$'); do
  echo
  echo "## cbctiq $cmd"
  echo
  echo '```'
  "$cbctiq" help "$cmd"
  echo '```'
done
