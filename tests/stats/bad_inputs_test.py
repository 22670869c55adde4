"""bad_inputs_test.py - every bad file under tests/bad/stats/ makes the CLI
fail cleanly: the exit status its line in cases.txt gives (never a signal),
a message naming file and line and saying what is wrong, no sanitizer
report, and no output file left behind. A BOM + CRLF file is accepted."""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from cli_check import bad_input_exit, run_problems  # noqa: E402


def command_line(cbctiq, cmd, files, out):
    if cmd in ("consensus", "agreement"):
        args = [cbctiq, cmd, "--ratings", files[0], "--out", out]
        if len(files) > 1:
            args += ["--raters", files[1]]
        if cmd == "agreement":
            args += ["--json", out + ".json"]
        return args
    return [cbctiq, "correlate", "--x", files[0] + ":ae", "--y", files[1] + ":consensus",
            "--out", out, "--csv", out + ".csv", "--n-boot", "10", "--n-perm", "10"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--bad", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    failures = []
    n = 0
    cases = os.path.join(a.bad, "cases.txt")
    with open(cases) as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = [s.strip() for s in line.split("|")]
            if len(fields) != 5:
                sys.exit(f"{cases}:{number}: expected 'command | exit | files | file:line | fragment'")
            cmd, code, files, where, fragment = fields
            code = bad_input_exit(code, f"{cases}:{number}")
            paths = [os.path.join(a.bad, p) for p in files.split()]
            out = os.path.join(a.workdir, f"out{n}")
            n += 1
            p = subprocess.run(command_line(a.cbctiq, cmd, paths, out), capture_output=True, text=True)
            failures += [f"{cmd} {files}: {problem}; stderr {p.stderr!r}"
                         for problem in run_problems(p, code, stderr=[where, fragment])]
            left = [e for e in os.listdir(a.workdir) if e.startswith(f"out{n - 1}")]
            if left:
                failures.append(f"{cmd} {files}: left {left}")
    good = os.path.join(a.workdir, "good.csv")
    p = subprocess.run([a.cbctiq, "consensus", "--ratings", os.path.join(a.bad, "good_bom_crlf.csv"),
                        "--out", good], capture_output=True, text=True)
    problems = run_problems(p, 0)
    if problems:
        failures.append(f"BOM + CRLF file: {', '.join(problems)}; stderr {p.stderr!r}")
    else:
        with open(good) as f:
            rows = f.read().splitlines()
        import statistics
        want_sd = repr(statistics.stdev([4.0, 3.0]))  # sample sd of the two scores
        if rows != ["volume_id,category,consensus,n_raters,sd", f"v1,parotid,3.5,2,{want_sd}"]:
            failures.append(f"BOM + CRLF consensus: {rows}")
    for f_ in failures:
        print("FAIL:", f_)
    print(f"{n} bad inputs checked, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
