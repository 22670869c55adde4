"""ratings_wide_oracle.py - a rating sheet as clinics keep it (one row per
volume and rater, one column per category, a blank cell = not rated) gives
exactly what the long sheet without those blank ratings gives: the long sheet
is made from the wide one by pandas (DataFrame.stack, which drops the blanks),
and `cbctiq consensus` and `cbctiq agreement` must write byte-identical files
from both. The consensus is also checked against np.average over the wide
sheet's non-blank cells (to 1e-12), so two equally wrong readings cannot
pass. The sheet has blank cells, a row of blanks only, a rater whose first
row is blank and its columns in an unusual order."""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd

CATEGORIES = ["parotid", "submandibular", "larynx", "mandible", "overall"]


def make_wide(rng):
    rows = []
    for v in range(9):
        for r in range(4):
            scores = [float(rng.integers(1, 6)) if rng.random() > 0.3 else np.nan for _ in CATEGORIES]
            rows.append([f"vol{v:02d}", f"rater{r}", *scores])
    rows[1][2:] = [np.nan] * len(CATEGORIES)  # vol00/rater1 rated nothing
    rows[5][4] = 2.5                           # a score between the Likert steps
    wide = pd.DataFrame(rows, columns=["volume_id", "rater", *CATEGORIES])
    # Columns are found by name: the ids need not come first.
    return wide[["rater", "parotid", "volume_id", *CATEGORIES[1:]]]


def write_wide(wide, path):
    """CRLF lines, a row of blanks only and a blank cell holding a space."""
    lines = wide.to_csv(index=False, na_rep="", float_format="%g").splitlines()
    lines.insert(4, "," * (len(wide.columns) - 1))
    spaced = next(i for i in range(1, len(lines)) if ",," in lines[i] and lines[i].strip(","))
    lines[spaced] = lines[spaced].replace(",,", ", ,", 1)
    with open(path, "w", newline="") as f:
        f.write("\r\n".join(lines) + "\r\n")


def long_from_wide(wide):
    stacked = wide.set_index(["volume_id", "rater"])[CATEGORIES].stack(dropna=True)
    long = stacked.rename("score").reset_index().rename(columns={"level_2": "category"})
    return long[["volume_id", "rater", "category", "score"]]


def run(cbctiq, *args):
    p = subprocess.run([cbctiq, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"cbctiq {' '.join(args)} failed ({p.returncode}): {p.stderr}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    rng = np.random.default_rng(15)
    wide = make_wide(rng)
    long = long_from_wide(wide)
    weights = pd.DataFrame({"rater": [f"rater{r}" for r in range(4)], "weight": [1.0, 2.0, 0.5, 1.5]})
    paths = {name: os.path.join(a.workdir, name + ".csv") for name in ("wide", "long", "raters")}
    write_wide(wide, paths["wide"])
    long.to_csv(paths["long"], index=False, float_format="%g")
    weights.to_csv(paths["raters"], index=False)
    failures = []
    outputs = {}
    for layout in ("wide", "long"):
        cons = os.path.join(a.workdir, f"consensus_{layout}.csv")
        agr = os.path.join(a.workdir, f"agreement_{layout}.csv")
        js = os.path.join(a.workdir, f"agreement_{layout}.json")
        run(a.cbctiq, "consensus", "--ratings", paths[layout], "--raters", paths["raters"], "--out", cons)
        run(a.cbctiq, "agreement", "--ratings", paths[layout], "--raters", paths["raters"], "--out", agr,
            "--json", js)
        outputs[layout] = (cons, agr, js)
    for wide_file, long_file in zip(outputs["wide"], outputs["long"]):
        if not filecmp.cmp(wide_file, long_file, shallow=False):
            failures.append(f"{os.path.basename(wide_file)} differs from {os.path.basename(long_file)}")

    got = pd.read_csv(outputs["wide"][0])
    w = dict(zip(weights.rater, weights.weight))
    expected_rows = 0
    for (vol, cat), group in long.groupby(["volume_id", "category"]):
        expected_rows += 1
        want = np.average(group.score, weights=[w[r] for r in group.rater])
        row = got[(got.volume_id == vol) & (got.category == cat)]
        if len(row) != 1:
            failures.append(f"{vol}/{cat}: {len(row)} rows in consensus.csv, expected 1")
        elif abs(row.consensus.iloc[0] - want) > 1e-12 or row.n_raters.iloc[0] != len(group):
            failures.append(f"{vol}/{cat}: consensus {row.consensus.iloc[0]} of {row.n_raters.iloc[0]}, "
                            f"expected {want} of {len(group)}")
    if len(got) != expected_rows:
        failures.append(f"consensus.csv has {len(got)} rows, expected {expected_rows}")
    if long.score.size >= wide[CATEGORIES].size:
        failures.append("the sheet has no blank cell: the test would prove nothing")
    for f in failures:
        print("FAIL", f)
    print(f"{long.score.size} ratings of {wide[CATEGORIES].size} cells; {expected_rows} consensus rows"
          + ("" if failures else "; wide == long"))
    sys.exit(1 if failures else 0)


main()
