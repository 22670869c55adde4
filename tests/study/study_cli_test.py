"""The study, train and predict commands as a user meets them: exit codes
(0 ok, 1 failure with "cbctiq: ..." naming file/key, 2 usage), the printed
configuration reading back as a config file, and predict's volume-level
rows being the mean of its per-slice rows (recomputed in numpy)."""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq", required=True)
ap.add_argument("--workdir", required=True)
args = ap.parse_args()
failures = []
work = args.workdir
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def run(*a):
    return subprocess.run([args.cbctiq] + list(a), capture_output=True, text=True, cwd=work)


def expect(name, r, code, needle=None):
    if r.returncode != code:
        failures.append(f"{name}: exit {r.returncode}, want {code}; stderr: {r.stderr.strip()}")
    elif needle and needle not in r.stderr:
        failures.append(f"{name}: stderr lacks '{needle}': {r.stderr.strip()}")


# --print-config is complete JSON that reads back unchanged.
r = run("study", "--print-config")
expect("print-config", r, 0)
cfg = json.loads(r.stdout)
for key in ["seed", "categories", "cohort", "train", "evaluate", "attrib", "stats", "atypical", "report"]:
    if key not in cfg:
        failures.append(f"--print-config lacks '{key}'")
with open(os.path.join(work, "full.json"), "w") as f:
    f.write(r.stdout)
r2 = run("study", "--config", "full.json", "--print-config")
expect("print-config round trip", r2, 0)
if json.loads(r2.stdout) != cfg:
    failures.append("printed config does not read back to itself")
cfg["train"]["epochs"] = 3
with open(os.path.join(work, "e3.json"), "w") as f:
    json.dump(cfg, f)
if json.loads(run("study", "--config", "e3.json", "--print-config").stdout)["train"]["epochs"] != 3:
    failures.append("config value not applied")
r = run("study", "--config", "e3.json", "--seed", "9", "--print-config")
if json.loads(r.stdout)["seed"] != 9:
    failures.append("--seed does not override the config")

with open(os.path.join(work, "bad.json"), "w") as f:
    json.dump({"train": {"epochs": 3, "learning_rate": 0.1}}, f)
expect("unknown key", run("study", "--config", "bad.json"), 1, "train.learning_rate")
expect("missing config", run("study", "--config", "nope.json"), 1, "nope.json")
expect("unknown option", run("study", "--bogus"), 2)
expect("bad threads", run("study", "--threads", "x"), 2, "--threads")
expect("train without inputs", run("train", "--out", "m"), 2, "--cohort")
expect("predict without volumes", run("predict", "--model", "m", "--out", "p.csv"), 2, "VOLUME")

# A cohort with a missing volume file: the study fails naming the file.
cohort = os.path.join(work, "cohort")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", cohort, "--n", "8",
                "--size", "32", "--slices", "8", "--test", "3", "--val", "1"], check=True)
tiny = {"width": 4, "depth": 2, "input_size": 16, "epochs": 1, "batch": 8}
with open(os.path.join(work, "tiny.json"), "w") as f:
    json.dump({"train": tiny}, f)
r = run("consensus", "--ratings", "cohort/ratings.csv", "--raters", "cohort/raters.csv", "--out", "cons.csv")
expect("consensus", r, 0)
r = run("train", "--cohort", "cohort/cohort.csv", "--consensus", "cons.csv", "--out", "model",
        "--config", "tiny.json", "--threads", "1", "--quiet")
expect("train", r, 0)
log = list(csv.DictReader(open(os.path.join(work, "model", "train_log.csv"))))
if len(log) != 1 or "val_mae_overall" not in log[0]:
    failures.append(f"train_log.csv: {log}")

if os.path.exists(os.path.join(work, "model", "permutation.csv")):
    failures.append("a plain train wrote permutation.csv")


