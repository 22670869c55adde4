#!/usr/bin/python3
"""usage_methods_test.py - the usage texts and the study's option table list
the attribution methods of the method table (include/cbctiq/cam_methods.def):
every method appears in `--method` of gradcam and ae (through `cbctiq help
CMD` and `CMD --help` alike), the default is marked, the wrapped list stays
within 80 columns, `cbctiq sanity` names exactly the table's default methods,
and `cbctiq study --list-options` lists every method for attrib.method. No
placeholder of the usage texts may reach the user."""
import argparse
import re
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir")
ap.add_argument("--def", dest="table", required=True, help="include/cbctiq/cam_methods.def")
args = ap.parse_args()

rows = re.findall(r'^CBQ_CAM_METHOD\((\w+), "([^"]+)", ([01]), ([01])\)$', open(args.table).read(), re.M)
names = [r[1] for r in rows]
sanity_default = [r[1] for r in rows if r[3] == "1"]
failures = []


def check(ok, msg):
    if not ok:
        failures.append(msg)
        print("FAIL:", msg)


def run(*argv):
    p = subprocess.run([args.cbctiq, *argv], capture_output=True, text=True)
    check(p.returncode == 0, f"{' '.join(argv)}: exit {p.returncode}")
    check("{" not in p.stdout, f"{' '.join(argv)}: a placeholder was printed")
    return p.stdout


check(len(names) >= 9 and "gradcam" in names, f"the table lists {names}")
for cmd in ("gradcam", "ae"):
    for text in (run("help", cmd), run(cmd, "--help")):
        block = re.search(r"^  --method NAME +(.*?)\n(?=  --)", text, re.M | re.S)
        check(block is not None, f"{cmd}: no --method entry")
        if not block:
            continue
        listed = [w.strip(",") for w in block.group(1).replace(" (default)", "").split()]
        check(listed == names, f"{cmd}: --method lists {listed}, the table {names}")
        check("gradcam (default)," in block.group(1), f"{cmd}: the default is not marked")
        lines = block.group(0).splitlines()
        check(all(len(l) <= 80 for l in lines), f"{cmd}: a --method line is over 80 columns")
        check(all(l.startswith(" " * 21) for l in lines[1:]), f"{cmd}: continuation not aligned")
for text in (run("help", "sanity"), run("sanity", "--help")):
    m = re.search(r"^  --methods LIST +default (\S+)$", text, re.M)
    check(m is not None and m.group(1).split(",") == sanity_default,
          f"sanity: default methods {m.group(1) if m else None}, the table {sanity_default}")
options = run("study", "--list-options")
row = re.search(r"^\| `attrib\.method` \| `gradcam` \| attribution method: (.*) \|$", options, re.M)
check(row is not None and row.group(1).split(", ") == names,
      f"study --list-options: attrib.method lists {row.group(1) if row else None}")

print(f"{len(names)} methods, {len(sanity_default)} in sanity's default set: "
      + ("FAIL" if failures else "ok"))
sys.exit(1 if failures else 0)
