"""test_args.py - the arguments every Python test gets from CMake
(cbq_add_oracle_test): --cbctiq (the program) and --workdir (its own
folder), which is emptied first, so that a file left by an earlier run can
never stand in for this run's output."""
import argparse
import os
import shutil


def parse_test_args(configure=None):
    """Parse --cbctiq and --workdir (plus what `configure(parser)` adds),
    recreate the work folder empty, and return the parsed arguments."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    if configure:
        configure(ap)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    return args
