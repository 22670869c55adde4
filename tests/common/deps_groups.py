#!/usr/bin/python3
"""deps_groups.py - scripts/deps.sh's package groups cover what the tests and
benchmarks use, and README.md says why for each package.

- Every Python module imported by the tests (tests/, fuzz/) comes from the
  standard library, from the repository (python/cbctiq counts with every
  module its files import), or from a Debian package in the build or test
  group; the same for the benchmarks (bench/, Python in their
  shell scripts) with the build and bench groups. A repository module (such
  as tests/io/dicomgen.py) counts with what it imports in turn.
- README.md's "Dependencies, and why" names every package of every group.
So `make check` and `make bench` cannot miss a package that `make demo`
no longer installs."""
import argparse
import ast
import importlib.util
import os
import re
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--source", required=True, help="the repository root")
ap.add_argument("--workdir")
args = ap.parse_args()
ROOT = args.source
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def group_packages(*groups):
    r = subprocess.run([os.path.join(ROOT, "scripts", "deps.sh"), "--list", *groups],
                       capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.split():
        sys.exit(f"scripts/deps.sh --list {' '.join(groups)}: exit {r.returncode}, {r.stderr}")
    return set(r.stdout.split())


def files_under(folder, suffixes):
    for base, dirs, names in os.walk(os.path.join(ROOT, folder)):
        dirs[:] = [d for d in dirs if d not in ("data", "corpus", "__pycache__")]
        for n in sorted(names):
            if n.endswith(suffixes):
                yield os.path.join(base, n)


# Modules of the repository itself, by name (dicomgen, torch_model, cli_check...),
# each with its files; a package of python/ (cbctiq) with every file in it.
LOCAL = {os.path.basename(p)[:-3]: [p] for folder in ("tests", "bench", "fuzz", "scripts")
         for p in files_under(folder, (".py",))}
for package in sorted(os.listdir(os.path.join(ROOT, "python"))):
    if os.path.exists(os.path.join(ROOT, "python", package, "__init__.py")):
        LOCAL[package] = list(files_under(os.path.join("python", package), (".py",)))


def python_imports(path):
    """Top-level module names a file imports: a Python file by its syntax
    tree, a shell script by the import statements of its embedded Python
    (here-documents and -c programs)."""
    text = open(path, encoding="utf-8").read()
    if path.endswith(".py"):
        names = set()
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
        return names
    names = set(re.findall(r"^\s*from\s+(\w+)[\w.]*\s+import\b", text, re.MULTILINE))
    for group in re.findall(r"(?:^|[;'\"(]\s*)import\s+(\w[\w.]*(?:\s*,\s*\w[\w.]*)*)", text,
                            re.MULTILINE):
        names |= {n.strip().split(".")[0] for n in group.split(",")}
    return names


def owning_package(module):
    """The Debian package that installed module, or None (with a failure)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return None
    r = subprocess.run(["dpkg", "-S", os.path.realpath(spec.origin)], capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run(["dpkg", "-S", spec.origin], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.splitlines()[0].split(": ")[0].split(", ")[0].split(":")[0]


def check_group(label, paths, allowed):
    seen_files, seen_modules = set(), {}
    todo = list(paths)
    while todo:
        path = todo.pop()
        if path in seen_files:
            continue
        seen_files.add(path)
        for module in python_imports(path):
            if module in sys.stdlib_module_names or module in seen_modules:
                continue
            if module in LOCAL:
                seen_modules[module] = "repository"
                todo.extend(LOCAL[module])
                continue
            pkg = owning_package(module)
            seen_modules[module] = pkg
            rel = os.path.relpath(path, ROOT)
            if pkg is None:
                fail(f"{rel} imports '{module}', which no installed Debian package provides")
            elif pkg not in allowed:
                fail(f"{rel} imports '{module}' from Debian package {pkg}, which is not in "
                     f"scripts/deps.sh's {label} groups")
    third_party = sorted(f"{m} ({p})" for m, p in seen_modules.items() if p != "repository")
    print(f"{label}: {len(seen_files)} files import {', '.join(third_party)}")
    return seen_modules


test_modules = check_group("build+test", list(files_under("tests", (".py",))) +
                           list(files_under("fuzz", (".py",))), group_packages("build", "test"))
bench_modules = check_group("build+bench", list(files_under("bench", (".py", ".sh"))),
                            group_packages("build", "bench"))
# The scan must see the references the suite is built on, or it scanned nothing.
for label, modules, must in (("tests", test_modules, ("numpy", "torch", "pydicom", "nibabel")),
                             ("benchmarks", bench_modules, ("torch", "scipy", "nibabel"))):
    for m in must:
        if m not in modules:
            fail(f"the {label} were expected to import {m}; the import scan found {sorted(modules)}")

readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
section = readme.split("## Dependencies, and why", 1)[-1].split("\n## ", 1)[0]
named = set(re.findall(r"`([a-z0-9][a-z0-9.+-]*)`", section))
for pkg in sorted(group_packages("build", "test", "bench") - named):
    fail(f"README.md's 'Dependencies, and why' does not name {pkg}")

r = subprocess.run([os.path.join(ROOT, "scripts", "deps.sh"), "--list", "no-such-group"],
                   capture_output=True, text=True)
if r.returncode != 2 or "unknown 'no-such-group'" not in r.stderr:
    fail(f"deps.sh with an unknown group: exit {r.returncode}, stderr {r.stderr!r}")

if failures:
    sys.exit(f"{len(failures)} failure(s)")
