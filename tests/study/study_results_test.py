"""Study results that used to be wrong with exit 0, on a small synthetic
cohort (make_cohort.py, 5 test volumes):
- test volumes without a consensus score (an id typo in the ratings, a
  category nobody rated) are named with the reason on stderr, in stats.json
  ("dropped") and in the report, and the statistics count only the others;
  a category left with fewer than 3 fails the study, naming the volumes;
- the printed poster's table at n = 3 (one category here) shows the exact
  permutation p (scipy.stats.permutation_test over all pairings), not the
  t-test's 0 as "0.0000"."""
import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from test_args import parse_test_args  # noqa: E402

args = parse_test_args()
work = args.workdir
failures = []


def run(*a):
    return subprocess.run([args.cbctiq] + list(a), capture_output=True, text=True, cwd=work)


def check(name, ok, detail=""):
    if not ok:
        failures.append(f"{name}: {detail}")


cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", cohort, "--n", "9",
                "--size", "32", "--slices", "8", "--test", "5", "--val", "2"], check=True)
ratings = list(csv.DictReader(open(os.path.join(cohort, "ratings.csv"))))


def write_ratings(name, rows):
    with open(os.path.join(cohort, name), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["volume_id", "rater", "category", "score"])
        w.writeheader()
        w.writerows(rows)


def study(name, ratings_csv):
    cfg = {"cohort": {"csv": "cohort/cohort.csv", "ratings": f"cohort/{ratings_csv}"},
           "train": {"width": 4, "depth": 2, "input_size": 16, "epochs": 1, "batch": 8},
           "stats": {"bootstrap": 50, "permutations": 50}, "sanity": {"enabled": False}}
    with open(os.path.join(work, name + ".json"), "w") as f:
        json.dump(cfg, f)
    return run("study", "--config", name + ".json", "--out", name, "--threads", "1", "--seed", "1")


# v00 is rated under a misspelt id; v02 has no parotid ratings.
typo = [dict(r, volume_id="v00x") if r["volume_id"] == "v00" else r for r in ratings]
typo = [r for r in typo if not (r["volume_id"] == "v02" and r["category"] == "parotid")]
write_ratings("ratings_typo.csv", typo)
r = study("typo", "ratings_typo.csv")
check("study with unrated test volumes exits 0", r.returncode == 0, r.stderr[-1500:])
if r.returncode == 0:
    warning = next((l for l in r.stderr.splitlines() if "left out of the statistics" in l), "")
    check("stderr names v00 and why", "'v00': no consensus score in any category" in warning
          and "spelled differently" in warning, r.stderr[-1500:])
    check("stderr names v02 and its category", "'v02': no consensus score in parotid" in warning,
          warning)
    st = json.load(open(os.path.join(work, "typo", "stats", "stats.json")))
    for cat, entry in st["categories"].items():
        left = [(d["volume_id"], d["reason"]) for d in entry.get("dropped", [])]
        want_ids = ["v00", "v02"] if cat == "parotid" else ["v00"]
        check(f"stats.json {cat} dropped", [v for v, _ in left] == want_ids, left)
        check(f"stats.json {cat} n", entry["n"] == 5 - len(want_ids), entry["n"])
        check(f"stats.json {cat} volumes", sorted(entry["volumes"]) ==
              sorted({"v00", "v01", "v02", "v03", "v04"} - set(want_ids)), entry["volumes"])
        check(f"stats.json {cat} reasons", all(why for _, why in left), left)
    table = {row["category"]: row for row in csv.DictReader(open(os.path.join(work, "typo", "stats", "table.csv")))}
    check("table.csv parotid n", table["parotid"]["n"] == "3", table["parotid"])
    check("table.csv overall n", table["overall"]["n"] == "4", table["overall"])
    # parotid keeps 3 volumes: its printed p is the exact permutation p.
    joined = [row for row in csv.DictReader(open(os.path.join(work, "typo", "stats", "joined.csv")))
              if row["category"] == "parotid"]
    x = np.array([float(row["ae"]) for row in joined])
    y = np.array([float(row["consensus"]) for row in joined])
    want = stats.permutation_test((x,), lambda xs: stats.spearmanr(xs, y).correlation,
                                  permutation_type="pairings", n_resamples=np.inf).pvalue
    got = table["parotid"]
    check("table.csv parotid p_perm is the exact permutation p", got.get("p_perm_exact") == "1" and
          abs(float(got.get("p_perm") or "nan") - want) < 1e-12, f"{got.get('p_perm')} vs scipy {want}")
    line = next((l for l in r.stdout.splitlines() if l.startswith("parotid ")), "")
    fields = line.replace("[", " ").replace("]", " ").replace(",", " ").split()
    check("printed parotid p is the exact p, %.2g", len(fields) > 5 and fields[5] == f"{want:.2g}",
          line)
    check("no p printed as 0.0000", not re.search(r"\b0\.0000\b", r.stdout), r.stdout)
    html = open(os.path.join(work, "typo", "report", "report.html")).read()
    check("the report names the left-out volumes", "left out of the statistics" in html and
          "&#39;v00&#39;: no consensus score in any category" in html, "no note")

# v01 unrated as well: parotid keeps 2 volumes, too few for a rank correlation.
write_ratings("ratings_two.csv", [r for r in typo if r["volume_id"] != "v01"])
r = study("two", "ratings_two.csv")
check("study with 2 rated test volumes fails", r.returncode == 1, f"exit {r.returncode}")
check("the error names the category, the count and the volumes",
      "category 'parotid': 2 test volumes with a consensus score, at least 3 are needed" in r.stderr
      and "'v01'" in r.stderr and "'v00'" in r.stderr, r.stderr[-1500:])

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study results test: all checks passed")
