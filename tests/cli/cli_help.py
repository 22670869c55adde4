#!/usr/bin/python3
"""cli_help.py - `--help` and `-h` print a command's usage for every command
and every subcommand: exit 0, the same text as `cbctiq help COMMAND` on
stdout, nothing on stderr (so no sanitizer report either).

The commands come from `cbctiq help` and are checked against
src/cli/commands.def, and the subcommands from each usage text's synopsis
lines (`cbctiq model init ...`), so a new command or subcommand is covered
without editing this file."""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from cli_check import EXIT_OK, EXIT_FAIL, run_problems  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--commands-def", required=True, help="src/cli/commands.def")
ap.add_argument("--workdir")
args = ap.parse_args()
failures = []


def run(*argv):
    return subprocess.run([args.cbctiq, *argv], capture_output=True, text=True, timeout=60)


def expect(argv, exit_status, **checks):
    problems = run_problems(run(*argv), exit_status, **checks)
    for p in problems:
        failures.append(f"cbctiq {' '.join(argv)}: {p}")
        print("FAIL:", failures[-1])
    return not problems


def expect_usage(argv, usage):
    """argv prints exactly usage on stdout and nothing on stderr, exit 0."""
    r = run(*argv)
    problems = run_problems(r, EXIT_OK)
    if r.stdout != usage:
        problems.append(f"stdout is not the usage text; it starts {r.stdout[:80]!r}")
    if r.stderr:
        problems.append(f"stderr not empty: {r.stderr[:200]!r}")
    for p in problems:
        failures.append(f"cbctiq {' '.join(argv)}: {p}")
        print("FAIL:", failures[-1])


def listed_commands(overview):
    """Command names in the `commands:` block of `cbctiq help`, less help."""
    block = overview.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.split()[0] != "help"]


def subcommands(cmd, usage):
    """SUB for each synopsis line `cbctiq CMD SUB ...` whose SUB is a word,
    not an option, an operand in capitals or an optional [part]."""
    found = []
    for m in re.finditer(rf"^(?:usage:)?\s+cbctiq {re.escape(cmd)} ([a-z][a-z0-9-]*)\b", usage,
                         re.MULTILINE):
        if m.group(1) not in found:
            found.append(m.group(1))
    return found


overview = run("help")
expect(["help"], EXIT_OK, stdout=["commands:"])
commands = listed_commands(overview.stdout)
defined = re.findall(r"^CBQ_COMMAND\((\w+),", open(args.commands_def).read(), re.MULTILINE)
if sorted(commands) != sorted(defined) or not defined:
    failures.append(f"`cbctiq help` lists {commands}, commands.def defines {defined}")
    print("FAIL:", failures[-1])

# The overview itself: every spelling, and `help help`.
for argv in (["--help"], ["-h"], ["help", "help"]):
    expect_usage(argv, overview.stdout)

checked = []
for cmd in commands:
    r = run("help", cmd)
    if not expect(["help", cmd], EXIT_OK, stdout_re=[rf"\Ausage: cbctiq {cmd}\b"]):
        continue
    usage = r.stdout
    for sub in [[]] + [[s] for s in subcommands(cmd, usage)]:
        base = [cmd, *sub]
        checked.append(" ".join(base))
        for flag in ("--help", "-h"):
            expect_usage([*base, flag], usage)
        # Help anywhere among the arguments, before the command checks them.
        expect_usage([*base, "no-such-operand", "--help"], usage)

# A subcommand must have been found, or the synopsis parsing broke.
if "model init" not in checked or "model info" not in checked:
    failures.append(f"subcommands model init/info not found; checked {checked}")
    print("FAIL:", failures[-1])
# After `--` a "-h" is an operand (a file named -h), not a request for help.
expect(["info", "--", "-h"], EXIT_FAIL, stderr=["cbctiq: -h: no such file or folder"])

print(f"checked --help and -h of {len(checked)} commands and subcommands: {', '.join(checked)}")
if failures:
    sys.exit(f"{len(failures)} failure(s)")
