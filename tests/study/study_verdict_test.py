"""The study's verdict (stats.json "verdict", stdout, stderr, the report's
first section) on two small synthetic cohorts (make_cohort.py), recomputed
with SciPy from the study's own ae.csv, consensus.csv and cohort.csv:

- train.lr = 0 (a model that learns nothing) on 5 test volumes of which
  some have 8 slices and some 16: the verdict says the model does not beat
  the constant training-mean predictor, that its prediction is nearly
  constant and that AE tracks the slice count; `warning:` lines on stderr,
  the same list in stats.json; no partial correlation (df = 5 - 2 - 2 = 1,
  null with a reason), no atypical flags (n < 10); the report's first
  section is the verdict and the table is no longer simply "the poster's";
  a cached rerun prints the same;
- that model with the mandible row of its head zeroed (given as
  train.model): AE is exactly zero there; the verdict says AE is undefined,
  stats.json has null with a reason, nothing (stage lines included) prints
  `nan`, exit 0;
- a model that learns (12 test volumes): the verdict says it beats the
  baseline in every category, with no warning, and the report calls the
  table the poster's.
The per-category numbers (training mean, MAE, one-sided Wilcoxon p, SD ratio,
rho(AE, n_slices)) are checked against scipy.stats.wilcoxon / spearmanr."""
import csv
import json
import os
import re
import shutil
import struct
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
CATS = ["parotid", "submandibular", "larynx", "mandible", "overall"]


def check(name, ok, detail=""):
    if not ok:
        failures.append(f"{name}: {detail}")


def make_cohort(out, n, test, val, slices, seed):
    subprocess.run([sys.executable, os.path.join(HERE, "make_cohort.py"), "--out", out, "--n", str(n),
                    "--size", "32", "--slices", str(slices), "--test", str(test), "--val", str(val),
                    "--seed", str(seed)], check=True)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def merged_cohort(out):
    """Two make_cohort cohorts (8 and 16 slices) in one: 5 test volumes."""
    make_cohort(os.path.join(work, "a"), 8, 3, 1, 8, 3)
    make_cohort(os.path.join(work, "b"), 8, 2, 1, 16, 4)
    os.makedirs(out)
    rows, ratings = [], []
    for part, prefix in (("a", "a"), ("b", "b")):
        src = os.path.join(work, part)
        for sub in ("volumes", "labels"):
            shutil.copytree(os.path.join(src, sub), os.path.join(out, sub), dirs_exist_ok=True)
            for name in os.listdir(os.path.join(src, sub)):
                os.rename(os.path.join(out, sub, name), os.path.join(out, sub, prefix + name))
        for r in read_csv(os.path.join(src, "cohort.csv")):
            rows.append({"volume_id": prefix + r["volume_id"], "path": f"volumes/{prefix}{r['volume_id']}.nii.gz",
                         "mask": f"labels/{prefix}{r['volume_id']}.nii.gz", "split": r["split"]})
        ratings += [dict(r, volume_id=prefix + r["volume_id"]) for r in read_csv(os.path.join(src, "ratings.csv"))]
    shutil.copy(os.path.join(work, "a", "labels.json"), out)
    shutil.copy(os.path.join(work, "a", "raters.csv"), out)
    for name, table in (("cohort.csv", rows), ("ratings.csv", ratings)):
        with open(os.path.join(out, name), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)


def study(name, cohort, lr, model=None, quiet=True):
    cfg = {"cohort": {"csv": f"{cohort}/cohort.csv"},
           "train": {"width": 8, "depth": 2, "input_size": 32, "epochs": 8, "batch": 8, "lr": lr},
           "stats": {"bootstrap": 50, "permutations": 50}, "sanity": {"enabled": False}}
    if model:
        cfg["train"] = {"model": model}
    with open(os.path.join(work, name + ".json"), "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([args.cbctiq, "study", "--config", name + ".json", "--out", name, "--threads", "1",
                        "--seed", "1"] + (["--quiet"] if quiet else []), capture_output=True, text=True, cwd=work)
    check(f"{name}: exit 0", r.returncode == 0, r.stderr[-2000:])
    return r


