#!/usr/bin/python3
"""The commands that run the network (`cbctiq ae` here in detail, `predict`
as another) run their OpenMP threads with OMP_WAIT_POLICY=passive (idle
workers sleep instead of spinning) unless the user chose a wait policy, as
libgomp itself reports it (OMP_DISPLAY_ENV=verbose, printed while the
library starts: the last report is the process that did the work); with
--threads 1 and for commands that only read and write files nothing
changes; ae.csv is the same bytes under either policy."""
import argparse
import os
import re
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np

failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


def reports(stderr):
    """libgomp's (OMP_WAIT_POLICY, GOMP_SPINCOUNT) reports, in order."""
    return re.findall(r"OMP_WAIT_POLICY = '(\w+)'.*?GOMP_SPINCOUNT = '(\d+)'", stderr, re.S)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    wd = a.workdir
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    model = os.path.join(wd, "model")
    subprocess.run([a.cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "3",
                    "--input", "32", "--out", model, "--quiet"], check=True)
    hu = np.random.default_rng(5).normal(0, 400, (32, 32, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(hu, np.diag([-1.0, -1.0, 2.0, 1.0])), os.path.join(wd, "v1.nii.gz"))
    with open(os.path.join(wd, "cohort.csv"), "w") as f:
        f.write("volume_id,path\nv1,v1.nii.gz\n")

    def ae(out, extra_env, *args):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env.update(extra_env, OMP_DISPLAY_ENV="verbose")
        run = subprocess.run([a.cbctiq, "ae", "--model", model, "--cohort", os.path.join(wd, "cohort.csv"),
                              "--out", os.path.join(wd, out), "--quiet", *args],
                             env=env, capture_output=True, text=True)
        check(f"{out}: exit 0", run.returncode == 0, run.stderr[-300:] if run.returncode else "")
        return reports(run.stderr)

    got = ae("default.csv", {}, "--threads", "2")
    check("default, 2 threads: the working process is passive", got and got[-1] == ("PASSIVE", "0"), str(got))
    got = ae("active.csv", {"OMP_WAIT_POLICY": "active"}, "--threads", "2")
    check("the user's OMP_WAIT_POLICY=active is kept", got == [("ACTIVE", "30000000000")], str(got))
    got = ae("spin.csv", {"GOMP_SPINCOUNT": "1234"}, "--threads", "2")
    check("the user's GOMP_SPINCOUNT is kept", len(got) == 1 and got[0][1] == "1234", str(got))
    got = ae("one.csv", {}, "--threads", "1")
    check("--threads 1: libgomp's default, not re-executed", len(got) == 1 and got[0][1] == "300000", str(got))
    same = [open(os.path.join(wd, f), "rb").read() for f in ("default.csv", "active.csv", "spin.csv", "one.csv")]
    check("ae.csv is the same bytes under every policy", all(s == same[0] for s in same) and len(same[0]) > 0)

    env = dict(os.environ, OMP_DISPLAY_ENV="verbose")
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GOMP_SPINCOUNT", None)
    pred = subprocess.run([a.cbctiq, "predict", "--model", model, "--out", os.path.join(wd, "pred.csv"),
                           "--threads", "2", "--quiet", os.path.join(wd, "v1.nii.gz")],
                          env=env, capture_output=True, text=True)
    got = reports(pred.stderr)
    check("predict, 2 threads: the working process is passive",
          pred.returncode == 0 and got and got[-1] == ("PASSIVE", "0"), str(got) + pred.stderr[-300:])
    info = subprocess.run([a.cbctiq, "model", "info", model], env=env, capture_output=True, text=True)
    got = reports(info.stderr)
    check("other commands keep libgomp's default", info.returncode == 0 and len(got) == 1
          and got[0][1] == "300000", str(got))
    if failures:
        print(f"{len(failures)} check(s) failed: {failures}")
        sys.exit(1)


if __name__ == "__main__":
    main()
