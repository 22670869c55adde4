"""cli_check.py - what every test of the cbctiq command line requires of one
run: the exact exit status, the expected message, and no sanitizer report.

Why exact: cbctiq exits 0 on success, 1 when an input or a computation fails
(message printed) and 2 on a usage error (src/cli/cli.h). A sanitizer that
stops the program also exits 1 (ASan, UBSan with -fno-sanitize-recover), a
signal gives a negative status, and a test that accepts "any non-zero" or
only looks for a message passes on either. Imported by the runners in
tests/ (with sys.path pointing here) and by expect_run.py."""
import re

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

# What compiler-rt's sanitizers print when they report (ASan, LSan, TSan,
# MSan headers; UBSan's "file:line:col: runtime error: ...").
SANITIZER_REPORT = re.compile(r"(Address|UndefinedBehavior|Leak|Thread|Memory)Sanitizer|runtime error:")


def sanitizer_report(text):
    """The first line of text that belongs to a sanitizer report, or None."""
    for line in text.splitlines():
        if SANITIZER_REPORT.search(line):
            return line.strip()
    return None


def exit_problem(returncode, expected):
    """None when the run exited with expected; else what happened instead."""
    if returncode == expected:
        return None
    if returncode < 0:
        return f"killed by signal {-returncode}, expected exit status {expected}"
    return f"exit status {returncode}, expected {expected}"


def run_problems(proc, expected_exit, stderr=(), stdout=(), stderr_re=(), stdout_re=(),
                 sanitizer_expected=False):
    """Everything wrong with a finished subprocess.run(..., text=True): its
    exit status, each fragment (stderr/stdout) or regular expression
    (stderr_re/stdout_re, multi-line) it must print, and a sanitizer report
    on stderr (required instead when sanitizer_expected). [] when all hold."""
    problems = []
    wrong_exit = exit_problem(proc.returncode, expected_exit)
    if wrong_exit:
        problems.append(wrong_exit)
    for stream, text, fragments, patterns in (("stderr", proc.stderr, stderr, stderr_re),
                                              ("stdout", proc.stdout, stdout, stdout_re)):
        problems += [f"{stream} lacks {f!r}" for f in fragments if f not in text]
        problems += [f"{stream} does not match {p!r}" for p in patterns
                     if not re.search(p, text, re.MULTILINE)]
    report = sanitizer_report(proc.stderr)
    if report and not sanitizer_expected:
        problems.append(f"sanitizer report: {report}")
    if sanitizer_expected and not report:
        problems.append("no sanitizer report, one was expected")
    return problems


def bad_input_exit(field, where):
    """The exit status a bad-input case expects, read from its cases file:
    1 (the input is bad) or 2 (the command line is bad). Raises ValueError
    naming where (file:line) for anything else, so a case cannot leave it out."""
    text = field.strip()
    if text not in ("1", "2"):
        raise ValueError(f"{where}: expected exit status 1 (bad input) or 2 (usage error), got {text!r}")
    return int(text)
