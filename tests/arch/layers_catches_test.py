#!/usr/bin/env python3
"""layers_test.py must fail on a layering violation: on a copy of the tree
(src/, include/, cmake/) it passes, then each planted violation alone makes
it fail (exit 1, or 2 for a header it cannot place) with a line naming the
file, the line and the rule broken."""
import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (what is planted, file to append to, text appended, expected exit status,
#  expected message with {line} standing for the line number of the planted text)
PLANTS = [
    ("core includes a public header of study", "src/core/error.c", '#include "cbctiq/study.h"\n', 1,
     "src/core/error.c:{line}: layer core includes cbctiq/study.h of layer study; "
     "core may use only core (cmake/layers.cmake)"),
    ("io includes a public header of nn", "src/io/csv.c", '#include "cbctiq/net.h"\n', 1,
     "src/io/csv.c:{line}: layer io includes cbctiq/net.h of layer nn; "
     "io may use only core, io (cmake/layers.cmake)"),
    ("attrib includes a private header of study", "src/attrib/cam.c", '#include "study/pipeline.h"\n', 1,
     "src/attrib/cam.c:{line}: layer attrib includes the private header study/pipeline.h of study; "
     "attrib may use only attrib, core, nn (cmake/layers.cmake)"),
    ("a folder with no row in the table", "src/extra/extra.c", "int cbq_extra(void) { return 0; }\n", 1,
     "src/extra/: a folder with no row in cmake/layers.cmake"),
    ("a public header whose functions two layers define", "src/sim/duplicate.c",
     "void cbq_structures_free(void *st)\n{\n    (void)st;\n}\n", 2,
     "layers_test: include/cbctiq/structures.h: its functions are defined in more than one layer "
     "(io, sim): cbq_structures_free in io/sim"),
    ("a public header with no function and no owner", "include/cbctiq/types_only.h",
     "typedef int cbq_types_only;\n", 2,
     "layers_test: include/cbctiq/types_only.h: declares no function defined under src/<layer>/; "
     "name its owning layer in OWNERS_WITHOUT_FUNCTIONS (tests/arch/layers_test.py)"),
]


def run_check(root):
    return subprocess.run([sys.executable, os.path.join(HERE, "layers_test.py"), "--root", root],
                          capture_output=True, text=True)


def fresh_copy(source, workdir):
    tree = os.path.join(workdir, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    for part in ("src", "include", "cmake"):
        shutil.copytree(os.path.join(source, part), os.path.join(tree, part))
    return tree


def plant(tree, relative, text):
    path = os.path.join(tree, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    existing = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            existing = f.read()
    if existing and not existing.endswith("\n"):
        existing += "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(existing + text)
    return existing.count("\n") + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    failures = []

    clean = run_check(fresh_copy(args.root, args.workdir))
    if clean.returncode != 0:
        failures.append(f"the unchanged copy: exit {clean.returncode}, expected 0\n{clean.stderr}")

    for what, relative, text, status, expected in PLANTS:
        tree = fresh_copy(args.root, args.workdir)
        line = plant(tree, relative, text)
        result = run_check(tree)
        message = expected.format(line=line)
        if result.returncode != status:
            failures.append(f"{what}: exit {result.returncode}, expected {status}\n{result.stderr}")
        elif message not in result.stderr.splitlines():
            failures.append(f"{what}: expected the line\n  {message}\ngot\n{result.stderr}")
        else:
            print(f"caught: {what}: {message}")

    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
