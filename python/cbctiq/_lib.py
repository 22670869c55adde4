"""_lib.py - libcbctiq.so through ctypes: finding the library, the C
structures the binding reads or fills (mirrors of include/cbctiq/*.h, their
layout checked against the compiler's by the test python_struct_layout),
the prototypes, and errors as cbctiq.Error.

ctypes.CDLL releases the GIL for the length of every call, so long calls
(prediction, attribution, bootstrap) let other Python threads run."""
import ctypes as C
import os

__all__ = ["lib", "Error", "check", "new_error"]

c_size = C.c_size_t
c_double_p = C.POINTER(C.c_double)
c_float_p = C.POINTER(C.c_float)
c_size_p = C.POINTER(C.c_size_t)
c_char_pp = C.POINTER(C.c_char_p)

NAME_MAX = 64
MAX_OUTPUTS = 16
MAX_INPUT_CHANNELS = 16
MAX_INPUTS = 64
STRUCT_COUNT = 4  # cbq_structure_kind: parotid, submandibular, larynx, mandible


class Error(Exception):
    """A failure reported by libcbctiq: its message (naming the file, line or
    field and what was expected) and its code (cbctiq's cbq_code name, e.g.
    "format error")."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        self.code = code


class cbq_error(C.Structure):
    _fields_ = [("code", C.c_int), ("msg", C.c_char * 1024), ("src_file", C.c_char_p),
                ("src_line", C.c_int)]


class cbq_volume(C.Structure):
    _fields_ = [("nx", c_size), ("ny", c_size), ("nz", c_size), ("spacing", C.c_double * 3),
                ("affine", (C.c_double * 4) * 4), ("data", c_float_p)]


class cbq_nifti_header(C.Structure):
    _fields_ = [("version", C.c_int), ("swapped", C.c_int), ("datatype", C.c_int),
                ("bytes_per_voxel", c_size), ("dim", C.c_int64 * 8), ("pixdim", C.c_double * 8),
                ("vox_offset", C.c_int64), ("scl_slope", C.c_double), ("scl_inter", C.c_double),
                ("qform_code", C.c_int), ("sform_code", C.c_int), ("quatern", C.c_double * 3),
                ("qoffset", C.c_double * 3), ("srow", (C.c_double * 4) * 3),
                ("descrip", C.c_char * 81), ("nvox", c_size), ("data_bytes", c_size), ("two_file", C.c_int)]


class cbq_dicom_series_info(C.Structure):
    _fields_ = [("series_uid", C.c_char * 68), ("study_uid", C.c_char * 68),
                ("frame_of_reference_uid", C.c_char * 68), ("series_description", C.c_char * 132),
                ("patient_name", C.c_char * 132), ("patient_id", C.c_char * 68),
                ("modality", C.c_char * 20), ("manufacturer", C.c_char * 132),
                ("model", C.c_char * 132), ("transfer_syntax", C.c_char * 132),
                ("transfer_syntax_uid", C.c_char * 68), ("n_files", c_size),
                ("first_file", C.c_char * 1024)]


class cbq_dicom_meta(C.Structure):
    _fields_ = [("info", cbq_dicom_series_info), ("n_slices", c_size),
                ("slice_spacing", C.c_double), ("rescale_slope", C.c_double),
                ("rescale_intercept", C.c_double), ("hu_min", C.c_double), ("hu_max", C.c_double),
                ("n_padding", c_size)]


class cbq_volume_source(C.Structure):
    _fields_ = [("kind", C.c_int), ("nifti", cbq_nifti_header), ("dicom", cbq_dicom_meta)]


class cbq_reorient(C.Structure):
    _fields_ = [("perm", C.c_int * 3), ("flip", C.c_int * 3), ("src_dims", c_size * 3),
                ("src_affine", (C.c_double * 4) * 4), ("src_spacing", C.c_double * 3)]


class cbq_structures(C.Structure):
    _fields_ = [("nx", c_size), ("ny", c_size), ("nz", c_size),
                ("mask", C.POINTER(C.c_uint8) * STRUCT_COUNT),
                ("sources", (C.c_char * 256) * STRUCT_COUNT)]


class cbq_slice_spec(C.Structure):
    _fields_ = [("height", c_size), ("width", c_size), ("hu_min", C.c_double),
                ("hu_max", C.c_double)]


class cbq_resample_axis(C.Structure):
    _fields_ = [("n_in", c_size), ("n_out", c_size), ("start", c_size_p), ("idx", c_size_p),
                ("w", c_float_p)]


class cbq_slicer(C.Structure):
    _fields_ = [("spec", cbq_slice_spec), ("nx", c_size), ("ny", c_size),
                ("fx", cbq_resample_axis), ("fy", cbq_resample_axis),
                ("bx", cbq_resample_axis), ("by", cbq_resample_axis),
                ("scratch", c_float_p), ("scratch2", c_float_p)]


class cbq_model_input_options(C.Structure):
    _fields_ = [("selection", C.c_int), ("step", c_size), ("max_slices", c_size),
                ("min_h", c_size), ("min_w", c_size), ("with_structures", C.c_int)]


class cbq_model_input(C.Structure):
    _fields_ = [("canon", cbq_volume), ("src", cbq_volume_source), ("xf", cbq_reorient),
                ("structures", cbq_structures), ("has_structures", C.c_int),
                ("slicer", cbq_slicer), ("H", c_size), ("W", c_size), ("channels", c_size),
                ("hu_min", C.c_double),
                ("hu_max", C.c_double), ("n", c_size), ("ks", c_size_p), ("x", c_float_p)]


class cbq_cohort_volume(C.Structure):
    _fields_ = [("id", C.c_char * 256), ("path", C.c_char * 4096), ("mask", C.c_char * 4096),
                ("rtstruct", C.c_char * 4096), ("split", C.c_int), ("line", c_size)]


class cbq_input_spec(C.Structure):
    _fields_ = [("height", C.c_int), ("width", C.c_int), ("hu_min", C.c_double),
                ("hu_max", C.c_double), ("channels", C.c_int), ("slices", C.c_int),
                ("n_norm", c_size), ("mean", C.c_double * MAX_INPUT_CHANNELS),
                ("std", C.c_double * MAX_INPUT_CHANNELS)]


class cbq_batchnorm2d_cfg(C.Structure):
    _fields_ = [("channels", C.c_int), ("eps", C.c_double), ("momentum", C.c_double)]


class cbq_layer_cfg(C.Union):
    # The binding reads only a layer's name and kind; the union's members
    # that set its size and alignment are mirrored (conv: 13 ints, bn).
    _fields_ = [("conv", C.c_int * 13), ("bn", cbq_batchnorm2d_cfg)]


class cbq_layer_spec(C.Structure):
    _fields_ = [("name", C.c_char * NAME_MAX), ("kind", C.c_int), ("cfg", cbq_layer_cfg),
                ("n_inputs", c_size), ("inputs", C.c_int * MAX_INPUTS)]


class cbq_model_spec(C.Structure):
    _fields_ = [("arch", C.c_char * NAME_MAX), ("input", cbq_input_spec), ("n_layers", c_size),
                ("layers", C.POINTER(cbq_layer_spec)), ("n_outputs", c_size),
                ("outputs", (C.c_char * NAME_MAX) * MAX_OUTPUTS),
                ("target_layer", C.c_char * NAME_MAX)]


class cbq_volume_pred(C.Structure):
    _fields_ = [("n_slices", c_size), ("n_outputs", c_size), ("slice", c_size_p),
                ("pred", c_float_p), ("mean", C.c_double * 16)]


class cbq_attrib_options(C.Structure):
    _fields_ = [("method", C.c_int), ("layer", C.c_char * 64), ("relu", C.c_int),
                ("sign", C.c_int), ("grid", C.c_int), ("aggregate", C.c_int),
                ("ig_steps", C.c_int), ("ig_rule", C.c_int)]


class cbq_ae(C.Structure):
    _fields_ = [("n_slices", c_size), ("ae", C.c_double), ("ae_feature", C.c_double),
                ("ae_feature_pre", C.c_double), ("ae_feature_post", C.c_double),
                ("pred_sum", C.c_double), ("pred_part", C.c_double), ("has_structure", C.c_int),
                ("ae_in_structure", C.c_double), ("structure_sum", C.c_double),
                ("profile", c_double_p), ("slice_pred", c_float_p)]


class cbq_atomic_file(C.Structure):
    _fields_ = [("fp", C.c_void_p), ("final_path", C.c_char * 4096), ("tmp_path", C.c_char * 4096)]


class cbq_csv_writer(C.Structure):
    _fields_ = [("af", cbq_atomic_file), ("n_cols", c_size), ("col", c_size), ("failed", C.c_int)]


class cbq_ae_writer(C.Structure):
    _fields_ = [("csv", cbq_csv_writer), ("open", C.c_int)]


class cbq_ae_volume_options(C.Structure):
    _fields_ = [("perturbation", C.c_int), ("seed", C.c_uint64), ("curve_slices", c_size),
                ("batch", c_size)]


class cbq_csv(C.Structure):
    _fields_ = [("name", C.c_char_p), ("n_rows", c_size), ("n_cols", c_size),
                ("header", c_char_pp), ("cells", c_char_pp), ("line", c_size_p),
                ("storage", C.c_void_p)]


class cbq_corr(C.Structure):
    _fields_ = [("n", c_size), ("r", C.c_double), ("p", C.c_double), ("p_method", C.c_char_p),
                ("reason", C.c_char_p)]


class cbq_perm(C.Structure):
    _fields_ = [("p", C.c_double), ("n_perm", c_size), ("exact", C.c_int), ("reason", C.c_char_p)]


class cbq_boot(C.Structure):
    _fields_ = [("n_boot", c_size), ("n_valid", c_size), ("percentile", C.c_double * 2),
                ("bca", C.c_double * 2), ("z0", C.c_double), ("accel", C.c_double),
                ("reason", C.c_char_p)]


class cbq_loo(C.Structure):
    _fields_ = [("n", c_size), ("rho", c_double_p), ("p", c_double_p), ("influence", c_double_p),
                ("median_rho", C.c_double), ("median_p", C.c_double), ("min_rho", C.c_double),
                ("max_rho", C.c_double), ("jackknife_se", C.c_double), ("reason", C.c_char_p)]


class cbq_ratings(C.Structure):
    _fields_ = [("n_volumes", c_size), ("n_raters", c_size), ("n_categories", c_size),
                ("volumes", c_char_pp), ("raters", c_char_pp), ("categories", c_char_pp),
                ("weight", c_double_p), ("score", c_double_p)]


class cbq_consensus(C.Structure):
    _fields_ = [("mean", C.c_double), ("sd", C.c_double), ("n_raters", c_size)]


# Every mirrored structure, for the layout test.
STRUCTS = [cbq_error, cbq_volume, cbq_nifti_header, cbq_dicom_series_info, cbq_dicom_meta,
           cbq_volume_source, cbq_cohort_volume, cbq_reorient, cbq_structures, cbq_slice_spec, cbq_resample_axis,
           cbq_slicer, cbq_model_input_options, cbq_model_input, cbq_input_spec, cbq_layer_spec,
           cbq_model_spec, cbq_volume_pred, cbq_attrib_options, cbq_ae, cbq_corr, cbq_perm,
           cbq_boot, cbq_loo, cbq_ratings, cbq_consensus, cbq_atomic_file, cbq_csv_writer,
           cbq_ae_writer, cbq_ae_volume_options, cbq_csv]


def _find_library():
    """CBCTIQ_LIBRARY (a path to libcbctiq.so*), else the copy installed in
    this package, else the system's libcbctiq.so.0.1."""
    explicit = os.environ.get("CBCTIQ_LIBRARY")
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(here)):
        if name.startswith("libcbctiq.so"):
            return os.path.join(here, name)
    return "libcbctiq.so." + SOVERSION


