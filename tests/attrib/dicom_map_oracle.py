#!/usr/bin/python3
"""`cbctiq gradcam --format dicom|dicom-sc` on a real scanner DICOM series
(tests/data's phantom), read back with pydicom and checked against the NIfTI
map of the same command (nibabel) and against the source series' own headers:

- the Parametric Map: SOP class, float frames; every frame placed by its own
  ImagePositionPatient, the shared orientation and pixel spacing, each pixel
  mapped through the NIfTI's affine to its voxel: the values equal the NIfTI
  map's (1e-6 relative); the frame references the source slice at that very
  position; same study, frame of reference and patient, a new series; the
  real-world value mapping names the method, the category and the value range;
- the Secondary Capture series: one RGB image per source slice, referencing
  it, with the pixels a separate Python blend of the same slice and map gives
  (grey window of the model, matplotlib's viridis, the stated opacity);
- dciodvfy (dicom3tools) reports no error for either; dcm2niix, a reader
  independent of DCMTK, places the Parametric Map's values where the NIfTI
  map has them;
- cbctiq reads its own Parametric Map back (`cbctiq info --json`, `cbctiq
  convert`): the same grid, affine and voxels as the NIfTI map, and the
  source's study and frame of reference;
- a NIfTI volume writes DICOM only with --dicom-template, on the same grid
  (here a NIfTI of the series with its axes permuted and flipped by
  nibabel, so the frames are found through the affine, not copied in order); a NIfTI without
  a template or with a template on another grid is refused, nothing left."""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
from matplotlib import colormaps

SERIES = os.path.join("hn_phantom_ct", "dicom_mandible_3")
OTHER_GRID = os.path.join("openkbp_hn_ct", "openkbp_test_pt_245", "ct.nii.gz")
PATIENT = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex"]
failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL':4} {name} {detail}")
    if not ok:
        failures.append(name)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
    return p


def source_slices(folder):
    return [pydicom.dcmread(f) for f in sorted(glob.glob(os.path.join(folder, "*.dcm")))]


def pixel_voxels(ipp, iop, spacing, rows, cols, affine):
    """Voxel indices [rows, cols, 3] of every pixel of a frame, through the
    frame's own geometry (LPS) and the NIfTI affine (RAS)."""
    ipp, iop = np.asarray(ipp, float), np.asarray(iop, float)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    lps = ipp + c[..., None] * float(spacing[1]) * iop[:3] + r[..., None] * float(spacing[0]) * iop[3:]
    ras = lps * np.array([-1.0, -1.0, 1.0])
    inv = np.linalg.inv(affine)
    vox = ras @ inv[:3, :3].T + inv[:3, 3]
    return vox


def check_parametric_map(tag, path, nifti_path, src, args_label):
    """The Parametric Map at `path` against the NIfTI map and the source slices."""
    ds = pydicom.dcmread(path)
    check(f"{tag}: Parametric Map SOP class", ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30", ds.SOPClassUID)
    check(f"{tag}: float pixel data", "FloatPixelData" in ds and ds.BitsAllocated == 32)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns).astype(np.float64)
    check(f"{tag}: one frame per source slice", frames.shape[0] == len(src), str(frames.shape))
    nii = nib.load(nifti_path)
    vol = np.asarray(nii.dataobj, np.float64)
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    check(f"{tag}: orientation and pixel spacing = the source's",
          np.allclose(iop, [float(v) for v in src[0].ImageOrientationPatient]) and
          np.allclose(spacing, [float(v) for v in src[0].PixelSpacing]))
    by_position = {tuple(np.round(np.asarray(s.ImagePositionPatient, float), 4)): s for s in src}
    scale = np.abs(vol).max()
    check(f"{tag}: the map is not all zero", scale > 0, f"max {scale:.3g}")
    worst, placed, referenced = 0.0, True, True
    for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ipp = [float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient]
        vox = pixel_voxels(ipp, iop, spacing, ds.Rows, ds.Columns, nii.affine)
        idx = np.rint(vox).astype(int)
        placed &= bool(np.abs(vox - idx).max() < 1e-3 and (idx >= 0).all() and (idx < vol.shape).all())
        if not placed:
            break
        want = vol[idx[..., 0], idx[..., 1], idx[..., 2]]
        worst = max(worst, np.abs(frames[f] - want).max() / scale)
        s = by_position.get(tuple(np.round(ipp, 4)))
        ref = fg.DerivationImageSequence[0].SourceImageSequence[0]
        referenced &= s is not None and ref.ReferencedSOPInstanceUID == s.SOPInstanceUID and \
            ref.ReferencedSOPClassUID == s.SOPClassUID
    check(f"{tag}: every frame lies on the NIfTI's voxels (by its own position)", placed)
    check(f"{tag}: frames = the NIfTI map, voxel for voxel", placed and worst <= 1e-6, f"rel err {worst:.2e}")
    check(f"{tag}: each frame references the source slice at its position", referenced)
    refs = ds.ReferencedSeriesSequence[0]
    check(f"{tag}: Referenced Series = the source series with all its slices",
          refs.SeriesInstanceUID == src[0].SeriesInstanceUID and
          sorted(i.ReferencedSOPInstanceUID for i in refs.ReferencedInstanceSequence) ==
          sorted(s.SOPInstanceUID for s in src))
    check_identity(tag, ds, src[0])
    rwvm = shared.RealWorldValueMappingSequence[0]
    lo, hi = float(rwvm.DoubleFloatRealWorldValueFirstValueMapped), float(rwvm.DoubleFloatRealWorldValueLastValueMapped)
    check(f"{tag}: value mapping range = the map's min and max",
          np.isclose(lo, frames.min(), rtol=1e-6, atol=0) and np.isclose(hi, frames.max(), rtol=1e-6, atol=0),
          f"[{lo:.6g}, {hi:.6g}]")
    text = rwvm.LUTExplanation + " " + " ".join(
        item.ConceptCodeSequence[0].CodeMeaning for item in rwvm.QuantityDefinitionSequence)
    check(f"{tag}: value mapping names method, category and units",
          all(w in text for w in args_label) and rwvm.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM",
          text)
    check(f"{tag}: slope 1, intercept 0", float(rwvm.RealWorldValueSlope) == 1 and float(rwvm.RealWorldValueIntercept) == 0)
    return ds


