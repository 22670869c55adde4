"""cbctiq.read_volume, Model, gradcam and attribution_energy against the
command line's own output on the same inputs (exactly equal: one library
does both), and against nibabel for the reader; their errors; two threads
at once."""
import csv
import os
import threading
import time

import nibabel as nib
import numpy as np
import pytest

import cbctiq


def nifti_array(path):
    """A NIfTI's voxels as stored (float32 maps stay float32), and its affine."""
    img = nib.load(path)
    return np.asanyarray(img.dataobj), img.affine


def test_read_volume_nifti_equals_nibabel(nifti):
    vol = cbctiq.read_volume(nifti)
    img = nib.load(nifti)
    assert vol.array.dtype == np.float32 and vol.array.flags["F_CONTIGUOUS"]
    assert vol.shape == img.shape
    np.testing.assert_array_equal(vol.array, img.get_fdata(dtype=np.float32))
    np.testing.assert_allclose(vol.affine, img.affine, rtol=0, atol=1e-5)
    np.testing.assert_allclose(vol.spacing, img.header.get_zooms()[:3], rtol=1e-6)
    assert vol.name == "ct"


def test_read_volume_dicom_equals_cli_convert(cli, dicom, tmp_path):
    """A DICOM series read by the package equals `cbctiq convert`'s NIfTI of
    it (float32: the voxels exactly; the affine as written)."""
    out = tmp_path / "series.nii"
    cli("convert", "--dtype", "float32", "--quiet", dicom, out)
    vol = cbctiq.read_volume(dicom)
    arr, affine = nifti_array(str(out))
    np.testing.assert_array_equal(vol.array, arr)
    np.testing.assert_allclose(vol.affine, affine, rtol=0, atol=1e-5)


def test_read_volume_series_choice(dicom):
    series = pydicom_series_uid(dicom)
    np.testing.assert_array_equal(cbctiq.read_volume(dicom, series=series).array,
                                  cbctiq.read_volume(dicom).array)
    with pytest.raises(cbctiq.Error, match="1.2.3.4"):
        cbctiq.read_volume(dicom, series="1.2.3.4")


def pydicom_series_uid(folder):
    import pydicom
    first = sorted(os.listdir(folder))[0]
    return str(pydicom.dcmread(os.path.join(folder, first), stop_before_pixels=True).SeriesInstanceUID)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_equals_cli(cli, model, model_dir, nifti, tmp_path):
    pred, per_slice = tmp_path / "pred.csv", tmp_path / "slices.csv"
    cli("predict", "--model", model_dir, "--out", pred, "--quiet", nifti)
    cli("predict", "--model", model_dir, "--out", per_slice, "--per-slice", "--quiet", nifti)
    got = model.predict(nifti)
    rows = read_csv(pred)
    assert [r["category"] for r in rows] == list(got)
    for r in rows:
        assert got[r["category"]] == float(r["pred"]), r["category"]
    slices = model.predict_slices(cbctiq.read_volume(nifti))
    rows = read_csv(per_slice)
    assert slices.shape == (128, len(model.categories)) and len(rows) == slices.size
    for r in rows:
        assert float(slices[int(r["slice"]), model.categories.index(r["category"])]) == float(r["pred"])
    # The volume level is the mean of the slices (in double precision).
    np.testing.assert_allclose(slices.astype(np.float64).mean(axis=0), list(got.values()), rtol=1e-12)


@pytest.mark.parametrize("method,layer", [("gradcam", None), ("gradcam++", "block2.relu2"), ("ig", None)])
def test_gradcam_equals_cli(cli, model, model_dir, nifti, tmp_path, method, layer):
    out = tmp_path / "map.nii.gz"
    extra = ["--layer", layer] if layer else []
    extra += ["--ig-steps", 4] if method == "ig" else []
    cli("gradcam", "--model", model_dir, "--category", "larynx", "--method", method, *extra,
        "--out", out, "--quiet", nifti)
    got = cbctiq.gradcam(model, nifti, "larynx", method=method, layer=layer, ig_steps=4)
    want, _ = nifti_array(str(out))
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert got.max() > 0


def test_gradcam_dicom_equals_cli(cli, model, model_dir, dicom, tmp_path):
    out = tmp_path / "map.nii"
    cli("gradcam", "--model", model_dir, "--category", "mandible", "--out", out, "--quiet", dicom)
    np.testing.assert_array_equal(cbctiq.gradcam(model, cbctiq.read_volume(dicom), "mandible"),
                                  nifti_array(str(out))[0])


def assert_rows_equal(got, want):
    """Every column of ae.csv, the localisation and faithfulness columns
    (energy_in_structure ... empty_reason) included, exactly equal."""
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for column in want.columns:
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), err_msg=column)


def ae_cli(cli, model_dir, volume_path, tmp_path, *options):
    cohort = tmp_path / "cohort.csv"
    cohort.write_text(f"volume_id,path\nct,{volume_path}\n")
    out = tmp_path / "ae.csv"
    cli("ae", "--model", model_dir, "--cohort", cohort, "--out", out, "--quiet", *options)
    return cbctiq.read_table(out)


