"""What the MPI tests share: their arguments (a fresh work folder) and a
runner of cbctiq as one process (ranks 0) or under mpirun."""
import argparse
import os
import shutil
import subprocess
import sys


def parse_args():
    """--cbctiq BIN --mpirun MPIRUN --workdir DIR [--data DIR]; the work folder
    is emptied. --data: the repository's test data (tests/data)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data")
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    return args


def runner(args):
    """run(ranks, *cmd, expect_ok=True): cbctiq cmd as one process (ranks 0)
    or on that many ranks; a result other than expected ends the test."""
    mpi = [args.mpirun, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]

    def run(ranks, *cmd, expect_ok=True):
        line = ([*mpi, "-np", str(ranks)] if ranks else []) + [args.cbctiq, *cmd]
        p = subprocess.run(line, capture_output=True, text=True, timeout=300)
        if (p.returncode == 0) != expect_ok:
            sys.exit(f"{' '.join(line)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        return p
    return run