def check_identity(tag, ds, src):
    check(f"{tag}: same study", ds.StudyInstanceUID == src.StudyInstanceUID)
    check(f"{tag}: same frame of reference", ds.get("FrameOfReferenceUID", src.FrameOfReferenceUID) ==
          src.FrameOfReferenceUID)
    check(f"{tag}: a new, valid series UID", ds.SeriesInstanceUID != src.SeriesInstanceUID and
          pydicom.uid.UID(ds.SeriesInstanceUID).is_valid)
    # an attribute the source lacks may be empty here (type 2 in the new object)
    check(f"{tag}: patient copied", all(str(ds.get(k) or "") == str(src.get(k) or "") for k in PATIENT) and
          src.PatientID != "")


def expected_overlay(hu, m, lo, hi, map_max):
    """The blend docs/formats.md states: grey window, viridis, opacity 0.55
    rising over the lowest tenth of the scale, values <= 0 transparent."""
    g = np.clip((hu - lo) / (hi - lo), 0, 1)[..., None]
    t = np.clip(m / map_max, 0, 1)
    rgb = colormaps["viridis"](t)[..., :3]
    a = (0.55 * np.minimum(t / 0.1, 1.0))[..., None] * (m > 0)[..., None]
    return np.rint((a * rgb + (1 - a) * g) * 255)


def check_secondary_capture(folder, nifti_path, src, model_json):
    files = sorted(glob.glob(os.path.join(folder, "*.dcm")))
    check("SC: one image per source slice", len(files) == len(src), str(len(files)))
    spec = json.load(open(model_json))["input"]
    nii = nib.load(nifti_path)
    vol = np.asarray(nii.dataobj, np.float64)
    map_max = vol.max()
    by_uid = {s.SOPInstanceUID: s for s in src}
    series, worst, ok = set(), 0.0, True
    for f in files:
        ds = pydicom.dcmread(f)
        series.add(ds.SeriesInstanceUID)
        ok &= ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and ds.PhotometricInterpretation == "RGB"
        s = by_uid.get(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)
        if s is None or (ds.Rows, ds.Columns) != (s.Rows, s.Columns):
            ok = False
            continue
        hu = s.pixel_array * float(s.RescaleSlope) + float(s.RescaleIntercept)
        vox = np.rint(pixel_voxels(s.ImagePositionPatient, s.ImageOrientationPatient, s.PixelSpacing,
                                   s.Rows, s.Columns, nii.affine)).astype(int)
        m = vol[vox[..., 0], vox[..., 1], vox[..., 2]]
        want = expected_overlay(hu, m, spec["hu_min"], spec["hu_max"], map_max)
        worst = max(worst, np.abs(ds.pixel_array.astype(float) - want).max())
        comments = ds.ImageComments
    check("SC: RGB Secondary Capture images, each referencing its source slice", ok)
    check("SC: one new series", len(series) == 1 and src[0].SeriesInstanceUID not in series)
    # matplotlib's table vs cbctiq's spline of it: within 0.5/255 before blending
    check("SC: pixels = the CT with the map blended over it (Python blend)", ok and worst <= 2, f"max diff {worst}")
    check("SC: window and colour map stated in ImageComments",
          ok and "viridis" in comments and f"[{spec['hu_min']:g}, {spec['hu_max']:g}]" in comments, comments)
    check_identity("SC", pydicom.dcmread(files[0]), src[0])


