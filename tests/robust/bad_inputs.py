#!/usr/bin/python3
"""bad_inputs.py - runs cbctiq on every bad input listed in tests/bad/<area>/
cases.txt (areas: model, sim, attrib) and requires of each run: the case's
exact exit status (1 bad input, 2 usage error; never a signal, never 0), the
expected message fragment and the name of the offending file or option on
stderr, no sanitizer report, and no file left in the output folder (no
output, no temporary file).

cases.txt lines:  name | exit | must-name | fragment | command [;; command ...]
  `define NAME = command ;; command` defines @NAME for use as the command.
  Placeholders: {case} = GEN/name (what the area's make_bad.py wrote),
  {gen} = GEN, {bad} = the area's folder, {model} = a good small model,
  {vol} = a good small NIfTI volume, {sim} = a good small simulated cohort
  folder, {out} = the output folder that must stay empty.
The io and stats areas keep their own runners (tests/io/bad_input_test.py,
tests/stats/bad_inputs_test.py)."""
import argparse
import os
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from cli_check import bad_input_exit, run_problems  # noqa: E402

AREAS = ("model", "sim", "attrib")

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--bad", required=True, help="tests/bad")
args = ap.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
W = args.workdir


def cbctiq(*cmd):
    r = subprocess.run([args.cbctiq, *cmd], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.exit(f"setup failed: cbctiq {' '.join(cmd)}\n{r.stderr}")


# Good inputs every area starts from.
sim = os.path.join(W, "sim")
cbctiq("simulate", "--out", sim, "--volumes", "2", "--size", "32", "--slices", "24", "--spacing", "4", "--raters", "2",
       "--test", "1", "--seed", "1", "--threads", "2", "--quiet")
model = os.path.join(W, "model")
cbctiq("model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "2", "--input", "32",
       "--quiet", "--out", model)
vol = os.path.join(sim, sorted(n for n in os.listdir(sim) if n.endswith(".nii.gz") and "labels" not in n)[0])


def load_cases(area):
    defs, cases = {}, []
    path = os.path.join(args.bad, area, "cases.txt")
    for number, line in enumerate(open(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("define "):
            name, body = line[len("define "):].split("=", 1)
            defs["@" + name.strip()] = body.strip()
            continue
        fields = [s.strip() for s in line.split("|", 4)]
        if len(fields) != 5:
            sys.exit(f"{path}:{number}: expected 'name | exit | must-name | fragment | command'")
        name, code, must, fragment, cmds = fields
        cases.append((name, bad_input_exit(code, f"{path}:{number}"), must, fragment, defs.get(cmds, cmds)))
    return cases


failures, n_runs, n_cases = [], 0, 0
for area in AREAS:
    src = os.path.join(args.bad, area)
    gen = os.path.join(W, "gen", area)
    os.makedirs(gen)
    maker = os.path.join(src, "make_bad.py")
    if os.path.exists(maker):
        subprocess.run([sys.executable, maker, model, gen, vol, sim], check=True)
    for name, code, must, fragment, cmds in load_cases(area):
        n_cases += 1
        out = os.path.join(W, "out")
        for cmd in cmds.split(";;"):
            os.makedirs(out, exist_ok=True)
            words = [w.format(case=os.path.join(gen, name), gen=gen, bad=src, model=model, vol=vol,
                              sim=sim, out=out) for w in shlex.split(cmd)]
            r = subprocess.run([args.cbctiq, *words], capture_output=True, text=True, timeout=300)
            problems = run_problems(r, code, stderr=[fragment])
            if must not in r.stderr:
                problems.append(f"message does not name '{must}'")
            left = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
            if left:
                problems.append(f"left in the output folder: {left}")
            if problems:
                failures.append(f"{area}/{name}")
                print(f"FAIL {area}/{name}: cbctiq {' '.join(words[:2])}...: {', '.join(problems)}\n"
                      f"  stderr: {r.stderr.strip()[-600:]}")
            n_runs += 1
            shutil.rmtree(out)
if failures:
    print(f"{len(failures)} of {n_runs} runs failed")
    sys.exit(1)
print(f"all {n_runs} runs on {n_cases} bad inputs gave a clear error")
