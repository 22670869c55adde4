#!/usr/bin/env bash
# peak_rss.sh CMD [ARG...] - runs CMD and reports the peak resident set size
# of the largest process it started (getrusage RUSAGE_CHILDREN: ru_maxrss,
# KiB on Linux) on stderr as "peak_rss_kib N" and in MiB. The exit status is
# CMD's own. Example: scripts/peak_rss.sh build/cbctiq study --out study-out
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: peak_rss.sh CMD [ARG...]" >&2; exit 2; }
exec /usr/bin/python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"peak_rss_kib {kib} ({kib / 1024:.1f} MiB)", file=sys.stderr)
sys.exit(rc if rc >= 0 else 128 - rc)
' "$@"