@pytest.mark.parametrize("options,kwargs", [
    ((), {}),
    (("--method", "layercam", "--grid", "feature", "--aggregate", "mean", "--sign", "neg"),
     {"method": "layercam", "grid": "feature", "aggregate": "mean", "sign": -1}),
    (("--slice-step", "3", "--relu", "before"), {"slice_step": 3, "relu": False}),
])
def test_attribution_energy_equals_cli(cli, model, model_dir, nifti, tmp_path, options, kwargs):
    want = ae_cli(cli, model_dir, nifti, tmp_path, *options)
    full = cbctiq.attribution_energy(model, nifti, **kwargs, full=True)
    assert_rows_equal(full, want)
    assert np.isfinite(full["deletion_auc"]).all()  # the curves ran (no structures: no energy)
    assert (full["empty_reason"] == "no_structure").all()
    ae = cbctiq.attribution_energy(model, cbctiq.read_volume(nifti), **kwargs)
    assert ae == dict(zip(want["category"], want["ae_selected"]))


def assert_curves_equal(got, want):
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for column in want.columns:
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), err_msg=column)


@pytest.mark.parametrize("options,kwargs", [
    ((), {}),
    (("--seed", "7", "--curve-slices", "2"), {"seed": 7, "curve_slices": 2}),
    (("--perturbation", "road"), {"perturbation": "road"}),
    (("--perturbation", "none"), {"perturbation": "none"}),
])
def test_curve_options_and_curves_equal_cli(cli, model, model_dir, nifti, tmp_path, options, kwargs):
    """perturbation, seed and curve_slices are `cbctiq ae`'s options, with
    its defaults: the same ae.csv rows, and deletion_curves the same rows as
    its --curves file."""
    curves = tmp_path / "curves.csv"
    want = ae_cli(cli, model_dir, nifti, tmp_path, "--curves", curves, *options)
    assert_rows_equal(cbctiq.attribution_energy(model, nifti, full=True, **kwargs), want)
    got = cbctiq.deletion_curves(model, nifti, **kwargs)
    want_curves = cbctiq.read_table(curves)
    assert_curves_equal(got, want_curves)
    if kwargs.get("perturbation") == "none":
        assert len(got) == 0 and want["deletion_auc"].isna().all()
    else:  # four curves of 21 steps for every category
        assert len(got) == 4 * 21 * len(model.categories)


def test_in_memory_volume_equals_file(model, nifti):
    """A Volume made from numpy arrays (as from nibabel or MONAI) gives what
    the file gives; a C-ordered float64 copy is converted, not refused."""
    img = nib.load(nifti)
    vol = cbctiq.Volume(np.ascontiguousarray(img.get_fdata()), img.affine, name="ct")
    assert model.predict(vol) == model.predict(nifti)


