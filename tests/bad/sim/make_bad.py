#!/usr/bin/python3
"""make_bad.py MODEL GEN VOL SIM - inputs for simulate's bad cases."""
import os
import sys

gen = sys.argv[2]
os.makedirs(os.path.join(gen, "empty_dir"), exist_ok=True)
open(os.path.join(gen, "not_nifti.nii"), "w").write("this is not a NIfTI file\n" * 20)
# A folder that already holds something: simulate must not write into it.
os.makedirs(os.path.join(gen, "not_empty"), exist_ok=True)
open(os.path.join(gen, "not_empty", "notes.txt"), "w").write("a user's file\n")
