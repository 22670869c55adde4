#!/usr/bin/python3
"""Installs the Python package from the repository root into --target with
Debian's pip, offline and without build isolation (the README's install
line), taking the library of the build tree --build; then imports it from
there in a fresh interpreter and checks that it is the copy just installed,
carrying its own libcbctiq.so."""
import argparse
import os
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
         "print(os.path.dirname(cbctiq.__file__)); print(L._find_library())")
r = subprocess.run([sys.executable, "-c", probe], env=dict(env, PYTHONPATH=a.target),
                   capture_output=True, text=True, cwd="/")
if r.returncode != 0:
    sys.exit(f"FAIL: import cbctiq from {a.target}: {r.stderr}")
package, library = r.stdout.split()
want = os.path.join(os.path.realpath(a.target), "cbctiq")
if os.path.realpath(package) != want or os.path.dirname(os.path.realpath(library)) != want:
    sys.exit(f"FAIL: imported {package} with {library}, expected both under {want}")
print(f"ok: cbctiq installed in {want} with {os.path.basename(library)}")
