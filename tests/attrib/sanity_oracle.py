#!/usr/bin/python3
"""`cbctiq sanity` against PyTorch: every number of sanity.csv recomputed.

The cascading model randomisation (Adebayo et al. 2018) is rebuilt here:
randomise_dump writes the weights cbctiq re-initialises layers with (its
PyTorch-default init from --seed); step s of the cascade takes the top s
parametrised layers from them and the rest from the trained model. For each
method, step and category the oracle recomputes the maps of every volume's
tested slices (target-layer grid for CAM methods, input grid for pixel
methods), the Spearman rank correlation (average ranks for ties) with the
trained model's maps, the AE ratio random/trained, their medians over
volumes, the means, the pooled median over categories and volumes and the
flag. The data-randomisation test gets a genuinely different model (another
initialisation with other batch-norm statistics) in place of one trained on
permuted labels, and its rows are recomputed the same way.

The energy columns are recomputed with nibabel/numpy: each model's
input-grid maps of the tested slices put on the volume's grid (other slices
0), the share of their sum inside the category's structure from the label
masks that nibabel reads (ae.csv's energy_in_structure), its median over
volumes for the trained model and the compared one, and the change. A
category with no structure in any volume (submandibular, overall) must give
empty cells with the reason no_structure; a volume without a mask counts as
having none.

The volumes are canonical (affine diag(-dx, -dy, dz)) and already of the
model's input size, so they reach the network unresampled."""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gradcam_oracle import torch_cam  # noqa: E402
from torch_model import Net, read_safetensors, write_safetensors  # noqa: E402

PARAM_TYPES = ("conv2d", "batchnorm2d", "linear")
METHODS = ("gradcam", "gradcam++", "gradxinput")  # hirescam, xgradcam rank like gradcam before a global pool
RHO_TOL = 1e-3    # absolute; a near-zero map value can fall on either side of the ReLU in float32 (seen: 7e-5)
RATIO_TOL = 1e-4  # relative
ENERGY_TOL = 1e-6  # absolute, on a share in [0, 1] (seen: 1.2e-7)
STRUCT_LABELS = {"parotid": [1, 2], "submandibular": [3], "larynx": [5], "mandible": [4]}
failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


def make_model(cbctiq, d, seed, stats_seed):
    """An iqnet-s whose batch norms carry non-default statistics, so that
    re-initialising a batch norm changes the network, and whose head weights
    are positive, as after training on scores that rise with the features:
    its Grad-CAM maps are not all clipped to zero, so every rank correlation
    with them is defined."""
    subprocess.run([cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--depth", "3",
                    "--input", "32", "--seed", str(seed), "--out", d, "--quiet"], check=True)
    w = read_safetensors(f"{d}/weights.safetensors")
    rng = np.random.default_rng(stats_seed)
    for k in list(w):
        if k.endswith("running_mean"):
            w[k] = rng.normal(0, 0.2, w[k].shape).astype(np.float32)
        elif k.endswith("running_var"):
            w[k] = rng.uniform(0.5, 1.5, w[k].shape).astype(np.float32)
        elif ".bn" in k and k.endswith((".weight", ".bias")):
            w[k] = rng.normal(1.0 if k.endswith("weight") else 0.1, 0.3, w[k].shape).astype(np.float32)
        elif k == "head.weight":
            w[k] = np.abs(w[k])
    write_safetensors(f"{d}/weights.safetensors", w)


