"""_model.py - cbctiq.Model (a model folder through the library's network),
cbctiq.gradcam and cbctiq.attribution_energy: the same data path as the
command line (model_input.h: canonical grid, slices, window, resampling),
the same network, the same Grad-CAM and the same ae.csv writer."""
import ctypes as C
import os
import tempfile
import threading
from typing import Dict, Optional, Union

import numpy as np

from . import _lib
from ._lib import lib
from ._table import _read_csv_columns, _frame_or_dict, _pandas
from ._volume import PathLike, Volume, read_volume, volume_from_c, volume_name

__all__ = ["Model", "gradcam", "attribution_energy", "deletion_curves"]

SLICES_ALL = 0


def _as_volume(volume: Union[Volume, PathLike]) -> Volume:
    if isinstance(volume, Volume):
        return volume
    if isinstance(volume, (str, bytes, os.PathLike)):
        return read_volume(volume)
    raise TypeError(f"expected a cbctiq.Volume or a path, got {type(volume).__name__}")


def _positive_int(name, value, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if not 1 <= value <= high:
        raise ValueError(f"{name} must be in [1, {high}], got {value}")
    return int(value)


class _ModelInput:
    """A volume as the model sees it (cbq_model_input), freed on exit: a
    Volume in memory, or (row) a cohort row's files, volume with its label
    mask or RTSTRUCT, read as `cbctiq ae` reads them."""

    def __init__(self, volume: Volume, spec, selection=SLICES_ALL, step=1, min_h=0, min_w=0, row=None):
        self.volume, self.row = volume, row
        self.c = _lib.cbq_model_input()
        self.spec = spec
        self.opts = _lib.cbq_model_input_options(selection=selection, step=step, min_h=min_h,
                                                 min_w=min_w, with_structures=1)

    def __enter__(self):
        err = _lib.new_error()
        if self.row is not None:
            rc = lib.cbq_model_input_load(C.byref(self.c), C.byref(self.row), None, C.byref(self.spec.input),
                                          C.byref(self.opts), C.byref(err))
        else:
            cvol = self.volume._as_c()  # views the numpy voxels; copied onto the canonical grid
            rc = lib.cbq_model_input_from_volume(C.byref(self.c), C.byref(cvol),
                                                 _lib.encode(self.volume.name), C.byref(self.spec.input),
                                                 C.byref(self.opts), C.byref(err))
        _lib.check(rc, err)
        return self.c

    def __exit__(self, *exc):
        lib.cbq_model_input_free(C.byref(self.c))


def _cohort_row(volume, mask, rtstruct):
    """A cohort row (cbq_cohort_volume) for a volume file with its label
    mask (labels.json beside it) or RTSTRUCT."""
    if not isinstance(volume, (str, bytes, os.PathLike)):
        raise TypeError("mask= and rtstruct= need the volume as a path (the structures are matched "
                        "to the file's grid and series), got a " + type(volume).__name__)
    row = _lib.cbq_cohort_volume()
    path = os.fsencode(volume)
    name = volume_name(volume)
    for field, value, size in (("path", path, 4096), ("mask", mask, 4096), ("rtstruct", rtstruct, 4096),
                               ("id", name.encode(), 256)):
        value = os.fsencode(value) if value is not None else b""
        if len(value) >= size:
            raise ValueError(f"{field}: longer than {size - 1} bytes")
        setattr(row, field, value)
    return row, name


class Model:
    """A model folder (model.json + weights.safetensors) loaded by the
    library. Thread-safe: each call borrows a network of its own from a
    small pool (a network holds its activations), and every long call
    releases the GIL, so threads run models in parallel with identical
    results."""

    def __init__(self, path: str, batch: int, threads: int):
        self.path = os.fspath(path)
        self.batch = _positive_int("batch", batch, 4096)
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0: all cores), got {threads!r}")
        self.threads = int(threads)
        self._idle = []
        self._lock = threading.Lock()
        net = self._load_net()
        self._idle.append(net)
        spec = lib.cbq_net_spec(net).contents
        self.input = _lib.cbq_input_spec.from_buffer_copy(spec.input)
        self.categories = [spec.outputs[o].value.decode() for o in range(spec.n_outputs)]
        self._info = {
            "arch": spec.arch.decode(),
            "input": {"height": spec.input.height, "width": spec.input.width,
                      "hu_min": spec.input.hu_min, "hu_max": spec.input.hu_max,
                      "channels": lib.cbq_input_channels(C.byref(spec.input)),
                      "slices": lib.cbq_input_slices_name(spec.input.slices).decode(),
                      "mean": list(spec.input.mean[:spec.input.n_norm]) or None,
                      "std": list(spec.input.std[:spec.input.n_norm]) or None},
            "outputs": list(self.categories),
            "target_layer": spec.target_layer.decode(),
            "layers": [{"name": spec.layers[i].name.decode(),
                        "type": lib.cbq_layer_kind_name(spec.layers[i].kind).decode()}
                       for i in range(spec.n_layers)],
        }

    @classmethod
    def load(cls, path: PathLike, batch: int = 64, threads: int = 0) -> "Model":
        """Loads a model folder; `batch`: slices per forward pass (the CLI's
        predict --batch, default 64); `threads`: 0 = all cores. Raises
        cbctiq.Error naming the file and tensor when the folder is bad."""
        return cls(path, batch, threads)

    def _load_net(self):
        err = _lib.new_error()
        net = C.c_void_p()
        _lib.check(lib.cbq_model_load(_lib.encode(self.path), C.byref(net), self.batch, C.byref(err)), err)
        lib.cbq_net_set_threads(net, self.threads)
        return net

    def _acquire(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._load_net()

    def _release(self, net):
        with self._lock:
            self._idle.append(net)

    def close(self):
        """Frees the networks now (also done when the Model is collected)."""
        with self._lock:
            nets, self._idle = self._idle, []
        for net in nets:
            lib.cbq_net_free(net)

    def __del__(self):
        if getattr(self, "_idle", None):
            self.close()

    def __repr__(self):
        return f"Model({self.path!r}, outputs={self.categories})"

    def info(self) -> dict:
        """The architecture: arch, input (size, HU window, channels: how many,
        "replicate" or "adjacent" slices, per-channel mean and std or None), outputs,
        target_layer, and the layers (name and type) in order."""
        return {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
                for k, v in self._info.items()}

    def _spec(self, net):
        return lib.cbq_net_spec(net).contents

    def _predict(self, volume: Volume):
        """(volume-level means per category, per-slice predictions in the
        file's slice order [nz, categories])."""
        net = self._acquire()
        try:
            with _ModelInput(volume, self._spec(net)) as mi:
                vp = _lib.cbq_volume_pred()
                err = _lib.new_error()
                rc = lib.cbq_predict_input(net, C.byref(mi), self.batch, C.byref(vp), C.byref(err))
                if rc != 0:
                    err.msg = (volume.name.encode() + b": " + err.msg)[:1023]
                _lib.check(rc, err)
                try:
                    n, no = vp.n_slices, vp.n_outputs
                    per_slice = np.full((mi.canon.nz, no), np.nan, dtype=np.float32)
                    pred = np.ctypeslib.as_array(vp.pred, shape=(n, no)) if n else np.zeros((0, no))
                    for i in range(n):
                        per_slice[lib.cbq_model_input_source_slice(C.byref(mi), vp.slice[i])] = pred[i]
                    means = {self.categories[o]: float(vp.mean[o]) for o in range(no)}
                finally:
                    lib.cbq_volume_pred_free(C.byref(vp))
                return means, per_slice
        finally:
            self._release(net)

    def predict(self, volume: Union[Volume, PathLike]) -> Dict[str, float]:
        """{category: volume-level score}: the mean of the slice predictions
        over every axial slice, as `cbctiq predict` writes it."""
        return self._predict(_as_volume(volume))[0]

    def predict_slices(self, volume: Union[Volume, PathLike]) -> np.ndarray:
        """Predictions of every axial slice, [slices, categories] (float32),
        row k = slice k in the file's order (`cbctiq predict --per-slice`)."""
        return self._predict(_as_volume(volume))[1]


def _attrib_options(method, layer, relu, sign, grid, aggregate, ig_steps):
    opt = _lib.cbq_attrib_options()
    lib.cbq_attrib_options_default(C.byref(opt))
    m = C.c_int()
    if not isinstance(method, str) or not lib.cbq_cam_method_parse(method.encode(), C.byref(m)):
        raise ValueError(f"method expects one of {lib.cbq_cam_method_list().decode()}; got {method!r}")
    opt.method = m.value
    if layer is not None:
        if not isinstance(layer, str) or len(layer.encode()) >= 64:
            raise ValueError(f"layer must be a layer name (under 64 bytes), got {layer!r}")
        opt.layer = layer.encode()
    opt.relu = 1 if relu else 0
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    opt.sign = sign
    grids, aggs = {"input": 0, "feature": 1}, {"sum": 0, "mean": 1}
    if grid not in grids:
        raise ValueError(f"grid expects input or feature, got {grid!r}")
    if aggregate not in aggs:
        raise ValueError(f"aggregate expects sum or mean, got {aggregate!r}")
    opt.grid, opt.aggregate = grids[grid], aggs[aggregate]
    opt.ig_steps = _positive_int("ig_steps", ig_steps, 4096)
    return opt


class _Cam:
    """A cbq_cam on a borrowed network."""

    def __init__(self, model: Model, opt, batch):
        self.model, self.opt, self.batch = model, opt, min(batch, model.batch)
        self.cam = C.c_void_p()

    def __enter__(self):
        self.net = self.model._acquire()
        err = _lib.new_error()
        rc = lib.cbq_cam_create(C.byref(self.cam), self.net, self.batch, C.byref(self.opt), C.byref(err))
        if rc != 0:
            self.model._release(self.net)
        _lib.check(rc, err)
        return self

    def __exit__(self, *exc):
        lib.cbq_cam_free(self.cam)
        self.model._release(self.net)

    def feature_shape(self):
        h, w = _lib.c_size(), _lib.c_size()
        lib.cbq_cam_feature_shape(self.cam, C.byref(h), C.byref(w))
        return h.value, w.value

    def run(self, mi, name, maps=None):
        """Attribution of every selected slice (cbq_model_input_attrib, with
        the structures' weights when the input has them); fills ae (one per
        output) and, when given, the input-grid maps {output: [n, H, W]}."""
        no = lib.cbq_cam_n_outputs(self.cam)
        ae = (_lib.cbq_ae * no)()
        ptrs = None
        if maps:
            ptrs = (_lib.c_float_p * no)()
            for output, array in maps.items():
                ptrs[output] = array.ctypes.data_as(_lib.c_float_p)
        err = _lib.new_error()
        rc = lib.cbq_model_input_attrib(self.cam, C.byref(mi), ae, ptrs, C.byref(err))
        if rc != 0:
            err.msg = (name.encode() + b": " + err.msg)[:1023]
        _lib.check(rc, err)
        return ae

    def free_ae(self, ae):
        for a in ae:
            lib.cbq_ae_free(C.byref(a))


def _check_model(model):
    if not isinstance(model, Model):
        raise TypeError(f"expected a cbctiq.Model, got {type(model).__name__}")


def gradcam(model: Model, volume: Union[Volume, PathLike], category: str, method: str = "gradcam",
            layer: Optional[str] = None, *, relu: bool = True, sign: int = 1, ig_steps: int = 32,
            batch: int = 16) -> np.ndarray:
    """The raw attribution map of every axial slice for one category, on
    the volume's own grid (float32 [i, j, k], the array `cbctiq gradcam`
    writes as its NIfTI). method: one of the CLI's --method names; layer:
    the target layer (None: model.json's target_layer)."""
    _check_model(model)
    volume = _as_volume(volume)
    if category not in model.categories:
        raise ValueError(f"unknown category {category!r}; the model's outputs are: "
                         f"{', '.join(model.categories)}")
    opt = _attrib_options(method, layer, relu, sign, "input", "sum", ig_steps)
    batch = _positive_int("batch", batch, 1024)
    with _Cam(model, opt, batch) as cam:
        h, w = cam.feature_shape()
        with _ModelInput(volume, model._spec(cam.net), min_h=max(h, 1), min_w=max(w, 1)) as mi:
            maps = np.empty((mi.n, mi.H, mi.W), dtype=np.float32)
            ae = cam.run(mi, volume.name, {model.categories.index(category): maps})
            cam.free_ae(ae)
            err = _lib.new_error()
            out = _lib.cbq_volume()
            _lib.check(lib.cbq_model_input_unmap_source(C.byref(mi), maps.ctypes.data_as(_lib.c_float_p),
                                                        C.byref(out), C.byref(err)), err)
            return volume_from_c(out, volume.name).array


def _rows_options(perturbation, seed, curve_slices, batch):
    """cbq_ae_volume_options from the keywords of `cbctiq ae`'s options."""
    o = _lib.cbq_ae_volume_options()
    lib.cbq_ae_volume_options_default(C.byref(o))
    baseline = C.c_int()
    if not isinstance(perturbation, str) or not lib.cbq_perturb_parse(perturbation.encode(), C.byref(baseline)):
        raise ValueError(f"perturbation expects blur, road or none, got {perturbation!r}")
    o.perturbation = baseline.value
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    o.seed = int(seed)
    if isinstance(curve_slices, bool) or not isinstance(curve_slices, (int, np.integer)):
        raise TypeError(f"curve_slices must be an integer, got {type(curve_slices).__name__}")
    if not 0 <= curve_slices <= 100000:
        raise ValueError(f"curve_slices must be in [0, 100000] (0: all), got {curve_slices}")
    o.curve_slices = int(curve_slices)
    o.batch = batch
    return o


def _attribution_tables(model, volume, method, slices, layer, relu, sign, grid, aggregate, slice_step,
                        ig_steps, batch, mask, rtstruct, perturbation, seed, curve_slices, curves,
                        localise=True):
    """ae.csv's columns of one volume (and curves.csv's when `curves`),
    written by the library's one function for a volume's rows
    (cbq_ae_writer_put_volume, as `cbctiq ae`), into a temporary folder,
    and read back. localise=False: the AE columns only (the localisation
    columns not_computed), without the maps of every output in memory."""
    _check_model(model)
    row = None
    if mask is not None or rtstruct is not None:
        row, name = _cohort_row(volume, mask, rtstruct)
        volume = Volume(np.zeros((1, 1, 1), np.float32), np.eye(4), name=name)  # a name only
    else:
        volume = _as_volume(volume)
    opt = _attrib_options(method, layer, relu, sign, grid, aggregate, ig_steps)
    batch = _positive_int("batch", batch, 1024)
    step = _positive_int("slice_step", slice_step, 1000)
    selection = C.c_int()
    if not isinstance(slices, str) or not lib.cbq_slice_selection_parse(slices.encode(), C.byref(selection)):
        raise ValueError(f"slices expects all or structures, got {slices!r}")
    with _Cam(model, opt, batch) as cam:
        rows = _rows_options(perturbation, seed, curve_slices, cam.batch)
        h, w = cam.feature_shape()
        with _ModelInput(volume, model._spec(cam.net), selection.value, step, max(h, 1), max(w, 1),
                         row=row) as mi:
            maps = None
            if localise:
                maps = {o: np.empty((mi.n, mi.H, mi.W), dtype=np.float32) for o in range(len(model.categories))}
            ae = cam.run(mi, volume.name, maps)
            try:
                return _volume_rows(cam, mi, maps, ae, volume.name, rows, curves)
            finally:
                cam.free_ae(ae)


def _volume_rows(cam, mi, maps, ae, volume_id, rows, curves):
    """({column: values} of ae.csv, of curves.csv or None) for one volume;
    maps None: the rows without their localisation columns."""
    with tempfile.TemporaryDirectory(prefix="cbctiq-ae-") as tmp:
        ae_path = os.path.join(tmp, "ae.csv").encode()
        curves_path = os.path.join(tmp, "curves.csv").encode()
        w, cw = _lib.cbq_ae_writer(), _lib.cbq_csv_writer()
        err = _lib.new_error()
        _lib.check(lib.cbq_ae_writer_open(C.byref(w), ae_path, C.byref(err)), err)
        rc = lib.cbq_curves_writer_open(C.byref(cw), curves_path, C.byref(err)) if curves else 0
        if rc != 0:
            lib.cbq_ae_writer_abort(C.byref(w))
            _lib.check(rc, err)
        if maps is not None:
            ptrs = (_lib.c_float_p * len(maps))(*(maps[o].ctypes.data_as(_lib.c_float_p) for o in range(len(maps))))
            rc = lib.cbq_ae_writer_put_volume(C.byref(w), C.byref(cw) if curves else None, _lib.encode(volume_id),
                                              cam.cam, cam.net, C.byref(mi), ptrs, ae, C.byref(rows), C.byref(err))
        else:
            for o in range(len(ae)):
                rc = lib.cbq_ae_writer_put(C.byref(w), _lib.encode(volume_id), lib.cbq_cam_category_name(cam.cam, o),
                                           cam.cam, o, C.byref(ae[o]), None, C.byref(err))
                if rc != 0:
                    break
        if rc == 0:
            rc = lib.cbq_ae_writer_commit(C.byref(w), C.byref(err))
        if rc == 0 and curves:
            rc = lib.cbq_csv_writer_commit(C.byref(cw), C.byref(err))
        if rc != 0:
            lib.cbq_ae_writer_abort(C.byref(w))
            if curves:
                lib.cbq_csv_writer_abort(C.byref(cw))
            err.msg = (volume_id.encode() + b": " + err.msg)[:1023]
        _lib.check(rc, err)
        return _read_csv_columns(ae_path), (_read_csv_columns(curves_path) if curves else None)


def attribution_energy(model: Model, volume: Union[Volume, PathLike], method: str = "gradcam",
                       slices: str = "all", *, layer: Optional[str] = None, relu: bool = True,
                       sign: int = 1, grid: str = "input", aggregate: str = "sum",
                       slice_step: int = 1, ig_steps: int = 32, batch: int = 16,
                       mask: Optional[PathLike] = None, rtstruct: Optional[PathLike] = None,
                       perturbation: str = "blur", seed: int = 1, curve_slices: int = 1,
                       full: bool = False):
    """Attribution Energy of one volume for every category: {category:
    AE}, AE being ae.csv's ae_selected (the sum of the raw maps over the
    used slices on the grid and with the aggregate chosen; docs/attribution.md).

    full=True returns the whole decomposition instead, exactly the rows
    `cbctiq ae` writes to ae.csv (one library function writes both),
    localisation and faithfulness columns included: a pandas DataFrame with
    one row per category when pandas is installed, else {category: {column:
    value}}. slices: "all" or "structures" (the slices where the structures
    are drawn; without them, every slice).

    mask (a label NIfTI, its labels.json beside it) or rtstruct (a DICOM
    RTSTRUCT of the volume's series) give the structures, as the columns of
    a cohort.csv row do: then `volume` must be the volume's path, and the
    structure columns (ae_in_structure, structure_fraction,
    energy_in_structure, pointing_hit) are filled.

    perturbation ("blur", "road" or "none"), seed and curve_slices are
    `cbctiq ae`'s --perturbation, --seed and --curve-slices (same defaults):
    the deletion/insertion curves behind deletion_auc ... insertion_auc_random
    (about 230 forward passes per curve slice). They run only with full=True;
    cbctiq.deletion_curves returns the curves themselves."""
    columns, _ = _attribution_tables(model, volume, method, slices, layer, relu, sign, grid, aggregate,
                                     slice_step, ig_steps, batch, mask, rtstruct,
                                     perturbation, seed, curve_slices, False, localise=full)
    if full:
        return _frame_or_dict(columns, index="category")
    return {c: float(v) for c, v in zip(columns["category"], columns["ae_selected"])}


def deletion_curves(model: Model, volume: Union[Volume, PathLike], method: str = "gradcam",
                    slices: str = "all", *, layer: Optional[str] = None, relu: bool = True,
                    sign: int = 1, grid: str = "input", aggregate: str = "sum",
                    slice_step: int = 1, ig_steps: int = 32, batch: int = 16,
                    mask: Optional[PathLike] = None, rtstruct: Optional[PathLike] = None,
                    perturbation: str = "blur", seed: int = 1, curve_slices: int = 1):
    """The deletion and insertion curves of one volume, every category:
    exactly the rows `cbctiq ae --curves` writes (docs/formats.md,
    curves.csv: volume_id, category, order (map | random), curve (deletion
    | insertion), step, fraction, score, normalised), as a pandas DataFrame,
    or {column: list} without pandas. The keywords are attribution_energy's;
    a category whose map is zero everywhere has no curves, and
    perturbation="none" gives none at all. Costs what
    attribution_energy(..., full=True) costs; to have both, call that and
    this with the same keywords (the curves are deterministic)."""
    _, curves = _attribution_tables(model, volume, method, slices, layer, relu, sign, grid, aggregate,
                                    slice_step, ig_steps, batch, mask, rtstruct, perturbation, seed,
                                    curve_slices, True)
    pd = _pandas()
    return pd.DataFrame(curves) if pd is not None else curves