# --permute-labels: labels deranged within each split (no volume keeps its
# own), seeded, written beside the model. cohort_perm.csv moves one train
# volume to val: 3 train and 2 val volumes (with 3 train volumes, seed 3 once
# drew the identity).
perm_rows = list(csv.DictReader(open(os.path.join(cohort, "cohort.csv"))))
perm_rows[4]["split"] = "val"
with open(os.path.join(cohort, "cohort_perm.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(perm_rows[0]))
    w.writeheader()
    w.writerows(perm_rows)


def permuted_train(seed, out):
    r = run("train", "--cohort", "cohort/cohort_perm.csv", "--consensus", "cons.csv", "--out", out,
            "--config", "tiny.json", "--threads", "1", "--permute-labels", "--seed", str(seed))
    expect(f"train --permute-labels --seed {seed}", r, 0, "labels permuted: 5 of 5 volumes")
    for f in ("model.json", "weights.safetensors", "train_log.csv", "permutation.csv"):
        if not os.path.exists(os.path.join(work, out, f)):
            failures.append(f"train --permute-labels: no {out}/{f}")
            return []
    perm = [(p["volume_id"], p["split"], p["labels_from"])
            for p in csv.DictReader(open(os.path.join(work, out, "permutation.csv")))]
    kept = [v for v, _, f in perm if v == f]
    if kept:
        failures.append(f"train --permute-labels --seed {seed}: {kept} keep their own labels")
    return perm


split_of = {c["volume_id"]: c["split"] for c in perm_rows}
perm = permuted_train(1, "perm1")
for s in ("train", "val"):
    mine = sorted(v for v, sp, _ in perm if sp == s)
    if mine != sorted(v for v, sp in split_of.items() if sp == s):
        failures.append(f"permutation.csv {s} volumes {mine}")
    if sorted(f for _, sp, f in perm if sp == s) != mine:
        failures.append(f"permutation.csv: {s} labels are not a permutation of the {s} volumes: {perm}")
if permuted_train(1, "perm1b") != perm:
    failures.append("the same seed gave another permutation")
if all(p == perm for p in [permuted_train(seed, f"perm{seed}") for seed in (2, 3)]):
    failures.append("seeds 1, 2 and 3 gave the same permutation")
# The plain cohort has a single val volume: no derangement, so no control.
r = run("train", "--cohort", "cohort/cohort.csv", "--consensus", "cons.csv", "--out", "perm_val1",
        "--config", "tiny.json", "--threads", "1", "--permute-labels", "--quiet")
expect("train --permute-labels, one val volume", r, 1, "the val split has a single volume")
if os.path.exists(os.path.join(work, "perm_val1", "model.json")):
    failures.append("train --permute-labels with one val volume wrote a model")
expect("--permute-labels takes no value", run("train", "--cohort", "cohort/cohort.csv", "--consensus",
       "cons.csv", "--out", "px", "--permute-labels=yes"), 2)

vols = [f"cohort/volumes/v0{i}.nii.gz" for i in range(3)]
expect("predict", run("predict", "--model", "model", "--out", "p.csv", "--quiet", *vols), 0)
expect("predict per slice", run("predict", "--model", "model", "--out", "ps.csv", "--per-slice",
                                "--batch", "3", "--quiet", *vols), 0)
vol = list(csv.DictReader(open(os.path.join(work, "p.csv"))))
sl = list(csv.DictReader(open(os.path.join(work, "ps.csv"))))
for row in vol:
    mine = [float(s["pred"]) for s in sl if s["volume_id"] == row["volume_id"] and s["category"] == row["category"]]
    if len(mine) != 8 or int(row["n_slices"]) != 8:
        failures.append(f"{row['volume_id']}: {len(mine)} slice rows, n_slices {row['n_slices']}")
    elif not np.isclose(float(row["pred"]), np.mean(mine), rtol=1e-6, atol=1e-6):
        failures.append(f"{row['volume_id']} {row['category']}: pred {row['pred']} != slice mean {np.mean(mine)}")
slices = sorted(int(s["slice"]) for s in sl if s["volume_id"] == "v00" and s["category"] == "overall")
if slices != list(range(8)):
    failures.append(f"per-slice indices {slices}")
expect("predict missing volume", run("predict", "--model", "model", "--out", "p2.csv", "nothere.nii.gz"),
       1, "nothere.nii.gz")
if os.path.exists(os.path.join(work, "p2.csv")):
    failures.append("a failed predict left p2.csv")

# A rating sheet as clinics keep it (wide: one row per volume and rater, a
# blank cell = not rated). One bad score: the cohort stage refuses it under
# the user's own file name before it copies anything. A good sheet that lacks
# a category of the categories option: named by the user's file too.
wide = {}
for row in csv.DictReader(open(os.path.join(cohort, "ratings.csv"))):
    wide.setdefault((row["volume_id"], row["rater"]), {})[row["category"]] = row["score"]
wide_cats = sorted({c for scores in wide.values() for c in scores})


def write_wide(name, bad_line):
    with open(os.path.join(cohort, name), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["volume_id", "rater", *wide_cats])
        for i, ((vid, rater), scores) in enumerate(wide.items()):
            cells = [scores.get(c, "") for c in wide_cats]
            if i % 3 == 1:
                cells[0] = ""  # not rated
            if i + 2 == bad_line:
                cells[-1] = "9"
            w.writerow([vid, rater, *cells])


write_wide("wide_bad.csv", 4)
write_wide("wide_good.csv", 0)
for name, extra, fragment in [("wide_bad", {}, "cohort/wide_bad.csv:4: column"),
                              ("wide_good", {"categories": [*wide_cats, "nosuch"]},
                               "cohort/wide_good.csv: no ratings in category 'nosuch'")]:
    with open(os.path.join(work, name + ".json"), "w") as f:
        json.dump({"cohort": {"csv": "cohort/cohort.csv", "ratings": f"cohort/{name}.csv"},
                   "train": tiny, **extra}, f)
    r = run("study", "--config", name + ".json", "--out", name, "--quiet")
    expect(f"study with {name}.csv", r, 1, fragment)
    if f"{name}/cohort/ratings.csv" in r.stderr:
        failures.append(f"study with {name}.csv names the study's copy: {r.stderr.strip()}")
if os.path.exists(os.path.join(work, "wide_bad", "cohort", "ratings.csv")):
    failures.append("a bad rating sheet was copied into the study")

os.remove(os.path.join(cohort, "volumes", "v05.nii.gz"))
with open(os.path.join(work, "s.json"), "w") as f:
    json.dump({"cohort": {"csv": "cohort/cohort.csv"}, "train": tiny}, f)
expect("study with a missing volume", run("study", "--config", "s.json", "--out", "o", "--quiet"), 1,
       "v05.nii.gz")

# A cohort without a split column: the study assigns round(n 0.5) train,
# round(n 0.17) val and the rest test, the same for the same seed.
nosplit = os.path.join(work, "nosplit")
subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", nosplit, "--n", "8",
                "--size", "32", "--slices", "8", "--no-split"], check=True)