SOVERSION = "0.1"
lib = C.CDLL(_find_library())
libc = C.CDLL(None)
libc.free.argtypes = [C.c_void_p]
libc.free.restype = None

P = C.POINTER
VOID_P = C.c_void_p
_PROTOTYPES = {
    # name: (restype, argtypes)
    "cbq_code_name": (C.c_char_p, [C.c_int]),
    "cbq_volume_load": (C.c_int, [P(cbq_volume), P(cbq_volume_source), C.c_char_p, C.c_char_p,
                                  P(cbq_error)]),
    "cbq_volume_free": (None, [P(cbq_volume)]),
    "cbq_model_load": (C.c_int, [C.c_char_p, P(VOID_P), c_size, P(cbq_error)]),
    "cbq_net_free": (None, [VOID_P]),
    "cbq_net_spec": (P(cbq_model_spec), [VOID_P]),
    "cbq_net_set_threads": (None, [VOID_P, C.c_int]),
    "cbq_layer_kind_name": (C.c_char_p, [C.c_int]),
    "cbq_input_channels": (c_size, [P(cbq_input_spec)]),
    "cbq_input_slices_name": (C.c_char_p, [C.c_int]),
    "cbq_model_input_from_volume": (C.c_int, [P(cbq_model_input), P(cbq_volume), C.c_char_p,
                                              P(cbq_input_spec), P(cbq_model_input_options),
                                              P(cbq_error)]),
    "cbq_model_input_load": (C.c_int, [P(cbq_model_input), P(cbq_cohort_volume), VOID_P,
                                       P(cbq_input_spec), P(cbq_model_input_options), P(cbq_error)]),
    "cbq_model_input_attrib": (C.c_int, [VOID_P, P(cbq_model_input), P(cbq_ae), P(c_float_p),
                                         P(cbq_error)]),
    "cbq_model_input_free": (None, [P(cbq_model_input)]),
    "cbq_model_input_source_slice": (c_size, [P(cbq_model_input), c_size]),
    "cbq_model_input_unmap_source": (C.c_int, [P(cbq_model_input), c_float_p, P(cbq_volume),
                                               P(cbq_error)]),
    "cbq_slice_selection_parse": (C.c_int, [C.c_char_p, P(C.c_int)]),
    "cbq_predict_input": (C.c_int, [VOID_P, P(cbq_model_input), c_size, P(cbq_volume_pred),
                                    P(cbq_error)]),
    "cbq_volume_pred_free": (None, [P(cbq_volume_pred)]),
    "cbq_attrib_options_default": (None, [P(cbq_attrib_options)]),
    "cbq_cam_method_parse": (C.c_int, [C.c_char_p, P(C.c_int)]),
    "cbq_cam_method_list": (C.c_char_p, []),
    "cbq_cam_create": (C.c_int, [P(VOID_P), VOID_P, c_size, P(cbq_attrib_options), P(cbq_error)]),
    "cbq_cam_free": (None, [VOID_P]),
    "cbq_cam_feature_shape": (None, [VOID_P, c_size_p, c_size_p]),
    "cbq_cam_n_outputs": (c_size, [VOID_P]),
    "cbq_cam_category_name": (C.c_char_p, [VOID_P, c_size]),
    "cbq_attrib_volume": (C.c_int, [VOID_P, c_float_p, c_size, P(c_float_p), P(cbq_ae),
                                    P(c_float_p), P(c_float_p), VOID_P, P(cbq_error)]),
    "cbq_ae_free": (None, [P(cbq_ae)]),
    "cbq_ae_writer_open": (C.c_int, [P(cbq_ae_writer), C.c_char_p, P(cbq_error)]),
    "cbq_ae_writer_put": (C.c_int, [P(cbq_ae_writer), C.c_char_p, C.c_char_p, VOID_P, c_size,
                                    P(cbq_ae), VOID_P, P(cbq_error)]),
    "cbq_ae_volume_options_default": (None, [P(cbq_ae_volume_options)]),
    "cbq_ae_writer_put_volume": (C.c_int, [P(cbq_ae_writer), P(cbq_csv_writer), C.c_char_p, VOID_P,
                                           VOID_P, P(cbq_model_input), P(c_float_p), P(cbq_ae),
                                           P(cbq_ae_volume_options), P(cbq_error)]),
    "cbq_perturb_parse": (C.c_int, [C.c_char_p, P(C.c_int)]),
    "cbq_curves_writer_open": (C.c_int, [P(cbq_csv_writer), C.c_char_p, P(cbq_error)]),
    "cbq_csv_writer_commit": (C.c_int, [P(cbq_csv_writer), P(cbq_error)]),
    "cbq_csv_writer_abort": (None, [P(cbq_csv_writer)]),
    "cbq_ae_writer_commit": (C.c_int, [P(cbq_ae_writer), P(cbq_error)]),
    "cbq_ae_writer_abort": (None, [P(cbq_ae_writer)]),
    "cbq_csv_read": (C.c_int, [P(cbq_csv), C.c_char_p, P(cbq_error)]),
    "cbq_csv_free": (None, [P(cbq_csv)]),
    "cbq_spearman": (C.c_int, [c_double_p, c_double_p, c_size, P(cbq_corr), P(cbq_error)]),
    "cbq_spearman_loo": (C.c_int, [c_double_p, c_double_p, c_size, C.c_double, P(cbq_loo),
                                   P(cbq_error)]),
    "cbq_loo_free": (None, [P(cbq_loo)]),
    "cbq_spearman_bootstrap": (C.c_int, [c_double_p, c_double_p, c_size, c_size, C.c_double,
                                         C.c_uint64, P(cbq_boot), P(C.c_uint32), P(cbq_error)]),
    "cbq_spearman_perm": (C.c_int, [c_double_p, c_double_p, c_size, c_size, c_size, C.c_uint64,
                                    P(cbq_perm), P(cbq_error)]),
    "cbq_ratings_read": (C.c_int, [P(cbq_ratings), C.c_char_p, C.c_char_p, P(cbq_error)]),
    "cbq_ratings_free": (None, [P(cbq_ratings)]),
    "cbq_consensus_table": (C.c_int, [P(cbq_ratings), P(P(cbq_consensus)), P(cbq_error)]),
    "cbq_agreement_json": (C.c_int, [P(cbq_ratings), P(VOID_P), P(cbq_error)]),
    "cbq_json_write": (C.c_int, [VOID_P, C.c_char_p, P(cbq_error)]),
}
for _name, (_res, _args) in _PROTOTYPES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

# cJSON (the library libcbctiq's JSON documents are made of) frees them.
_cjson = C.CDLL("libcjson.so.1")
_cjson.cJSON_Delete.argtypes = [VOID_P]
_cjson.cJSON_Delete.restype = None
cjson_delete = _cjson.cJSON_Delete


def new_error():
    return cbq_error()


def check(rc, err):
    """Raises Error with the library's message when rc is not CBQ_OK."""
    if rc != 0:
        code = lib.cbq_code_name(err.code)
        raise Error(err.msg.decode("utf-8", "replace"), code.decode() if code else None)


def encode(path):
    """A path or text as the bytes a C function takes."""
    return os.fsencode(path) if not isinstance(path, bytes) else path
