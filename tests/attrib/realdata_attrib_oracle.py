#!/usr/bin/python3
"""`cbctiq ae` and `cbctiq gradcam` on real head-and-neck CTs (OpenKBP,
../shared/data) and a real scanner DICOM series (phantom): the maps come back
on each CT's own grid (nibabel affine and shape), the Grad-CAM identity holds
per volume, and the structure energies of the real organ labels (parotid =
parotid_l + parotid_r, larynx, mandible) equal the sums PyTorch-independent
numpy takes over the map NIfTI and the label volume (the CT grid here equals
the 128x128 model input, so no resampling intervenes)."""
import argparse
import csv
import os
import subprocess
import sys

import nibabel as nib
import numpy as np

failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    kbp = os.path.join(a.data, "openkbp_hn_ct")
    model = os.path.join(a.workdir, "model")
    subprocess.run([a.cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--seed", "3",
                    "--out", model, "--quiet"], check=True)
    ids = ["openkbp_test_pt_245", "openkbp_test_pt_247"]
    cohort = os.path.join(a.workdir, "cohort.csv")
    with open(cohort, "w") as f:
        f.write("volume_id,path,mask,split\n")
        for i in ids:
            f.write(f"{i},{kbp}/{i}/ct.nii.gz,{kbp}/{i}/oar_labels.nii.gz,test\n")
    out = os.path.join(a.workdir, "ae.csv")
    p = subprocess.run([a.cbctiq, "ae", "--model", model, "--cohort", cohort, "--out", out, "--threads", "1", "--quiet"],
                       capture_output=True, text=True)
    check("ae on real CTs: exit 0", p.returncode == 0, p.stderr.strip()[:300])
    rows = list(csv.DictReader(open(out))) if p.returncode == 0 else []
    check("rows: 2 volumes x 5 categories", len(rows) == 10)
    for r in rows:
        pre, part = float(r["ae_feature_pre"]), float(r["pred_part"])
        check(f"{r['volume_id']} {r['category']}: identity", abs(pre - part) <= 1e-4 * max(1e-3, abs(part)),
              f"{pre:.6g} vs {part:.6g}")
        check(f"{r['volume_id']} {r['category']}: 128 slices", r["n_slices"] == "128")
        has = r["category"] in ("parotid", "larynx", "mandible")
        check(f"{r['volume_id']} {r['category']}: structure columns {'set' if has else 'empty'}",
              (r["ae_in_structure"] != "") == has)
        if has:
            fr = float(r["structure_fraction"])
            check(f"{r['volume_id']} {r['category']}: fraction in [0, 1]", 0 <= fr <= 1 + 1e-9, str(fr))

    # the map of one volume and its structure energy, recomputed from the files
    vid = ids[0]
    ct = os.path.join(kbp, vid, "ct.nii.gz")
    mp = os.path.join(a.workdir, "larynx.nii.gz")
    p = subprocess.run([a.cbctiq, "gradcam", "--model", model, "--category", "larynx", ct, "--out", mp,
                        "--quiet"], capture_output=True, text=True)
    check("gradcam on a real CT: exit 0", p.returncode == 0, p.stderr.strip()[:300])
    if p.returncode == 0:
        m, c = nib.load(mp), nib.load(ct)
        check("map affine and shape = the CT's", np.array_equal(m.affine, c.affine) and m.shape == c.shape)
        lab = np.asarray(nib.load(os.path.join(kbp, vid, "oar_labels.nii.gz")).dataobj)
        data = np.asarray(m.dataobj, np.float64)
        row = [r for r in rows if r["volume_id"] == vid and r["category"] == "larynx"]
        if row:
            ae, inside = float(row[0]["ae"]), float(row[0]["ae_in_structure"])
            check("ae = sum of the map NIfTI", abs(data.sum() - ae) <= 1e-4 * abs(ae), f"{data.sum():.6g} vs {ae:.6g}")
            want = data[lab == 6].sum()
            check("ae_in_structure = map summed over the larynx label", abs(want - inside) <= 1e-4 * max(abs(ae), 1e-12),
                  f"{want:.6g} vs {inside:.6g}")

    # a real scanner DICOM series: the map lands on the series' grid
    series = os.path.join(a.data, "hn_phantom_ct", "dicom_mandible_24")
    mp2 = os.path.join(a.workdir, "phantom.nii.gz")
    conv = os.path.join(a.workdir, "phantom_ct.nii.gz")
    p = subprocess.run([a.cbctiq, "gradcam", "--model", model, "--category", "mandible", series, "--out", mp2,
                        "--quiet"], capture_output=True, text=True)
    q = subprocess.run([a.cbctiq, "convert", series, conv, "--quiet"], capture_output=True, text=True)
    check("gradcam on a DICOM series: exit 0", p.returncode == 0 and q.returncode == 0, (p.stderr + q.stderr).strip()[:300])
    if p.returncode == 0 and q.returncode == 0:
        m2, c2 = nib.load(mp2), nib.load(conv)
        check("DICOM: map affine and shape = the series'", np.allclose(m2.affine, c2.affine, atol=1e-4)
              and m2.shape == c2.shape, f"{m2.shape} {c2.shape}")
    if failures:
        print(f"{len(failures)} checks failed: {failures[:6]}")
        return 1
    print("all real-data checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