def recompute(out, cat):
    """The verdict's numbers for one category from the study's files."""
    split = {r["volume_id"]: r["split"] for r in read_csv(os.path.join(out, "cohort", "cohort.csv"))}
    cons = {r["volume_id"]: float(r["consensus"]) for r in read_csv(os.path.join(out, "consensus", "consensus.csv"))
            if r["category"] == cat and r["consensus"] not in ("", "nan")}
    ae = [r for r in read_csv(os.path.join(out, "attrib", "ae.csv")) if r["category"] == cat]
    base = np.mean([c for v, c in cons.items() if split[v] == "train"])
    rows = [r for r in ae if split[r["volume_id"]] == "test" and r["volume_id"] in cons]
    y = np.array([cons[r["volume_id"]] for r in rows])
    pred = np.array([float(r["pred"]) for r in rows])
    a = np.array([float(r["ae"]) for r in rows])
    ns = np.array([float(r["n_slices"]) for r in rows])
    e_model, e_base = np.abs(pred - y), np.abs(base - y)
    d = e_model - e_base
    nz = d[d != 0]
    exact = len(nz) == len(d) <= 50 and len(np.unique(np.abs(nz))) == len(nz)
    p = stats.wilcoxon(e_model, e_base, zero_method="wilcox", correction=False, alternative="less",
                       method="exact" if exact else "approx").pvalue
    ratio = np.std(pred, ddof=1) / np.std(y, ddof=1)
    rho_c = stats.spearmanr(a, y).statistic if np.ptp(a) > 0 else np.nan
    rho_n = stats.spearmanr(a, ns).statistic if np.ptp(ns) > 0 and np.ptp(a) > 0 else np.nan
    return {"n": len(rows), "baseline_pred": base, "mae": e_model.mean(), "baseline_mae": e_base.mean(),
            "p": p, "sd_ratio": ratio, "rho_ae_n_slices": rho_n, "rho_ae_consensus": rho_c,
            "varies": ratio >= 0.1, "beats": p < 0.05 and ratio >= 0.1,
            "tracks": bool(np.isfinite(rho_n) and abs(rho_n) >= 0.5 and not abs(rho_c) > abs(rho_n)),
            "ae_defined": bool(np.all(np.isfinite(a)) and np.ptp(a) > 0)}


def close(name, got, want, tol=1e-9):
    ok = (got is None and not np.isfinite(want)) or (got is not None and abs(got - want) <= tol * max(1, abs(want)))
    check(name, ok, f"{got} vs {want}")


def check_verdict(name, out):
    st = json.load(open(os.path.join(work, out, "stats", "stats.json")))
    v = st.get("verdict", {})
    cats = v.get("categories", {})
    want = {c: recompute(os.path.join(work, out), c) for c in CATS}
    for c in CATS:
        got, w = cats.get(c, {}), want[c]
        check(f"{name} {c} n", got.get("n") == w["n"], got.get("n"))
        for key in ("baseline_pred", "mae", "baseline_mae", "sd_ratio", "rho_ae_n_slices", "rho_ae_consensus"):
            close(f"{name} {c} {key}", got.get(key), w[key])
        close(f"{name} {c} wilcoxon p", got.get("wilcoxon", {}).get("p"), w["p"], 1e-12)
        check(f"{name} {c} beats_baseline", got.get("beats_baseline") == w["beats"], got.get("beats_baseline"))
        check(f"{name} {c} prediction_varies", got.get("prediction_varies") == w["varies"], got)
        check(f"{name} {c} ae_tracks_slice_count", got.get("ae_tracks_slice_count") == w["tracks"], got)
        check(f"{name} {c} ae_defined", got.get("ae_defined") == w["ae_defined"], got)
    check(f"{name} model_beats_baseline", v.get("model_beats_baseline") == all(w["beats"] for w in want.values()), v)
    check(f"{name} prediction_varies", v.get("prediction_varies") == all(w["varies"] for w in want.values()), v)
    check(f"{name} ae_tracks_slice_count",
          v.get("ae_tracks_slice_count") == any(w["tracks"] and w["ae_defined"] for w in want.values()), v)
    return st, v


def stderr_warnings(r):
    return [line[len("warning: "):] for line in r.stderr.splitlines() if line.startswith("warning: ")]


# ---- a model that learns nothing ----------------------------------------------------------
merged_cohort(os.path.join(work, "mixed"))
r = study("lr0", "mixed", 0)
st, v = check_verdict("lr0", "lr0")
check("lr0: the model does not beat the baseline", v.get("model_beats_baseline") is False, v)
check("lr0: its prediction is nearly constant", v.get("prediction_varies") is False, v)
check("lr0: AE tracks the slice count", v.get("ae_tracks_slice_count") is True, v)
lines = r.stdout.splitlines()
check("lr0: the verdict comes first on stdout",
      lines and lines[0].startswith("verdict: model beats the constant training-mean predictor: no"), r.stdout)