def check_dcm2niix(tag, folder, nifti_path, workdir):
    """dcm2niix, a reader independent of DCMTK and of this test, converts the
    Parametric Map to NIfTI: every voxel, placed by dcm2niix's affine, lands
    on a voxel of cbctiq's NIfTI map with the same value."""
    out = os.path.join(workdir, f"dcm2niix_{tag}")
    os.makedirs(out)
    p = subprocess.run(["dcm2niix", "-o", out, "-f", "pm", "-z", "n", folder], capture_output=True, text=True)
    got = os.path.join(out, "pm.nii")
    check(f"{tag}: dcm2niix converts the Parametric Map", p.returncode == 0 and os.path.exists(got), p.stderr[-300:])
    if not os.path.exists(got):
        return
    a, b = nib.load(got), nib.load(nifti_path)
    va, vb = np.asarray(a.dataobj, np.float64), np.asarray(b.dataobj, np.float64)
    ijk = np.indices(va.shape).reshape(3, -1)
    world = a.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    vox = (np.linalg.inv(b.affine) @ world)[:3]
    idx = np.rint(vox).astype(int)
    on_grid = va.size == vb.size and np.abs(vox - idx).max() < 1e-3 and (idx >= 0).all() and \
        all((idx[d] < vb.shape[d]).all() for d in range(3))
    check(f"{tag}: dcm2niix's voxels lie on the NIfTI map's grid", on_grid, f"{va.shape} {vb.shape}")
    if on_grid:
        err = np.abs(va.reshape(-1) - vb[idx[0], idx[1], idx[2]]).max() / np.abs(vb).max()
        check(f"{tag}: dcm2niix's values = the NIfTI map's, in world space", err <= 1e-6, f"rel err {err:.2e}")


def check_readback(tag, cbctiq, folder, nifti_path, src, workdir):
    """cbctiq's own reader on the Parametric Map (an enhanced multi-frame
    object with float pixel data): the grid and voxels of the NIfTI map."""
    p = run([cbctiq, "info", "--json", folder])
    check(f"{tag}: cbctiq info reads the Parametric Map", p.returncode == 0, p.stderr.strip()[:300])
    if p.returncode != 0:
        return
    info = json.loads(p.stdout)
    b = nib.load(nifti_path)
    check(f"{tag}: info gives the NIfTI map's dims and affine",
          list(info["dims"]) == list(b.shape) and np.abs(np.array(info["affine"]) - b.affine).max() < 1e-4,
          f"{info['dims']} {b.shape}")
    d = info["dicom"]
    check(f"{tag}: info gives the source's study and frame of reference",
          d["study_uid"] == src[0].StudyInstanceUID and
          d["frame_of_reference_uid"] == src[0].FrameOfReferenceUID and
          d["series_uid"] != src[0].SeriesInstanceUID)
    back = os.path.join(workdir, f"readback_{tag}.nii.gz")
    p = run([cbctiq, "convert", "--quiet", folder, back])
    check(f"{tag}: cbctiq convert reads it to NIfTI", p.returncode == 0, p.stderr.strip()[:300])
    if p.returncode == 0:
        a = nib.load(back)
        va, vb = np.asarray(a.dataobj, np.float64), np.asarray(b.dataobj, np.float64)
        err = np.abs(va - vb).max() / np.abs(vb).max() if va.shape == vb.shape else np.inf
        check(f"{tag}: read back voxel for voxel = the NIfTI map", err <= 1e-6 and
              np.abs(a.affine - b.affine).max() < 1e-4, f"rel err {err:.2e}")


