"""cbctiq - CBCT image quality: the library behind the `cbctiq` command, from
Python. A thin binding (ctypes) over libcbctiq.so: the same readers, network,
Grad-CAM, Attribution Energy and statistics as the command line, with no
second implementation; arrays cross as numpy arrays.

    import cbctiq
    vol = cbctiq.read_volume("ct.nii.gz")            # .array (HU), .affine, .spacing
    model = cbctiq.Model.load("model")
    model.predict(vol)                                # {category: score}
    cbctiq.gradcam(model, vol, "parotid")            # map on the volume's grid
    cbctiq.attribution_energy(model, vol)            # {category: AE}
    cbctiq.attribution_energy(model, vol, full=True) # ae.csv's rows, as `cbctiq ae`
    cbctiq.deletion_curves(model, vol)               # curves.csv's rows
    cbctiq.stats.spearman(x, y)                      # (rho, p)

Errors from the library raise cbctiq.Error with its message; wrong argument
types or shapes raise TypeError or ValueError. docs/python.md has a worked
example."""
from ._lib import Error
from ._volume import Volume, read_volume
from ._model import Model, gradcam, attribution_energy, deletion_curves
from ._table import read_table
from . import stats

try:  # the installed distribution's, which setup.py takes from CMake's project version
    from importlib.metadata import version as _version
    __version__ = _version("cbctiq")
except Exception:  # imported from the source tree, not installed
    __version__ = "unknown"
__all__ = ["Error", "Volume", "read_volume", "Model", "gradcam", "attribution_energy", "deletion_curves",
           "read_table", "stats"]
