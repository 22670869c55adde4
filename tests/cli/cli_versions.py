#!/usr/bin/python3
"""cli_versions.py - `cbctiq --version` names the libraries the program
really runs on: each version it prints must match the Debian package that
owns the shared object the dynamic linker loads for it (ldd + dpkg), and the
compiler's must match the one CMake built it with."""
import argparse
import os
import re
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir")
ap.add_argument("--compiler", required=True, help="CMAKE_C_COMPILER_ID")
ap.add_argument("--compiler-version", required=True)
args = ap.parse_args()

# component -> the start of the shared object's file name
SHARED_OBJECT = {"OpenBLAS": "libopenblas.so", "GSL": "libgsl.so", "DCMTK": "libdcmdata.so",
                 "nifti_clib": "libnifti2.so", "cJSON": "libcjson.so", "cairo": "libcairo.so",
                 "libpng": "libpng16.so", "zlib": "libz.so"}
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


out = subprocess.run([args.cbctiq, "--version"], capture_output=True, text=True, check=True).stdout
lines = out.splitlines()
printed = {}
for line in lines[1:]:
    m = re.match(r"  (\S+)\s+(.*)$", line)
    if not m:
        fail(f"unexpected line {line!r}")
        continue
    printed[m.group(1)] = m.group(2)
if not lines or not re.match(r"cbctiq \d+\.\d+\.\d+$", lines[0]):
    fail(f"first line {lines[:1]}")

loaded = {}
for line in subprocess.run(["ldd", args.cbctiq], capture_output=True, text=True,
                           check=True).stdout.splitlines():
    m = re.match(r"\s*(\S+) => (\S+)", line)
    if m:
        loaded[m.group(1)] = m.group(2)


def package_version(path):
    """Version of the Debian package that owns path (as linked or resolved)."""
    for p in (path, os.path.realpath(path)):
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            pkg = r.stdout.split(":")[0] if r.stdout.count(":") == 1 else \
                ":".join(r.stdout.split(":")[:2])
            v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                               text=True)
            if v.returncode == 0:
                return pkg, v.stdout
    return None, None


for component, prefix in SHARED_OBJECT.items():
    so = [path for name, path in loaded.items() if name.startswith(prefix)]
    if component not in printed:
        fail(f"{component} missing from --version")
        continue
    if not so:
        fail(f"{component}: no {prefix}* among the loaded libraries")
        continue
    pkg, debian = package_version(so[0])
    if debian is None:
        fail(f"{component}: no package owns {so[0]}")
        continue
    upstream = re.sub(r"^\d+:", "", debian)  # no epoch
    said = printed[component]
    if component == "OpenBLAS":
        said = said.split()[1]  # "OpenBLAS 0.3.21 <build options> (core ...)"
    if component == "nifti_clib":
        ok = said == f"Debian package {debian}"
    else:
        ok = upstream.startswith(said) and not upstream[len(said):len(said) + 1].isdigit()
    if not ok:
        fail(f"{component}: --version says {printed[component]!r}, {pkg} is {debian}")
    else:
        print(f"ok  {component:<11} {printed[component]}  ({pkg} {debian})")

word = {"GNU": "gcc", "Clang": "clang"}.get(args.compiler, args.compiler.lower())
if not printed.get("compiler", "").startswith(f"{word} {args.compiler_version}"):
    fail(f"compiler: --version says {printed.get('compiler')!r}, CMake built with "
         f"{args.compiler} {args.compiler_version}")
if not re.match(r"\d\.\d \(_OPENMP 20\d{4}\)$", printed.get("OpenMP", "")):
    fail(f"OpenMP: {printed.get('OpenMP')!r}")
if failures:
    sys.exit(f"{len(failures)} failures")
print("all versions match the loaded libraries' packages")
