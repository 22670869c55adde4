"""slices_oracle.py - canonical orientation, slicing and the inverse path.

Oracles: nibabel's orientation tools (io_orientation, ornt_transform,
as_reoriented) for the canonical grid; torch.nn.functional.interpolate
(bilinear, align_corners=False; area for integer factors) and an exact
box-filter computed here in numpy (fractions of overlap) for non-integer
shrinking; the inverse path must equal the same rules applied from the
model grid back to the source grid, then nibabel's inverse reorientation.
"""
import argparse
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from nibabel import orientations as ornt

ap = argparse.ArgumentParser()
ap.add_argument("--cbctiq")
ap.add_argument("--workdir", required=True)
ap.add_argument("--helper", required=True)
args = ap.parse_args()
# an empty folder: an output left by an earlier run must not stand in for this run's
shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
rng = np.random.default_rng(11)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*cmd):
    r = subprocess.run([args.helper, *map(str, cmd)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"helper failed: {' '.join(map(str, cmd))}: {r.stderr}")


def load_dump(prefix):
    with open(prefix + ".txt") as f:
        lines = f.read().split("\n")
    nx, ny, nz = (int(v) for v in lines[0].split())
    aff = np.array([[float(v) for v in lines[2 + r].split()] for r in range(4)])
    vox = np.fromfile(prefix + ".raw", dtype=np.float32).reshape(nz, ny, nx).transpose(2, 1, 0)
    return vox, aff


def rot(ax, deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    m = np.eye(3)
    i, j = [(1, 2), (0, 2), (0, 1)][ax]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


AFFS = {
    "ras": np.diag([0.9, 1.1, 2.5, 1.0]),
    "lps": np.diag([-0.75, -0.75, 2.0, 1.0]),
    "lpi": np.diag([-1.2, 1.2, -3.0, 1.0]),
    "permuted": np.array([[0, 0, -2.0, 30], [1.5, 0, 0, -40], [0, -1.25, 0, 55], [0, 0, 0, 1]]),
    "oblique": np.vstack([np.hstack([rot(0, 12) @ rot(1, -9) @ np.diag([0.8, 0.9, 2.2]),
                                     [[5.0], [-7.0], [12.0]]]), [0, 0, 0, 1]]),
}
AFFS["ras"][:3, 3] = [-10, 20, -30]


def nib_canonical(img):
    tr = ornt.ornt_transform(ornt.io_orientation(img.affine), ornt.axcodes2ornt(("L", "P", "S")))
    return img.as_reoriented(tr), tr


def exact_area_1d(n_in, n_out):
    """Matrix W[n_out, n_in] of overlap fractions (exact box filter)."""
    w = np.zeros((n_out, n_in))
    for o in range(n_out):
        lo, hi = o * n_in / n_out, (o + 1) * n_in / n_out
        for p in range(n_in):
            w[o, p] = max(0.0, min(hi, p + 1) - max(lo, p)) / (n_in / n_out)
    return w


def torch_linear_1d(n_in, n_out):
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, n_in)
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[:, 0, :].numpy().T


def axis_matrix(n_in, n_out):
    if n_out < n_in:
        return exact_area_1d(n_in, n_out)
    if n_out > n_in:
        return torch_linear_1d(n_in, n_out)
    return np.eye(n_in)


# 1. Canonical orientation equals nibabel's reorientation, voxels and affine.
for name, aff in AFFS.items():
    data = rng.integers(-1000, 2000, size=(9, 7, 5)).astype(np.int16)
    path = os.path.join(args.workdir, f"orient_{name}.nii.gz")
    nib.save(nib.Nifti1Image(data, aff), path)
    ref, _ = nib_canonical(nib.load(path))
    run("canon", path, os.path.join(args.workdir, f"c_{name}"))
    vox, caff = load_dump(os.path.join(args.workdir, f"c_{name}"))
    check(vox.shape == ref.shape and np.array_equal(vox, ref.get_fdata()),
          f"canonical voxels {name}")
    check(np.allclose(caff, ref.affine, atol=1e-5), f"canonical affine {name}\n{caff}\n{ref.affine}")
    check(nib.aff2axcodes(caff) == ("L", "P", "S"), f"{name}: canonical code {nib.aff2axcodes(caff)}")
print("ok  canonical orientation (5 orientations) = nibabel")

# 2. Forward slices against torch / exact box filter.
HU_MIN, HU_MAX = -200.0, 400.0
cases = [  # (volume i, j sizes), (H, W), expectation
    ((64, 48), (16, 32), "integer shrink: torch area"),
    ((20, 30), (45, 64), "enlarge: torch bilinear"),
    ((50, 37), (20, 32), "non-integer shrink: exact box"),
    ((40, 12), (30, 16), "x shrink, y enlarge"),
    ((33, 33), (33, 33), "same size"),
]
for case, ((nx, ny), (H, W), what) in enumerate(cases):
    nz = 4
    data = rng.normal(100, 400, size=(nx, ny, nz)).astype(np.float32)
    path = os.path.join(args.workdir, f"slices_src{case}.nii.gz")
    nib.save(nib.Nifti1Image(data, AFFS["lps"]), path)  # LPS: canonical already? no: k up, i,j flipped
    canon, _ = nib_canonical(nib.load(path))
    cdata = canon.get_fdata()
    out = os.path.join(args.workdir, f"slices{case}.raw")
    run("slices", path, H, W, HU_MIN, HU_MAX, out)
    got = np.fromfile(out, dtype=np.float32).reshape(canon.shape[2], 1, H, W)
    win = np.clip((cdata - HU_MIN) / (HU_MAX - HU_MIN), 0, 1)
    imgs = torch.from_numpy(np.ascontiguousarray(win.transpose(2, 1, 0)[:, None]))  # N,1,ny,nx
    sep = np.einsum("hy,nyx,wx->nhw", axis_matrix(canon.shape[1], H), win.transpose(2, 1, 0),
                    axis_matrix(canon.shape[0], W))[:, None]
    if what.startswith("integer shrink"):
        want = F.interpolate(imgs, size=(H, W), mode="area").numpy()
        check(np.allclose(sep, want, atol=1e-12), "numpy box filter != torch area for integer factors")
    elif what.startswith("enlarge"):
        want = F.interpolate(imgs, size=(H, W), mode="bilinear", align_corners=False).numpy()
        check(np.allclose(sep, want, atol=1e-12), "numpy separable != torch bilinear")
    else:
        want = sep
    err = np.abs(got - want).max()
    check(err < 2e-6, f"{what}: max |cbctiq - oracle| = {err:g}")
    print(f"ok  {what}: {nx}x{ny} -> {W}x{H}, max error {err:.2g}")

# 3. Inverse path: maps on the model grid back onto the source grid (permuted source).
for name in ["permuted", "lpi"]:
    data = rng.normal(0, 300, size=(30, 22, 6)).astype(np.float32)
    path = os.path.join(args.workdir, f"unmap_{name}.nii.gz")
    nib.save(nib.Nifti1Image(data, AFFS[name]), path)
    src = nib.load(path)
    canon, tr = nib_canonical(src)
    cx, cy, cz = canon.shape
    H, W = 16, 40
    maps = rng.random((cz, H, W)).astype(np.float32)
    mpath = os.path.join(args.workdir, "maps.raw")
    maps.tofile(mpath)
    out = os.path.join(args.workdir, f"unmap_{name}_out.nii.gz")
    run("unmap", path, H, W, mpath, out)
    back = nib.load(out)
    want_c = np.einsum("yh,nhw,xw->nyx", axis_matrix(H, cy), maps.astype(np.float64),
                       axis_matrix(W, cx)).transpose(2, 1, 0)  # canonical [i, j, k]
    inv = ornt.ornt_transform(ornt.axcodes2ornt(("L", "P", "S")), ornt.io_orientation(src.affine))
    want = ornt.apply_orientation(want_c, inv)
    check(back.shape == src.shape, f"unmap {name}: shape {back.shape} != {src.shape}")
    check(np.allclose(back.affine, src.affine, atol=1e-5), f"unmap {name}: affine differs")
    check(np.allclose(back.get_fdata(), want, atol=2e-6),
          f"unmap {name}: max err {np.abs(back.get_fdata() - want).max()}")
    print(f"ok  inverse path {name}: {W}x{H} maps -> source grid {src.shape}")

# 4. Slice selection: non-empty mask slices and a z range in mm (canonical k).
mask = np.zeros((12, 10, 15), np.uint8)
mask[3, 4, [2, 3, 7, 11]] = 1
aff = np.diag([-1.0, 1.0, -2.5, 1.0])  # k runs superior -> inferior in the file
aff[:3, 3] = [10, -5, 40]
path = os.path.join(args.workdir, "select.nii.gz")
nib.save(nib.Nifti1Image(mask, aff), path)
canon, _ = nib_canonical(nib.load(path))
r = subprocess.run([args.helper, "select", path, "10", "25.5"], capture_output=True, text=True)
lines = r.stdout.split("\n")
want_nonempty = np.nonzero(canon.get_fdata().any(axis=(0, 1)))[0]
cz = np.array([(canon.affine @ [(canon.shape[0] - 1) / 2, (canon.shape[1] - 1) / 2, k, 1])[2]
               for k in range(canon.shape[2])])
want_z = np.nonzero((cz >= 10) & (cz <= 25.5))[0]
check(r.returncode == 0 and lines[0].split() == [str(k) for k in want_nonempty],
      f"non-empty slices {lines[0]!r} != {want_nonempty}")
check(r.returncode == 0 and lines[1].split() == [str(k) for k in want_z],
      f"z-range slices {lines[1]!r} != {want_z}")
print(f"ok  slice selection: mask slices {list(want_nonempty)}, z in [10, 25.5] -> {list(want_z)}")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("all slicing oracle checks passed")
