"""_table.py - cbctiq.read_table: cbctiq's tables (ae.csv, consensus.csv,
pred.csv, ...: any CSV it writes, read by the library's CSV reader and
typed column by column from its header, so that a new column appears
without a change here) and stats.json, as pandas DataFrames when pandas is
installed, else as plain dicts."""
import ctypes as C
import json
import os
from typing import Dict, List

from . import _lib
from ._lib import lib
from ._volume import PathLike

__all__ = ["read_table"]


def _typed(values: List[str]):
    """A column's cells as floats when every non-empty cell is a number
    (an empty cell is a missing value: NaN), else as the strings."""
    out = []
    for v in values:
        if v == "":
            out.append(float("nan"))
            continue
        try:
            out.append(float(v))
        except ValueError:
            return list(values)
    return out


def _read_csv_columns(path) -> Dict[str, list]:
    """{column: values} in the file's column order, through cbq_csv_read
    (errors name the file and line)."""
    t = _lib.cbq_csv()
    err = _lib.new_error()
    _lib.check(lib.cbq_csv_read(C.byref(t), _lib.encode(path), C.byref(err)), err)
    try:
        names = [t.header[c].decode() for c in range(t.n_cols)]
        cells = [[t.cells[r * t.n_cols + c].decode() for r in range(t.n_rows)] for c in range(t.n_cols)]
    finally:
        lib.cbq_csv_free(C.byref(t))
    return {name: _typed(col) for name, col in zip(names, cells)}


def _pandas():
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _frame_or_dict(columns: Dict[str, list], index: str):
    """A DataFrame of the columns (pandas present), else {row key: {column:
    value}} keyed by the column `index`."""
    pd = _pandas()
    if pd is not None:
        return pd.DataFrame(columns).set_index(index, drop=False)
    keys = columns[index]
    return {k: {name: col[r] for name, col in columns.items()} for r, k in enumerate(keys)}


def _flatten(prefix, value, row):
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, row)
    else:
        row[prefix] = float("nan") if value is None else value


def read_table(path: PathLike):
    """Reads a table cbctiq wrote. A .json file (stats.json): with pandas,
    one row per category (nested objects flattened as "loo.median_rho",
    null as NaN); without it, the parsed JSON. Any other file is a CSV
    (ae.csv, pred.csv, consensus.csv, ...): with pandas a DataFrame of
    every column in the file's order, numbers as floats; without it,
    {column: list}. Raises cbctiq.Error naming the file and line."""
    path = os.fspath(path)
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise _lib.Error(f"{path}: {e}") from None
        pd = _pandas()
        if pd is None or not isinstance(doc, dict) or "categories" not in doc:
            return doc
        rows = []
        for category, stats in doc["categories"].items():
            row = {"category": category}
            _flatten("", stats, row)
            rows.append(row)
        return pd.DataFrame(rows).set_index("category", drop=False)
    columns = _read_csv_columns(path)
    pd = _pandas()
    return pd.DataFrame(columns) if pd is not None else columns