def tested_slices(nz, max_slices):
    """Evenly spaced slices: index (nz (2i + 1)) // (2n), as `--max-slices` documents."""
    n = min(nz, max_slices) if max_slices else nz
    return [(nz * (2 * i + 1)) // (2 * n) for i in range(n)]


def volume_maps(net, x, method):
    """Per output: the chosen (post-ReLU) map of every slice, flattened, on
    the grid sanity compares, its AE (input-grid sum) and the input-grid
    maps [n, H, W]."""
    target = net.index(net.spec["target_layer"])
    out = torch_cam(net, torch.from_numpy(x), method, target, 1, True)
    res = out[0] if isinstance(out, tuple) else out
    maps, ae, ups = [], [], []
    for cam, up in res:
        grid = up if cam is None else torch.relu(cam)
        maps.append(grid.detach().numpy().astype(np.float64).ravel())
        ae.append(up.detach().double().sum().item())
        ups.append(up.detach().numpy().astype(np.float64))
    return maps, np.array(ae), ups


def energy(up, mask):
    """energy_in_structure of one volume's input-grid maps [n, H, W] on its
    tested slices and the structure's mask on those slices [n, H, W] (None:
    no structure): (value, reasons), as ae.csv defines it."""
    reasons = set()
    if not up.any():
        reasons.add("zero_map")
    if mask is None or not mask.any():
        reasons.add("no_structure")
    if reasons:
        return np.nan, reasons
    total = up.sum()
    if total <= 0:
        return np.nan, {"negative_map_sum"}
    return (up * mask).sum() / total, set()


def spearman(a, b):
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return np.nan
    return spearmanr(a, b).correlation


def nanmedian(v):
    v = np.asarray(v, np.float64)
    v = v[np.isfinite(v)]
    return np.median(v) if v.size else np.nan


def mixed_net(trained_dir, random_w, layers):
    """The trained network with the tensors of `layers` taken from random_w."""
    net = Net(trained_dir)
    for k, v in random_w.items():
        if k.rsplit(".", 1)[0] in layers and not k.endswith("num_batches_tracked"):
            net.t[k] = torch.from_numpy(v.astype(np.float32))
    return net


def expected_rows(trained, other_nets, xs, masks, method):
    """{(test, step): (per-category stats, pooled median)} for one method.
    other_nets: [(test, step, net)]; masks[v][category]: [n, H, W] or None."""
    ref = [volume_maps(trained, x, method) for x in xs]
    cats = trained.spec["outputs"]
    no = len(cats)
    ref_e = [[energy(ref[v][2][c], masks[v][cats[c]]) for v in range(len(xs))] for c in range(no)]
    rows = {}
    for test, step, net in other_nets:
        cur = [volume_maps(net, x, method) for x in xs]
        rho = np.array([[spearman(ref[v][0][c], cur[v][0][c]) for v in range(len(xs))] for c in range(no)])
        ratio = np.array([[cur[v][1][c] / ref[v][1][c] if ref[v][1][c] != 0 else np.nan
                           for v in range(len(xs))] for c in range(no)])
        cur_e = [[energy(cur[v][2][c], masks[v][cats[c]]) for v in range(len(xs))] for c in range(no)]
        per_cat, energies = [], []
        for c in range(no):
            et, er = nanmedian([e for e, _ in ref_e[c]]), nanmedian([e for e, _ in cur_e[c]])
            why = set()
            if not (np.isfinite(et) and np.isfinite(er)):
                for _, r in ref_e[c] + cur_e[c]:
                    why |= r
            energies.append(({"energy_trained": et, "energy_random": er, "energy_change": er - et}, why))
            fin = rho[c][np.isfinite(rho[c])]
            per_cat.append({"median_spearman": nanmedian(rho[c]),
                            "min_spearman": fin.min() if fin.size else np.nan,
                            "max_spearman": fin.max() if fin.size else np.nan,
                            "median_ae_ratio": nanmedian(ratio[c]),
                            "mean_ae_trained": np.mean([ref[v][1][c] for v in range(len(xs))]),
                            "mean_ae_random": np.mean([cur[v][1][c] for v in range(len(xs))])})
        rows[(test, step)] = (per_cat, nanmedian(rho.ravel()), energies)
    return rows


def same(got, want, tol, rel):
    g = float(got) if got != "" else np.nan  # sanity.csv writes NaN as an empty cell
    if not np.isfinite(want):
        return not np.isfinite(g)
    return abs(g - want) <= tol * (max(abs(want), 1e-12) if rel else 1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--dump", required=True)
    a = ap.parse_args()
    wd = a.workdir
    # an empty folder: an output left by an earlier run must not stand in for this run's
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    torch.set_num_threads(1)
    seed, threshold, max_slices = 4, 0.3, 3

    trained_dir, perm_dir, random_dir = (os.path.join(wd, d) for d in ("model", "permuted", "random"))
    make_model(a.cbctiq, trained_dir, 9, 7)
    make_model(a.cbctiq, perm_dir, 10, 8)
    subprocess.run([a.dump, trained_dir, str(seed), random_dir], check=True)
    trained, permuted = Net(trained_dir), Net(perm_dir)
    random_w = read_safetensors(f"{random_dir}/weights.safetensors")
    cats = trained.spec["outputs"]
    steps = [l["name"] for l in reversed(trained.spec["layers"]) if l["type"] in PARAM_TYPES]

    # The re-initialised weights: every parametrised tensor changed, and the
    # PyTorch defaults (batch norm: weight 1, bias 0, running stats 0 and 1;
    # conv/linear weights within kaiming-uniform bounds 1/sqrt(fan_in)).
    for k, v in random_w.items():
        if k.endswith("num_batches_tracked"):
            continue
        t = trained.t[k].numpy()
        if k.endswith(("running_mean", "running_var")) or (".bn" in k):
            want = 1.0 if k.endswith(("weight", "running_var")) else 0.0
            check(f"re-initialised {k} = PyTorch default {want}", np.all(v == want))
        else:
            fan_in = int(np.prod(t.shape[1:])) if t.ndim > 1 else None
            if fan_in:
                check(f"re-initialised {k} within 1/sqrt(fan_in)", np.abs(v).max() <= 1 / np.sqrt(fan_in) + 1e-7)
        check(f"re-initialised {k} differs from the trained tensor", not np.array_equal(v, t))

    # four canonical volumes of 32 x 32 x nz; --max-slices 3 picks slices of the larger ones
    rng = np.random.default_rng(11)
    aff = np.diag([-0.8, -0.8, 2.0, 1.0])
    lines = ["volume_id,path,split,mask"]
    xs, masks = [], []
    spec_in = trained.spec["input"]
    for v, nz in enumerate((5, 6, 7, 3)):
        hu = rng.normal(0, 400, (32, 32, nz)).astype(np.float32)
        hu[8:24, 8:24, :] += 600.0  # a bright square: maps with structure, not only noise
        nib.save(nib.Nifti1Image(hu, aff), os.path.join(wd, f"v{v}.nii.gz"))
        ks = tested_slices(nz, max_slices)
        lab = np.zeros(hu.shape, np.int16)
        lab[4:12, 6:20, :] = 1                # parotid_l
        lab[20:28, 6:20, nz // 2:] = 2        # parotid_r, not on every slice
        lab[10 + v:22, 22:30, :] = 5          # larynx
        lab[14:18, 2:8, 1:] = 4               # mandible; no submandibular anywhere
        mask_cell = ""
        if v != 3:  # v3 has no mask: no structure for any category
            nib.save(nib.Nifti1Image(lab, aff), os.path.join(wd, f"lab{v}.nii.gz"))
            mask_cell = f"lab{v}.nii.gz"
        lines.append(f"v{v},v{v}.nii.gz,test,{mask_cell}")
        # the structures on the tested slices, as the maps index them: [k, j, i]
        lab_t = np.transpose(lab, (2, 1, 0))[ks]
        masks.append({c: (np.isin(lab_t, STRUCT_LABELS[c]) if c in STRUCT_LABELS and v != 3 else None)
                      for c in trained.spec["outputs"]})
        x = np.clip((hu - spec_in["hu_min"]) / (spec_in["hu_max"] - spec_in["hu_min"]), 0, 1).astype(np.float32)
        x = np.transpose(x, (2, 1, 0))[:, None]  # [k, 1, j, i]
        xs.append(np.ascontiguousarray(x[ks]))
    with open(os.path.join(wd, "labels.json"), "w") as f:
        json.dump({"1": "parotid_l", "2": "parotid_r", "4": "mandible", "5": "larynx"}, f)
    lines.append("skipped,nope.nii.gz,train,")
    cohort = os.path.join(wd, "cohort.csv")
    with open(cohort, "w") as f:
        f.write("\n".join(lines) + "\n")

    san = os.path.join(wd, "sanity.csv")
    p = subprocess.run([a.cbctiq, "sanity", "--model", trained_dir, "--cohort", cohort, "--split", "test",
                        "--methods", ",".join(METHODS), "--max-slices", str(max_slices), "--seed", str(seed),
                        "--threshold", str(threshold), "--permuted-model", perm_dir, "--out", san,
                        "--threads", "1", "--quiet"], capture_output=True, text=True)
    check("sanity exit 0", p.returncode == 0, p.stderr.strip()[:300])
    check("sanity.csv written by this run", os.path.exists(san))
    if p.returncode != 0 or not os.path.exists(san):
        return 1
    rows = list(csv.DictReader(open(san)))
    check("one row per method x (permuted + steps) x category",
          len(rows) == len(METHODS) * (len(steps) + 1) * len(cats), str(len(rows)))

    worst = {}
    others = [("permuted_labels", 0, permuted)]
    others += [("cascade", s, mixed_net(trained_dir, random_w, set(steps[:s])))
               for s in range(1, len(steps) + 1)]
    for method in METHODS:
        want = expected_rows(trained, others, xs, masks, method)
        flags = {}
        for test, step, _ in others:
            per_cat, pooled, energies = want[(test, step)]
            flags.setdefault(test, []).append(pooled)
            for c, cat in enumerate(cats):
                got = [r for r in rows if r["method"] == method and r["test"] == test
                       and r["step"] == str(step) and r["category"] == cat]
                tag = f"{method} {test} step {step} {cat}"
                if len(got) != 1:
                    check(f"{tag}: one row", False, str(len(got)))
                    continue
                r = got[0]
                layer = "(model trained on permuted labels)" if test == "permuted_labels" else steps[step - 1]
                check(f"{tag}: layer {layer}, {len(xs)} volumes, threshold",
                      r["layer"] == layer and r["n_volumes"] == str(len(xs)) and same(r["threshold"], threshold, 1e-12, False),
                      f"{r['layer']} {r['n_volumes']} {r['threshold']}")
                for k, w in per_cat[c].items():
                    if r[k] != "" and np.isfinite(w):
                        d = abs(float(r[k]) - w) / (1.0 if "spearman" in k else max(abs(w), 1e-12))
                        worst[k] = max(worst.get(k, 0.0), d)
                bad = [f"{k} {r[k]} vs {w:.6g}" for k, w in per_cat[c].items()
                       if not same(r[k], w, RHO_TOL if "spearman" in k else RATIO_TOL, "spearman" not in k)]
                check(f"{tag}: rho, AE ratio and means = PyTorch", not bad, "; ".join(bad))
                e_want, why = energies[c]
                bad = [f"{k} {r[k]} vs {w:.6g}" for k, w in e_want.items() if not same(r[k], w, ENERGY_TOL, False)]
                for k, w in e_want.items():
                    if r[k] != "" and np.isfinite(w):
                        worst[k] = max(worst.get(k, 0.0), abs(float(r[k]) - w))
                check(f"{tag}: energy_in_structure medians = nibabel/numpy", not bad, "; ".join(bad))
                got_why = set(filter(None, r["energy_empty_reason"].split(";")))
                check(f"{tag}: energy_empty_reason {sorted(why)}", got_why == why, r["energy_empty_reason"])
                if cat in ("submandibular", "overall"):
                    check(f"{tag}: no structure: energy cells empty, reason no_structure",
                          r["energy_trained"] == r["energy_random"] == r["energy_change"] == ""
                          and "no_structure" in got_why, str(r))
        # the flag: pooled median rho over categories and volumes above the threshold
        for test, pooled in flags.items():
            last = pooled[-1]
            want_flag = "1" if np.isfinite(last) and last > threshold else "0"
            got_flags = {r["survives"] for r in rows if r["method"] == method and r["test"] == test}
            check(f"{method} {test}: survives = pooled median rho {last:.3f} > {threshold}",
                  got_flags == {want_flag}, str(got_flags))
        print(f"     {method}: pooled median rho, permuted then per step "
              f"{np.round(flags['permuted_labels'] + flags['cascade'], 3).tolist()}")
        for c, cat in enumerate(cats[:3]):
            e = [want[(t, s)][2][c][0] for t, s, _ in others]
            print(f"     {method} {cat}: energy trained {e[0]['energy_trained']:.3f} -> permuted "
                  f"{e[0]['energy_random']:.3f}, per step {[round(x['energy_random'], 3) for x in e[1:]]}")

    print("     worst difference (rho absolute, the rest relative): "
          + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    if failures:
        print(f"{len(failures)} checks failed: {failures[:6]}")
        return 1
    print("all sanity checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
