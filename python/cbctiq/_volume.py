"""_volume.py - cbctiq.Volume and cbctiq.read_volume: a volume as numpy
arrays (voxels, affine, spacing) over the library's cbq_volume."""
import ctypes as C
from typing import Optional, Sequence, Union
import os

import numpy as np

from . import _lib
from ._lib import lib

__all__ = ["Volume", "read_volume"]

PathLike = Union[str, bytes, "os.PathLike[str]"]


class Volume:
    """A 3D CT volume: `array` in HU on the file's own voxel grid, indexed
    [i, j, k] (i fastest in memory, as NIfTI and cbctiq store it: a
    Fortran-ordered float32 array), `affine` (4x4, voxel (i, j, k, 1) ->
    world RAS+ mm, as nibabel's), `spacing` (mm along i, j, k).

    Volume(array, affine) makes one from any array (e.g. a MONAI or nibabel
    image); it is converted to float32 in Fortran order only when it is not
    already (no copy otherwise)."""

    def __init__(self, array, affine, spacing: Optional[Sequence[float]] = None, name: str = "volume"):
        arr = np.asarray(array)
        if arr.ndim != 3:
            raise ValueError(f"Volume: array must have 3 dimensions (i, j, k), got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"Volume: array must hold numbers (HU), got dtype {arr.dtype}")
        if min(arr.shape) < 1:
            raise ValueError(f"Volume: array has an empty dimension, shape {arr.shape}")
        aff = np.asarray(affine, dtype=np.float64)
        if aff.shape != (4, 4):
            raise ValueError(f"Volume: affine must be 4x4, got shape {aff.shape}")
        if not np.all(np.isfinite(aff)):
            raise ValueError("Volume: affine has a non-finite value")
        self.array = np.asarray(arr, dtype=np.float32, order="F")
        if not np.isfinite(self.array).all():
            raise ValueError(f"Volume: array has non-finite values (NaN or infinite HU, "
                             f"or beyond float32); shape {arr.shape}")
        self.affine = aff
        if spacing is None:
            spacing = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))  # column norms, as cbctiq's readers
        self.spacing = np.asarray(spacing, dtype=np.float64)
        if self.spacing.shape != (3,) or not np.all(self.spacing > 0):
            raise ValueError(f"Volume: spacing must be 3 positive numbers, got {spacing!r}")
        self.name = name

    @property
    def shape(self):
        return self.array.shape

    def __repr__(self):
        return f"Volume({self.name!r}, shape={self.shape}, spacing={tuple(self.spacing)})"

    def _as_c(self):
        """A cbq_volume viewing this volume's arrays (valid while self lives)."""
        v = _lib.cbq_volume()
        v.nx, v.ny, v.nz = self.array.shape
        v.spacing[:] = [float(s) for s in self.spacing]
        for r in range(4):
            v.affine[r][:] = [float(x) for x in self.affine[r]]
        v.data = self.array.ctypes.data_as(_lib.c_float_p)
        return v


class _OwnedVoxels:
    """The voxels of a cbq_volume the library allocated, seen by numpy
    without a copy (__array_interface__) and freed with the last array that
    uses them."""

    def __init__(self, v: "_lib.cbq_volume"):
        self._v = v
        shape = (v.nx, v.ny, v.nz)
        strides = (4, 4 * v.nx, 4 * v.nx * v.ny)  # i fastest: Fortran order
        self.__array_interface__ = {"version": 3, "typestr": "<f4", "shape": shape,
                                    "strides": strides,
                                    "data": (C.cast(v.data, C.c_void_p).value or 0, False)}

    def __del__(self):
        if lib is not None:  # None only while the interpreter shuts down
            lib.cbq_volume_free(C.byref(self._v))


def volume_from_c(v: "_lib.cbq_volume", name: str) -> Volume:
    """Takes ownership of a cbq_volume filled by the library; its voxels
    become the Volume's array without a copy."""
    owner = _OwnedVoxels(v)
    affine = np.array([[v.affine[r][c] for c in range(4)] for r in range(4)])
    return Volume(np.asarray(owner), affine, list(v.spacing), name=name)


def read_volume(path: PathLike, series: Optional[str] = None) -> Volume:
    """Reads a NIfTI file (.nii, .nii.gz) or a DICOM series (a folder,
    searched recursively, or one file of the series); `series` picks a
    SeriesInstanceUID when the folder holds several. The voxels stay on the
    file's grid, in HU. Raises cbctiq.Error with the reader's message."""
    path = os.fspath(path)
    err = _lib.new_error()
    v = _lib.cbq_volume()
    rc = lib.cbq_volume_load(C.byref(v), None, _lib.encode(path),
                             _lib.encode(series) if series else None, C.byref(err))
    _lib.check(rc, err)
    return volume_from_c(v, volume_name(path))


def volume_name(path: PathLike) -> str:
    """The file or folder name without .nii/.nii.gz: the volume_id the CLI
    gives a path (`cbctiq predict`)."""
    base = os.path.basename(os.path.normpath(os.fsdecode(path)))
    for ext in (".nii.gz", ".nii"):
        if base.endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)]
    return base
