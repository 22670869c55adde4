"""A small synthetic cohort for the study tests (not the built-in simulator:
this one is built to be learnable in seconds so the tests can check that the
model beats the constant predictor).

Each volume is an elliptic "neck" (soft tissue with a bone ring) in air,
with labelled structures. Its image quality q in [1, 5] shifts the tissue
intensity by (q - 3) * 120 HU and scales a mild noise, so a small CNN learns
q within two epochs; the raters score q per category with their own bias and
noise. With --no-split the cohort has no split column (the study assigns one).
"""
import argparse
import json
import os

import nibabel as nib
import numpy as np

CATEGORIES = ["parotid", "submandibular", "larynx", "mandible", "overall"]
LABELS = {1: "parotid_l", 2: "parotid_r", 3: "submandibular_l", 4: "submandibular_r",
          5: "larynx", 6: "mandible"}


def ellipse(shape, cy, cx, ry, rx):
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def make_volume(rng, size, slices, q):
    vol = np.full((size, size, slices), -1000.0, dtype=np.float32)
    lab = np.zeros((size, size, slices), dtype=np.int16)
    c = size / 2
    body = ellipse((size, size), c, c, size * 0.42, size * 0.36)
    inner = ellipse((size, size), c, c, size * 0.34, size * 0.28)
    offset = (q - 3.0) * 120.0
    for k in range(slices):
        sl = np.full((size, size), -1000.0)
        sl[body] = 700.0            # bone ring
        sl[inner] = 40.0 + offset   # soft tissue, brighter for better quality
        sl += rng.normal(0, 15.0 + 10.0 * (5 - q), size=(size, size))
        vol[:, :, k] = sl
        z = k / max(slices - 1, 1)
        # The end slices have no structure, so train.slices = "structures"
        # has something to leave out.
        if 0.6 < z <= 0.92:
            lab[:, :, k][ellipse((size, size), c - size * 0.1, c - size * 0.18, 4, 3)] = 1
            lab[:, :, k][ellipse((size, size), c - size * 0.1, c + size * 0.18, 4, 3)] = 2
        if 0.3 < z <= 0.6:
            lab[:, :, k][ellipse((size, size), c + size * 0.1, c - size * 0.15, 3, 3)] = 3
            lab[:, :, k][ellipse((size, size), c + size * 0.1, c + size * 0.15, 3, 3)] = 4
        if 0.08 < z <= 0.3:
            lab[:, :, k][ellipse((size, size), c, c, 3, 4)] = 5
        if 0.4 < z <= 0.8:
            lab[:, :, k][ellipse((size, size), c - size * 0.25, c, 2, 8)] = 6
    return vol, lab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--test", type=int, default=6)
    ap.add_argument("--val", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--no-split", action="store_true")
    ap.add_argument("--labels-beside-masks", action="store_true",
                    help="write labels.json into labels/ (beside the label volumes), not beside cohort.csv")
    ap.add_argument("--ras", action="store_true",
                    help="store voxels in RAS order (not cbctiq's canonical LPS), same anatomy")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(os.path.join(a.out, "volumes"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "labels"), exist_ok=True)
    # Qualities spread evenly over [1, 5] (shuffled) so every split spans the scale.
    qs = rng.permutation(np.linspace(1.0, 5.0, a.n))
    affine = np.diag([-2.0, -2.0, 2.5, 1.0])  # LPS voxel axes, the canonical order
    raters = [("r1", 1.0, 0.0), ("r2", 2.0, 0.3), ("r3", 1.5, -0.3)]
    rows, ratings = [], []
    for i, q in enumerate(qs):
        vid = f"v{i:02d}"
        vol, lab = make_volume(rng, a.size, a.slices, q)
        aff = affine
        if a.ras:
            # i' = n-1-i along x and y: the same world position for every voxel.
            vol, lab = vol[::-1, ::-1, :].copy(), lab[::-1, ::-1, :].copy()
            aff = np.diag([2.0, 2.0, 2.5, 1.0])
            aff[0, 3] = aff[1, 3] = -2.0 * (a.size - 1)
        nib.save(nib.Nifti1Image(np.round(vol).astype(np.int16), aff),
                 os.path.join(a.out, "volumes", vid + ".nii.gz"))
        nib.save(nib.Nifti1Image(lab, aff), os.path.join(a.out, "labels", vid + ".nii.gz"))
        split = "test" if i < a.test else "val" if i < a.test + a.val else "train"
        rows.append((vid, f"volumes/{vid}.nii.gz", f"labels/{vid}.nii.gz", split))
        for cat in CATEGORIES:
            latent = q + rng.normal(0, 0.25)
            for name, _, bias in raters:
                s = int(np.clip(np.round(latent + bias + rng.normal(0, 0.4)), 1, 5))
                ratings.append((vid, name, cat, s))
    with open(os.path.join(a.out, "cohort.csv"), "w") as f:
        f.write("volume_id,path,mask" + ("" if a.no_split else ",split") + "\n")
        for r in rows:
            f.write(",".join(r[:3] if a.no_split else r) + "\n")
    with open(os.path.join(a.out, "ratings.csv"), "w") as f:
        f.write("volume_id,rater,category,score\n")
        for r in ratings:
            f.write(f"{r[0]},{r[1]},{r[2]},{r[3]}\n")
    with open(os.path.join(a.out, "raters.csv"), "w") as f:
        f.write("rater,weight\n")
        for name, w, _ in raters:
            f.write(f"{name},{w}\n")
    labels_dir = os.path.join(a.out, "labels") if a.labels_beside_masks else a.out
    with open(os.path.join(labels_dir, "labels.json"), "w") as f:
        json.dump({str(k): v for k, v in LABELS.items()}, f)


if __name__ == "__main__":
    main()
