"""Load a user's data set, ``[n, d]`` float32, from a ``.npy`` or ``.csv`` file.

Everything that makes a file unusable raises :class:`~ctflows.errors.DataError` naming the file (and, for
CSV, the 1-based line): a missing file, an unknown extension, an empty table, a table that is not 2-D,
ragged rows, non-numeric cells, and NaN or ±Inf values (including numbers too large for float32).
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ctflows.core.paths import as_path, existing_file
from ctflows.errors import DataError

# A number rounds to a finite float32 exactly when its magnitude is below float32's max plus half a unit in the
# last place (the tie rounds to even: Inf). Not the max itself: numpy and pandas print float32's max as
# '3.4028235e+38', which is a little above it and must load. A float64 scalar, so that float16 / float32 arrays are
# compared with it in float64 (a Python float would be cast to their dtype, where it is Inf).
_FLOAT32_LIMIT = np.float64(float.fromhex("0x1.ffffffp+127"))


def load_array(path: str | os.PathLike[str]) -> Tensor:
    """Read a 2-D numeric table from ``path`` into a float32 tensor ``[n, d]``.

    ``.npy``: a 2-D array of a real numeric dtype (read without pickle).
    ``.csv``: comma-separated numbers, one row per line; a single first row whose cells are all
    non-numeric is a header and is skipped; blank lines are ignored.
    """
    path = as_path("load_array", "path", path, "data.csv", DataError)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use a .npy or .csv file")
    path = existing_file("load_array", path, "data.csv")
    array = _read_npy(path) if suffix == ".npy" else _read_csv(path)
    return torch.from_numpy(array)


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: expected a single array, got {type(array).__name__}")
    if array.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected a real numeric array, got dtype {array.dtype}")
    if array.ndim != 2:
        hint = "; for one feature per row save array.reshape(-1, 1)" if array.ndim == 1 else ""
        raise DataError(f"{path}: expected a 2-D array [n, d], got shape {list(array.shape)}{hint}")
    if array.size == 0:
        raise DataError(f"{path}: the array is empty (shape {list(array.shape)})")
    # Check before the cast as well as after: float64 values beyond float32's range become Inf.
    bad = ~np.isfinite(array) | (np.abs(array) >= _FLOAT32_LIMIT)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: {int(bad.sum())} value(s) are NaN, Inf or beyond float32's range; first at row {row}, column {col}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _parse(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _separator_hint(cell: str) -> str:
    # A file written with another separator parses as one non-numeric cell per line.
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), (" ", "spaces")):
        if sep in cell:
            return f"; cells must be separated by commas, and this one contains {name}"
    return ""


def _read_csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    width: int | None = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for cells in reader:
                line = reader.line_num
                cells = [c.strip() for c in cells]
                if not any(cells):
                    continue  # a blank line
                values = [_parse(c) for c in cells]
                if not rows and width is None and all(v is None for v in values):
                    width = len(cells)  # the header row: it fixes the width, nothing else
                    continue
                if width is None:
                    width = len(cells)
                if len(cells) != width:
                    raise DataError(f"{path}: line {line}: expected {width} comma-separated values, got {len(cells)}")
                for col, (cell, value) in enumerate(zip(cells, values)):
                    if value is None:
                        hint = _separator_hint(cell)
                        raise DataError(f"{path}: line {line}, column {col + 1}: {cell!r} is not a number{hint}")
                    if not math.isfinite(value) or abs(value) >= _FLOAT32_LIMIT:
                        raise DataError(
                            f"{path}: line {line}, column {col + 1}: {cell!r} is NaN, Inf or beyond float32's range"
                        )
                rows.append(values)  # type: ignore[arg-type]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable text CSV file ({err})") from None
    if not rows:
        what = "has a header but no data rows" if width is not None else "is empty"
        raise DataError(f"{path}: the file {what}")
    return np.asarray(rows, dtype=np.float32)