def dciodvfy(path):
    p = subprocess.run(["dciodvfy", path], capture_output=True, text=True)
    out = p.stdout + p.stderr
    errors = [l for l in out.splitlines() if l.startswith("Error")]
    warnings = sorted({l for l in out.splitlines() if l.startswith("Warning")})
    check(f"dciodvfy {os.path.basename(path)}: no errors", not errors, "; ".join(errors[:3]))
    for w in warnings:
        print(f"     ({w})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cbctiq", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data", required=True, help="the fixture folder (tests/data)")
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    w = a.workdir
    series = os.path.join(os.path.abspath(a.data), SERIES)
    src = source_slices(series)
    model = os.path.join(w, "model")
    subprocess.run([a.cbctiq, "model", "init", "--arch", "iqnet-s", "--width", "4", "--seed", "3",
                    "--out", model, "--quiet"], check=True)
    base = [a.cbctiq, "gradcam", "--model", model, "--category", "mandible", "--threads", "1", "--quiet"]
    label = ["gradcam", "mandible"]

    nifti = os.path.join(w, "map.nii.gz")
    check("NIfTI map: exit 0", run(base + [series, "--out", nifti]).returncode == 0)
    pm = os.path.join(w, "pm")
    p = run(base + [series, "--out", pm, "--format", "dicom"])
    check("Parametric Map: exit 0", p.returncode == 0, p.stderr.strip()[:300])
    if p.returncode == 0:
        check_parametric_map("PM", os.path.join(pm, "map.dcm"), nifti, src, label)
        dciodvfy(os.path.join(pm, "map.dcm"))
        check_dcm2niix("PM", pm, nifti, w)
        check_readback("PM", a.cbctiq, pm, nifti, src, w)
        p = run(base + [series, "--out", pm, "--format", "dicom"])
        check("a second write replaces the folder", p.returncode == 0 and os.listdir(pm) == ["map.dcm"])
    sc = os.path.join(w, "sc")
    p = run(base + [series, "--out", sc, "--format", "dicom-sc"])
    check("Secondary Capture: exit 0", p.returncode == 0, p.stderr.strip()[:300])
    if p.returncode == 0:
        check_secondary_capture(sc, nifti, src, os.path.join(model, "model.json"))
        for f in sorted(glob.glob(os.path.join(sc, "*.dcm")))[:1]:
            dciodvfy(f)

    # a NIfTI of the series with its axes permuted and flipped by nibabel, and its template
    ct = os.path.join(w, "ct.nii.gz")
    subprocess.run([a.cbctiq, "convert", "--quiet", series, ct], check=True)
    img = nib.load(ct)
    want = ("A", "R", "I")
    turn = nib.orientations.ornt_transform(nib.io_orientation(img.affine), nib.orientations.axcodes2ornt(want))
    canon = os.path.join(w, "reoriented.nii.gz")
    nib.save(img.as_reoriented(turn), canon)
    check("the reoriented NIfTI's axes are A, R, I (the series': L, P, S)",
          nib.aff2axcodes(nib.load(canon).affine) == want and nib.aff2axcodes(img.affine) == ("L", "P", "S"))
    canon_map = os.path.join(w, "canonical_map.nii.gz")
    check("NIfTI map of the NIfTI: exit 0", run(base + [canon, "--out", canon_map]).returncode == 0)
    pm2 = os.path.join(w, "pm_template")
    p = run(base + [canon, "--out", pm2, "--format", "dicom", "--dicom-template", series])
    check("NIfTI + --dicom-template: exit 0", p.returncode == 0, p.stderr.strip()[:300])
    if p.returncode == 0:
        check_parametric_map("template", os.path.join(pm2, "map.dcm"), canon_map, src, label)

    # refusals: nothing written, nothing left
    bad = os.path.join(w, "refused")
    p = run(base + [canon, "--out", bad, "--format", "dicom"])
    check("NIfTI without a template: exit 1, names --dicom-template",
          p.returncode == 1 and "--dicom-template" in p.stderr and canon in p.stderr, p.stderr.strip())
    other = os.path.join(os.path.abspath(a.data), OTHER_GRID)
    p = run(base + [other, "--out", bad, "--format", "dicom-sc", "--dicom-template", series])
    check("a template on another grid: exit 1, names the series and the grid",
          p.returncode == 1 and series in p.stderr and "not on the volume's grid" in p.stderr, p.stderr.strip())
    check("refused: no output, no temporary folder",
          not os.path.exists(bad) and not [n for n in os.listdir(w) if ".tmp" in n], str(os.listdir(w)))
    mine = os.path.join(w, "users_folder")
    os.makedirs(mine)
    open(os.path.join(mine, "notes.txt"), "w").write("mine\n")
    p = run(base + [series, "--out", mine, "--format", "dicom"])
    check("a folder with other files is not replaced: exit 1, the file kept",
          p.returncode == 1 and "notes.txt" in p.stderr and os.listdir(mine) == ["notes.txt"], p.stderr.strip())
    if failures:
        print(f"{len(failures)} checks failed: {failures[:6]}")
        return 1
    print("all DICOM map checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
