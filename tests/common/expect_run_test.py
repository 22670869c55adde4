#!/usr/bin/python3
"""expect_run_test.py - expect_run.py must fail every run that a
PASS_REGULAR_EXPRESSION or WILL_FAIL test would pass by mistake (right text,
wrong exit status; a sanitizer report with the expected status; a signal)
and pass the runs that are right. Stand-in commands are small Python
programs, so the test needs no cbctiq."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cli_check import bad_input_exit, sanitizer_report  # noqa: E402

ASAN = "==42==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000011"
UBSAN = "src/io/csv.c:120:9: runtime error: signed integer overflow"
LSAN = "==42==ERROR: LeakSanitizer: detected memory leaks"
TSAN = "WARNING: ThreadSanitizer: data race (pid=42)"


def stand_in(exit_status, stderr="", stdout="", signal=None):
    """A command that prints stdout and stderr, then exits or kills itself."""
    end = f"os.kill(os.getpid(), {signal})" if signal else f"sys.exit({exit_status})"
    return [sys.executable, "-c", f"import os, sys; sys.stdout.write({stdout!r}); "
                                  f"sys.stderr.write({stderr!r}); sys.stdout.flush(); {end}"]


# name, expect_run.py checks, stand-in command, must expect_run pass?
CASES = [
    ("right status and message", ["--exit", "2", "--stderr=--out DIR is required"],
     stand_in(2, "cbctiq simulate: --out DIR is required\n"), True),
    ("right message, exit 0 where 2 is due", ["--exit", "2", "--stderr=--out DIR is required"],
     stand_in(0, "cbctiq simulate: --out DIR is required\n"), False),
    ("right message, exit 1 where 2 is due", ["--exit", "2", "--stderr=--out DIR is required"],
     stand_in(1, "cbctiq simulate: --out DIR is required\n"), False),
    ("message missing", ["--exit", "1", "--stderr", "cannot open"], stand_in(1, "cbctiq: failed\n"), False),
    ("ASan abort with the expected status", ["--exit", "1", "--stderr", "cannot open"],
     stand_in(1, f"cbctiq: x.nii: cannot open\n{ASAN}\n"), False),
    ("UBSan report", ["--exit", "1"], stand_in(1, UBSAN + "\n"), False),
    ("LSan report at exit", ["--exit", "0"], stand_in(0, LSAN + "\n"), False),
    ("TSan report", ["--exit", "0"], stand_in(0, TSAN + "\n"), False),
    ("killed by SIGSEGV", ["--exit", "1"], stand_in(None, signal=11), False),
    ("stdout regular expression matches", ["--exit", "0", "--stdout-re", r"\Acbctiq 0\.1\.0$"],
     stand_in(0, stdout="cbctiq 0.1.0\n  gcc 12\n"), True),
    ("stdout regular expression does not match", ["--exit", "0", "--stdout-re", r"\Acbctiq 0\.1\.0$"],
     stand_in(0, stdout="cbctiq 0.2.0\n"), False),
    ("required sanitizer report present", ["--exit", "66", "--sanitizer-report", "--stderr", "data race"],
     stand_in(66, TSAN + "\n"), True),
    ("required sanitizer report absent", ["--exit", "66", "--sanitizer-report"], stand_in(66, "quiet\n"), False),
]

failures = []
for name, checks, command, should_pass in CASES:
    p = subprocess.run([sys.executable, os.path.join(HERE, "expect_run.py"), *checks, "--", *command],
                       capture_output=True, text=True)
    if p.returncode != (0 if should_pass else 1):
        failures.append(name)
        print(f"FAIL {name}: expect_run.py exited {p.returncode}, expected {0 if should_pass else 1}\n"
              f"{p.stdout}{p.stderr}")
    else:
        print(f"ok   {name}")

if sanitizer_report("cbctiq: x.csv:3: 'nan' is not a finite number\n") is not None:
    failures.append("a plain error message read as a sanitizer report")
for field, want in (("1", 1), (" 2 ", 2), ("0", None), ("", None), ("3", None), ("x", None)):
    try:
        got = bad_input_exit(field, "cases.txt:7")
    except ValueError as e:
        got = None
        if "cases.txt:7" not in str(e):
            failures.append(f"bad_input_exit({field!r}): message does not name the line")
    if got != want:
        failures.append(f"bad_input_exit({field!r}) = {got}, expected {want}")
        print(f"FAIL bad_input_exit({field!r}) = {got}, expected {want}")
print(f"{len(failures)} failures" if failures else "all expect_run checks hold")
sys.exit(1 if failures else 0)