def test_errors_carry_the_library_message(model, model_dir, tmp_path, nifti):
    with pytest.raises(cbctiq.Error, match="no_such.nii.gz") as e:
        cbctiq.read_volume(tmp_path / "no_such.nii.gz")
    assert e.value.code == "I/O error"
    bad = tmp_path / "bad_model"
    bad.mkdir()
    (bad / "model.json").write_text("{ not json")
    with pytest.raises(cbctiq.Error, match="model.json"):
        cbctiq.Model.load(bad)
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for name in ("model.json", "weights.safetensors"):
        data = open(os.path.join(model_dir, name), "rb").read()
        (truncated / name).write_bytes(data if name == "model.json" else data[: len(data) // 2])
    with pytest.raises(cbctiq.Error, match="weights.safetensors"):
        cbctiq.Model.load(truncated)
    with pytest.raises(cbctiq.Error, match="layer 'nope'|nope"):
        cbctiq.gradcam(model, nifti, "parotid", layer="nope")
    tiny = cbctiq.Volume(np.zeros((2, 2, 1), np.float32), np.eye(4), name="tiny")
    with pytest.raises(cbctiq.Error, match="tiny"):
        cbctiq.gradcam(model, tiny, "parotid")


def test_wrong_types_and_shapes(model, nifti):
    with pytest.raises(ValueError, match="3 dimensions"):
        cbctiq.Volume(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(TypeError, match="dtype"):
        cbctiq.Volume(np.array([[["a"]]]), np.eye(4))
    with pytest.raises(TypeError, match="dtype"):
        cbctiq.Volume(np.zeros((2, 2, 2), np.complex64), np.eye(4))
    with pytest.raises(ValueError, match="non-finite"):
        cbctiq.Volume(np.full((2, 2, 2), np.nan), np.eye(4))
    with pytest.raises(ValueError, match="4x4"):
        cbctiq.Volume(np.zeros((2, 2, 2)), np.eye(3))
    with pytest.raises(TypeError, match="Volume or a path"):
        model.predict(np.zeros((4, 4, 4)))
    with pytest.raises(TypeError, match="Model"):
        cbctiq.gradcam("model", nifti, "parotid")
    with pytest.raises(ValueError, match="unknown category 'liver'"):
        cbctiq.gradcam(model, nifti, "liver")
    with pytest.raises(ValueError, match="method expects one of"):
        cbctiq.attribution_energy(model, nifti, method="cam")
    with pytest.raises(ValueError, match="slices expects"):
        cbctiq.attribution_energy(model, nifti, slices="some")
    with pytest.raises(ValueError, match="perturbation expects blur, road or none"):
        cbctiq.attribution_energy(model, nifti, perturbation="noise", full=True)
    with pytest.raises(TypeError, match="seed"):
        cbctiq.deletion_curves(model, nifti, seed=1.5)
    with pytest.raises(ValueError, match="curve_slices"):
        cbctiq.deletion_curves(model, nifti, curve_slices=-1)
    with pytest.raises(TypeError, match="batch"):
        cbctiq.Model.load(model.path, batch=2.5)


def test_info(model, model_dir):
    import json
    spec = json.load(open(os.path.join(model_dir, "model.json")))
    info = model.info()
    assert info["outputs"] == spec["outputs"] == model.categories
    assert info["target_layer"] == spec["target_layer"]
    assert [(l["name"], l["type"]) for l in info["layers"]] == [(l["name"], l["type"]) for l in spec["layers"]]
    assert (info["input"]["height"], info["input"]["width"]) == (64, 64)
    assert (info["input"]["channels"], info["input"]["slices"], info["input"]["mean"]) == (1, "replicate", None)


def test_two_threads_predict_as_one(model, nifti, data):
    other = os.path.join(data, "openkbp_hn_ct", "openkbp_train_pt_132", "ct.nii.gz")
    vols = [cbctiq.read_volume(nifti), cbctiq.read_volume(other)]
    alone = [model.predict_slices(v) for v in vols]
    results = [None] * 4
    go = threading.Barrier(4)

    def work(i):
        go.wait()
        results[i] = model.predict_slices(vols[i % 2])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r, alone[i % 2])


def test_long_calls_release_the_gil(model, nifti):
    """While one thread is inside a long library call, another thread's
    Python keeps running: its ticks have no gap near the call's length."""
    vol = cbctiq.read_volume(nifti)
    ticks, span = [], {}
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    def call():
        span["start"] = time.perf_counter()
        cbctiq.attribution_energy(model, vol, method="ig", ig_steps=8)
        span["end"] = time.perf_counter()
    t = threading.Thread(target=ticker)
    t.start()
    time.sleep(0.01)
    call()
    stop.set()
    t.join()
    inside = [x for x in ticks if span["start"] <= x <= span["end"]]
    duration = span["end"] - span["start"]
    assert duration > 0.2, f"the call took {duration:.3f} s: too short to tell"
    gaps = np.diff([span["start"]] + inside + [span["end"]])
    assert gaps.max() < duration / 4, f"largest gap {gaps.max():.3f} s of a {duration:.3f} s call"


@pytest.mark.parametrize("slices", ["all", "structures"])
def test_attribution_energy_with_masks_equals_cli(cli, model, model_dir, sim, tmp_path, slices):
    """A cohort row's label mask gives the structure columns, and with
    slices="structures" the slices, as `cbctiq ae` on that cohort."""
    out = tmp_path / "ae.csv"
    cli("ae", "--model", model_dir, "--cohort", os.path.join(sim, "cohort.csv"), "--slices", slices,
        "--out", out, "--quiet")
    want = cbctiq.read_table(out)
    rows = list(csv.DictReader(open(os.path.join(sim, "cohort.csv"))))
    for r in rows[:3]:
        got = cbctiq.attribution_energy(model, os.path.join(sim, r["path"]), slices=slices,
                                        mask=os.path.join(sim, r["mask"]), full=True)
        mine = want[want["volume_id"] == r["volume_id"]]
        assert len(mine) == len(model.categories)
        assert_rows_equal(got, mine)
        assert np.isfinite(got.loc["parotid", "ae_in_structure"])
        assert np.isfinite(got.loc["parotid", "energy_in_structure"])
    r = rows[0]
    curves = tmp_path / "curves.csv"
    cohort = tmp_path / "one.csv"
    cohort.write_text(f"volume_id,path,mask\n{r['volume_id']},{os.path.join(sim, r['path'])},"
                      f"{os.path.join(sim, r['mask'])}\n")
    cli("ae", "--model", model_dir, "--cohort", cohort, "--slices", slices, "--out", tmp_path / "one.csv.ae",
        "--curves", curves, "--quiet")
    assert_curves_equal(cbctiq.deletion_curves(model, os.path.join(sim, r["path"]), slices=slices,
                                               mask=os.path.join(sim, r["mask"])),
                        cbctiq.read_table(curves))
    with pytest.raises(TypeError, match="as a path"):
        cbctiq.attribution_energy(model, cbctiq.read_volume(os.path.join(sim, rows[0]["path"])),
                                  mask=os.path.join(sim, rows[0]["mask"]))
