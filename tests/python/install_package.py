#!/usr/bin/python3
"""Installs the Python package from the repository root into --target with
Debian's pip, offline and without build isolation (the README's install
line), taking the library of the build tree --build; then imports it from
there in a fresh interpreter and checks that it is the copy just installed,
carrying its own libcbctiq.so and CMake's project version."""
import argparse
import os
import re
import shutil
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--source", required=True)
ap.add_argument("--build", required=True)
ap.add_argument("--target", required=True)
a = ap.parse_args()

shutil.rmtree(a.target, ignore_errors=True)
env = dict(os.environ, CBCTIQ_BUILD_DIR=a.build, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
env.pop("CBCTIQ_LIBRARY", None)
r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                    "--target", a.target, a.source], env=env, capture_output=True, text=True)
print(r.stdout[-3000:], r.stderr[-3000:])
if r.returncode != 0:
    sys.exit(f"FAIL: pip install exited {r.returncode}")
probe = ("import cbctiq, cbctiq._lib as L, os; "
         "print(os.path.dirname(cbctiq.__file__)); print(L._find_library()); print(cbctiq.__version__)")
r = subprocess.run([sys.executable, "-c", probe], env=dict(env, PYTHONPATH=a.target),
                   capture_output=True, text=True, cwd="/")
if r.returncode != 0:
    sys.exit(f"FAIL: import cbctiq from {a.target}: {r.stderr}")
package, library, version = r.stdout.split()
want = os.path.join(os.path.realpath(a.target), "cbctiq")
if os.path.realpath(package) != want or os.path.dirname(os.path.realpath(library)) != want:
    sys.exit(f"FAIL: imported {package} with {library}, expected both under {want}")
cmake = open(os.path.join(a.source, "CMakeLists.txt"), encoding="utf-8").read()
project_version = re.search(r"project\(cbctiq VERSION ([0-9.]+)", cmake).group(1)
if version != project_version:
    sys.exit(f"FAIL: cbctiq.__version__ is {version}, CMake's project version {project_version}")
print(f"ok: cbctiq installed in {want} with {os.path.basename(library)}")
