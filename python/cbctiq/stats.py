"""cbctiq.stats - the statistics the command line and the study use, on
numpy arrays: Spearman's rho with its t p-value, leave-one-out, the paired
bootstrap CI, the permutation p, the raters' consensus and agreement.
Each is the library's own function (docs/statistics.md gives the formulas
and their SciPy equivalents). An undefined statistic (n < 3, a constant
input) is NaN, not an error; defaults are `cbctiq correlate`'s."""
import ctypes as C
import json
import os
import tempfile
from typing import Optional, Tuple

import numpy as np

from . import _lib
from ._lib import lib

__all__ = ["spearman", "loo_spearman", "bootstrap_ci", "permutation_p", "consensus", "agreement"]

# cbq_correlate_opts_default: the CLI's and the study's defaults.
N_BOOT, N_PERM, EXACT_MAX_N, CONF, SEED = 10000, 100000, 9, 0.95, 1


def _pair(x, y):
    """x, y as float64 C arrays of one length (no copy when they already
    are); TypeError for non-numbers, ValueError for shapes."""
    out = []
    for name, v in (("x", x), ("y", y)):
        a = np.asarray(v)
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.issubdtype(a.dtype, np.complexfloating):
            raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
        out.append(np.ascontiguousarray(a, dtype=np.float64))
    if out[0].shape != out[1].shape:
        raise ValueError(f"x and y differ in length: {out[0].size} and {out[1].size}")
    return out[0], out[1]


def _ptr(a):
    return a.ctypes.data_as(_lib.c_double_p)


