#!/usr/bin/python3
"""expect_run.py - runs one command and passes only if it exits with exactly
the expected status, prints what it must, and no sanitizer reports. CTest's
PASS_REGULAR_EXPRESSION ignores the exit status and WILL_FAIL accepts a
sanitizer abort; CLI tests go through this instead.

  expect_run.py --exit N [--stderr TEXT]... [--stdout TEXT]...
                [--stderr-re RE]... [--stdout-re RE]... [--sanitizer-report]
                -- COMMAND [ARG...]

--stderr/--stdout: a fragment that must appear; --*-re: a regular expression
(Python, multi-line) that must match; --sanitizer-report: the run must
produce one (the ThreadSanitizer canary)."""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import run_problems  # noqa: E402


def main():
    ap = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1])
    ap.add_argument("--exit", type=int, required=True, dest="exit_status")
    ap.add_argument("--stderr", action="append", default=[])
    ap.add_argument("--stdout", action="append", default=[])
    ap.add_argument("--stderr-re", action="append", default=[])
    ap.add_argument("--stdout-re", action="append", default=[])
    ap.add_argument("--sanitizer-report", action="store_true")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("command", nargs="+")
    a = ap.parse_args()
    proc = subprocess.run(a.command, capture_output=True, text=True, timeout=a.timeout)
    problems = run_problems(proc, a.exit_status, a.stderr, a.stdout, a.stderr_re, a.stdout_re,
                            a.sanitizer_report)
    print("$", " ".join(a.command))
    if not problems:
        print(f"ok: exit status {proc.returncode}, expected output, no unexpected sanitizer report")
        return 0
    for p in problems:
        print("FAIL:", p)
    print("--- stdout (end)\n" + proc.stdout[-2000:] + "--- stderr (end)\n" + proc.stderr[-4000:])
    return 1


if __name__ == "__main__":
    sys.exit(main())