warned = stderr_warnings(r)
check("lr0: warning: lines on stderr are stats.json's warnings", warned and warned == v.get("warnings"),
      f"{warned} vs {v.get('warnings')}")
for lead in ("the model does not beat the constant training-mean predictor",
             "the model's prediction is nearly constant", "AE tracks the slice count", "few test volumes",
             "no partial correlation"):
    check(f"lr0: warning '{lead}'", any(w.startswith(lead) for w in warned), warned)
for c in CATS:
    pa = st["categories"][c].get("partial_spearman", {})
    check(f"lr0 {c}: no partial correlation at df 1", pa.get("rho") is None and pa.get("df") == 1 and
          "degrees of freedom" in pa.get("reason", ""), pa)
check("lr0: no atypical flags below 10 volumes",
      read_csv(os.path.join(work, "lr0", "atypical", "atypical.csv")) == [], "atypical.csv has rows")
html = open(os.path.join(work, "lr0", "report", "report.html")).read()
i_verdict = html.find("Verdict: does the model learn")
i_table = html.find("The poster&#39;s table, to be read with the verdict&#39;s warnings")
check("lr0: the report opens with the verdict, then the qualified table", 0 <= i_verdict < i_table,
      (i_verdict, i_table))
check("lr0: the report says it in words", "does not beat the constant predictor" in html and
      "Warning: the model does not beat" in html, "")
again = subprocess.run([args.cbctiq, "study", "--config", "lr0.json", "--out", "lr0", "--threads", "1", "--seed", "1",
                        "--quiet"], capture_output=True, text=True, cwd=work)
check("lr0: a cached rerun prints the same verdict and warnings",
      again.stdout == r.stdout and stderr_warnings(again) == warned, again.stderr[-1000:])

# ---- a model whose mandible output ignores the image: AE exactly zero ------------------------
shutil.copytree(os.path.join(work, "lr0", "train", "model"), os.path.join(work, "zero_head"))
weights = os.path.join(work, "zero_head", "weights.safetensors")
blob = bytearray(open(weights, "rb").read())
header_len = struct.unpack("<Q", blob[:8])[0]
head = json.loads(blob[8:8 + header_len])["head.weight"]
rows, cols = head["shape"]
row = json.load(open(os.path.join(work, "zero_head", "model.json")))["outputs"].index("mandible")
start = 8 + header_len + head["data_offsets"][0] + row * cols * 4
blob[start:start + cols * 4] = bytes(cols * 4)
open(weights, "wb").write(blob)
r = study("zeroae", "mixed", 0, model="zero_head", quiet=False)  # the stage lines too
st, v = check_verdict("zeroae", "zeroae")
mand = v.get("categories", {}).get("mandible", {})
check("zeroae: AE undefined in mandible", mand.get("ae_defined") is False and "zero" in mand.get("ae_reason", ""), mand)
check("zeroae: rho null with a reason", st["categories"]["mandible"].get("rho") is None and
      isinstance(st["categories"]["mandible"].get("reason"), str), st["categories"]["mandible"].get("reason"))
check("zeroae: warned", any(w.startswith("AE is undefined in mandible (zero") for w in stderr_warnings(r)), r.stderr[-2000:])
texts = {"stdout": r.stdout, "stderr": r.stderr,
         "stats.json": open(os.path.join(work, "zeroae", "stats", "stats.json")).read(),
         "table.csv": open(os.path.join(work, "zeroae", "stats", "table.csv")).read()}
for what, text in texts.items():
    check(f"zeroae: no nan in {what}", not re.search(r"\bnan\b", text, re.IGNORECASE), text[-1500:])

# ---- a model that learns ------------------------------------------------------------------
make_cohort(os.path.join(work, "learn"), 26, 12, 2, 8, 3)
r = study("learns", "learn", 0.003)
st, v = check_verdict("learns", "learns")
check("learns: the model beats the baseline", v.get("model_beats_baseline") is True, v)
check("learns: no warning", v.get("warnings") == [] and stderr_warnings(r) == [], v.get("warnings"))
check("learns: stdout", r.stdout.startswith("verdict: model beats the constant training-mean predictor: yes")
      and "verdict: no warnings" in r.stdout, r.stdout[:600])
html = open(os.path.join(work, "learns", "report", "report.html")).read()
check("learns: the report calls it the poster's table", "The poster&#39;s table" in html and
      "to be read with the verdict" not in html, "")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("study verdict test: all checks passed")