def _count(name, v, low=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return int(v)


def _seed(v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < 2 ** 64:
        raise ValueError(f"seed must be an integer in [0, 2^64), got {v!r}")
    return int(v)


def spearman(x, y) -> Tuple[float, float]:
    """(rho, p): Spearman's rho (average ranks for ties) and its two-sided
    p from Student's t with n - 2 df, as scipy.stats.spearmanr."""
    x, y = _pair(x, y)
    out, err = _lib.cbq_corr(), _lib.new_error()
    _lib.check(lib.cbq_spearman(_ptr(x), _ptr(y), x.size, C.byref(out), C.byref(err)), err)
    return out.r, out.p


def loo_spearman(x, y) -> dict:
    """Leave-one-out Spearman: rho, p and influence (rho_all - rho[i]) with
    volume i left out (arrays of n), and their median_rho, median_p,
    min_rho, max_rho, jackknife_se."""
    x, y = _pair(x, y)
    rho_all, _ = spearman(x, y)
    out, err = _lib.cbq_loo(), _lib.new_error()
    _lib.check(lib.cbq_spearman_loo(_ptr(x), _ptr(y), x.size, rho_all, C.byref(out), C.byref(err)), err)
    try:
        arrays = {k: (np.ctypeslib.as_array(getattr(out, k), shape=(out.n,)).copy() if out.n
                      else np.zeros(0)) for k in ("rho", "p", "influence")}
        return dict(arrays, median_rho=out.median_rho, median_p=out.median_p, min_rho=out.min_rho,
                    max_rho=out.max_rho, jackknife_se=out.jackknife_se)
    finally:
        lib.cbq_loo_free(C.byref(out))


def bootstrap_ci(x, y, n_boot: int = N_BOOT, conf: float = CONF, seed: int = SEED) -> dict:
    """Paired bootstrap CI of Spearman's rho, percentile and BCa (as
    scipy.stats.bootstrap, jackknife acceleration): {"percentile": (lo, hi),
    "bca": (lo, hi), "n_boot", "n_valid", "z0", "accel"}; resample b is
    drawn from stream (seed, b), so the result is the same for any thread
    count."""
    x, y = _pair(x, y)
    n_boot = _count("n_boot", n_boot)
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    out, err = _lib.cbq_boot(), _lib.new_error()
    _lib.check(lib.cbq_spearman_bootstrap(_ptr(x), _ptr(y), x.size, n_boot, float(conf), _seed(seed),
                                          C.byref(out), None, C.byref(err)), err)
    return {"percentile": tuple(out.percentile), "bca": tuple(out.bca), "n_boot": out.n_boot,
            "n_valid": out.n_valid, "z0": out.z0, "accel": out.accel}


def permutation_p(x, y, n_perm: int = N_PERM, exact_max_n: int = EXACT_MAX_N, seed: int = SEED) -> dict:
    """Permutation p of Spearman's rho: all n! pairings when n <= exact_max_n
    (at most 12), else n_perm seeded random permutations; two-sided as
    scipy.stats.permutation_test. {"p", "n_perm", "exact"}."""
    x, y = _pair(x, y)
    n_perm = _count("n_perm", n_perm)
    exact_max_n = _count("exact_max_n", exact_max_n, 0)
    out, err = _lib.cbq_perm(), _lib.new_error()
    _lib.check(lib.cbq_spearman_perm(_ptr(x), _ptr(y), x.size, exact_max_n, n_perm, _seed(seed),
                                     C.byref(out), C.byref(err)), err)
    return {"p": out.p, "n_perm": out.n_perm, "exact": bool(out.exact)}


class _Ratings:
    """ratings.csv (+ raters.csv) read by the library, freed on exit."""

    def __init__(self, ratings, raters):
        self.paths = (ratings, raters)

    def __enter__(self):
        ratings, raters = self.paths
        for name, p in (("ratings", ratings), ("raters", raters)):
            if p is not None and not isinstance(p, (str, bytes, os.PathLike)):
                raise TypeError(f"{name} must be a path to a CSV file, got {type(p).__name__}")
        self.r, err = _lib.cbq_ratings(), _lib.new_error()
        _lib.check(lib.cbq_ratings_read(C.byref(self.r), _lib.encode(os.fspath(ratings)),
                                        _lib.encode(os.fspath(raters)) if raters is not None else None,
                                        C.byref(err)), err)
        return self.r

    def __exit__(self, *exc):
        lib.cbq_ratings_free(C.byref(self.r))


def consensus(ratings, raters: Optional[str] = None):
    """The weighted consensus of every rated (volume, category) from
    ratings.csv (volume_id, rater, category, score) and optionally
    raters.csv (rater, weight): consensus.csv's rows (volume_id, category,
    consensus, n_raters, sd) as a DataFrame (pandas present) or
    {column: list}, the same table `cbctiq consensus` writes."""
    with _Ratings(ratings, raters) as r:
        table = C.POINTER(_lib.cbq_consensus)()
        err = _lib.new_error()
        _lib.check(lib.cbq_consensus_table(C.byref(r), C.byref(table), C.byref(err)), err)
        try:
            cols = {"volume_id": [], "category": [], "consensus": [], "n_raters": [], "sd": []}
            for v in range(r.n_volumes):
                for c in range(r.n_categories):
                    cell = table[v * r.n_categories + c]
                    if cell.n_raters == 0:
                        continue  # nobody rated it: no row, as consensus.csv
                    cols["volume_id"].append(r.volumes[v].decode())
                    cols["category"].append(r.categories[c].decode())
                    cols["consensus"].append(cell.mean)
                    cols["n_raters"].append(float(cell.n_raters))
                    cols["sd"].append(cell.sd)
        finally:
            _lib.libc.free(table)
    try:
        import pandas as pd
    except ImportError:
        return cols
    return pd.DataFrame(cols)


def agreement(ratings, raters: Optional[str] = None) -> dict:
    """Inter-rater agreement per category (ICC, Krippendorff's alpha,
    Kendall's W, each rater against the others' consensus): the JSON
    object `cbctiq agreement --json` writes under "agreement", as a dict."""
    with _Ratings(ratings, raters) as r:
        doc, err = C.c_void_p(), _lib.new_error()
        _lib.check(lib.cbq_agreement_json(C.byref(r), C.byref(doc), C.byref(err)), err)
    try:
        with tempfile.TemporaryDirectory(prefix="cbctiq-agreement-") as tmp:
            path = os.path.join(tmp, "agreement.json")
            _lib.check(lib.cbq_json_write(doc, path.encode(), C.byref(err)), err)
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    finally:
        _lib.cjson_delete(doc)