with open(os.path.join(work, "ns.json"), "w") as f:
    json.dump({"cohort": {"csv": "nosplit/cohort.csv"}, "train": tiny,
               "stats": {"bootstrap": 50, "permutations": 50}, "sanity": {"enabled": False}}, f)
splits = []
for out, seed in [("ns1", "1"), ("ns2", "1"), ("ns3", "2")]:
    r = run("study", "--config", "ns.json", "--out", out, "--seed", seed, "--quiet", "--threads", "1")
    expect(f"study on a cohort without split ({out})", r, 0)
    rows = list(csv.DictReader(open(os.path.join(work, out, "cohort", "cohort.csv"))))
    splits.append([r["split"] for r in rows])
    counts = {k: splits[-1].count(k) for k in ("train", "val", "test")}
    if counts != {"train": 4, "val": 1, "test": 3}:
        failures.append(f"assigned split counts {counts}")
if splits[0] != splits[1]:
    failures.append("the same seed assigned different splits")
# sanity.enabled = false: the stage leaves header-only tables and the report says so.
if len(open(os.path.join(work, "ns1", "sanity", "sanity.csv")).read().splitlines()) != 1:
    failures.append("sanity.enabled = false still wrote sanity rows")
if "sanity checks were off" not in open(os.path.join(work, "ns1", "report", "report.html")).read():
    failures.append("the report does not say the sanity checks were off")

# The same study with the sanity checks on: its single val volume has no
# derangement, so the permuted-labels control is skipped, not run on the
# true labels; the stage line and the report's sanity section say why.
with open(os.path.join(work, "ns_sanity.json"), "w") as f:
    json.dump({"cohort": {"csv": "nosplit/cohort.csv"}, "train": tiny,
               "stats": {"bootstrap": 50, "permutations": 50},
               "sanity": {"methods": "gradcam", "max_slices": 2}}, f)
r = run("study", "--config", "ns_sanity.json", "--out", "ns_sanity", "--seed", "1", "--threads", "1")
skip_note = "no permuted-labels test: the val split has a single volume"
expect("study with one val volume and sanity on", r, 0, skip_note)
if r.returncode == 0:
    if skip_note not in open(os.path.join(work, "ns_sanity", "report", "report.html")).read():
        failures.append("the report does not say why the permuted-labels test did not run")
    if os.path.exists(os.path.join(work, "ns_sanity", "sanity", "permuted_model")):
        failures.append("a permuted model was trained for a split of one volume")
    tests = {row["test"] for row in csv.DictReader(open(os.path.join(work, "ns_sanity", "sanity", "sanity.csv")))}
    if tests != {"cascade"}:
        failures.append(f"sanity.csv tests {tests}, want only the cascade")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study CLI test: all checks passed")
