"""Malformed data files, wherever the fault sits: load_array must raise DataError naming the file and,
for CSV, the physical line (1-based, counting header and blank lines) and column of the first fault.

tests/data/test_files.py pins the messages for fixed examples; here hypothesis moves the fault around.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctflows.data import load_array
from ctflows.errors import DataError

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)

# Cell text that float() refuses, and cell text it accepts but that is not a finite float32.
NOT_NUMBERS = ["abc", "1_x5", "--1", "1e", "0x10", "one", "1.2.3", "1 2", "3;4"]
NON_FINITE = ["nan", "NaN", "inf", "-inf", "+Infinity", "1e39", "-4e38"]


def load_text(name: str, text: str) -> DataError:
    """Write ``text`` to a fresh file called ``name``, load it, and return the DataError it must raise."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(text, newline="")
        with pytest.raises(DataError) as info:
            load_array(path)
    message = str(info.value)
    assert message.startswith(str(path)), f"the message does not start with the file name: {message}"
    return info.value


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    """A valid CSV as physical lines, and the 1-based line number of each data row.

    Optional header, blank lines anywhere, either line ending: the faults below must still be placed right.
    """
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    values = draw(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=cols, max_size=cols), min_size=rows, max_size=rows))
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append(",".join(f"x{j}" for j in range(cols)))
    numbers: list[int] = []
    for row in values:
        lines += [""] * draw(st.integers(0, 2))
        lines.append(",".join(repr(v) for v in row))
        numbers.append(len(lines))
    return lines, numbers


def join(lines: list[str], crlf: bool) -> str:
    return ("\r\n" if crlf else "\n").join(lines) + "\n"


@SETTINGS
@given(table=tables(), crlf=st.booleans(), data=st.data())
def test_ragged_row_is_reported_at_its_line(table: tuple[list[str], list[int]], crlf: bool, data: st.DataObject) -> None:
    lines, numbers = table
    width = lines[numbers[0] - 1].count(",") + 1
    # The first data row fixes the width when there is no header, so only a later row can be the ragged one.
    candidates = numbers if lines[0].startswith("x") else numbers[1:]
    if not candidates:  # a single data row and no header: repeat it so that a second row can be ragged
        lines.append(lines[numbers[0] - 1])
        candidates = [len(lines)]
    target = data.draw(st.sampled_from(candidates), label="line")
    longer = data.draw(st.booleans(), label="longer") or width == 1
    lines[target - 1] = lines[target - 1] + ",7" if longer else lines[target - 1].rsplit(",", 1)[0]
    got = width + 1 if longer else width - 1
    error = load_text("ragged.csv", join(lines, crlf))
    assert f"line {target}: expected {width} comma-separated values, got {got}" in str(error)


@SETTINGS
@given(table=tables(), cell=st.sampled_from(NOT_NUMBERS + NON_FINITE), crlf=st.booleans(), data=st.data())
def test_bad_cell_is_reported_at_its_line_and_column(
    table: tuple[list[str], list[int]], cell: str, crlf: bool, data: st.DataObject
) -> None:
    lines, numbers = table
    target = data.draw(st.sampled_from(numbers), label="line")
    cells = lines[target - 1].split(",")
    column = data.draw(st.integers(1, len(cells)), label="column")
    cells[column - 1] = cell
    lines[target - 1] = ",".join(cells)
    # A row of nothing but text before any data reads as a header; keep the fault unambiguous.
    if len(cells) == 1 and target == numbers[0] and not lines[0].startswith("x") and cell in NOT_NUMBERS:
        lines.insert(0, "h")
        target += 1
    error = load_text("cells.csv", join(lines, crlf))
    what = "is not a number" if cell in NOT_NUMBERS else "is NaN, Inf or beyond float32's range"
    assert f"line {target}, column {column}: {cell!r} {what}" in str(error)


def test_other_separators_are_named_in_the_message() -> None:
    assert "contains semicolons" in str(load_text("semi.csv", "a;b\n1;2\n"))
    assert "contains tabs" in str(load_text("tabs.csv", "a\tb\n1\t2\n"))
    assert "'1 2' is not a number; cells must be separated by commas, and this one contains spaces" in str(
        load_text("spaces.csv", "a b\n1 2\n")
    )


@pytest.mark.parametrize("text", ["", "\n\n", " , \n", "x,y\n", "x,y\n\n\n"])
def test_files_without_data_rows(text: str) -> None:
    message = str(load_text("nothing.csv", text))
    assert "is empty" in message or "header but no data rows" in message


@pytest.mark.parametrize("name", ["table.txt", "table.json", "table.npz", "table", "table.csv.gz", "table.tsv"])
def test_wrong_extension_is_refused_before_reading(name: str) -> None:
    assert "use a .npy or .csv file" in str(load_text(name, "1,2\n"))


def load_npy(name: str, array: np.ndarray) -> str:
    """Save ``array`` as ``name``, load it, and return the message of the DataError it must raise."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        np.save(path, array)
        with pytest.raises(DataError) as info:
            load_array(path)
    message = str(info.value)
    assert message.startswith(str(path))
    return message


@SETTINGS
@given(length=st.integers(0, 50))
def test_one_dimensional_arrays_are_refused_with_the_fix(length: int) -> None:
    message = load_npy("vector.npy", np.arange(float(length)))
    assert f"got shape [{length}]" in message and "reshape(-1, 1)" in message


@pytest.mark.parametrize("shape", [(), (2, 3, 4), (1, 1, 1, 1)])
def test_other_shapes_are_refused_without_the_one_feature_hint(shape: tuple[int, ...]) -> None:
    """reshape(-1, 1) is the fix for a vector only: a scalar or a 3-D stack is not one feature per row."""
    message = load_npy("stack.npy", np.zeros(shape))
    assert f"got shape {list(shape)}" in message and "reshape" not in message


@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 4)),
    value=st.sampled_from([np.nan, np.inf, -np.inf, 1e39]),
    data=st.data(),
)
def test_non_finite_npy_value_is_located(shape: tuple[int, int], value: float, data: st.DataObject) -> None:
    """One to four bad values anywhere: the message counts them and locates the first in row-major order."""
    array = np.random.default_rng(0).normal(size=shape)
    cell = st.tuples(st.integers(0, shape[0] - 1), st.integers(0, shape[1] - 1))
    cells = data.draw(st.lists(cell, min_size=1, max_size=4, unique=True), label="cells")
    for row, col in cells:
        array[row, col] = value
    row, col = min(cells)
    assert f"{len(cells)} value(s) are NaN, Inf or beyond float32's range; first at row {row}, column {col}" in load_npy(
        "values.npy", array
    )


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.array(3.0), "got shape []"),
        (np.zeros((2, 0)), "empty"),
        (np.array([[True, False]]), "dtype bool"),
        (np.zeros(2, dtype=[("a", "f8"), ("b", "f8")]), "real numeric"),
    ],
    ids=["scalar", "no-columns", "bool", "structured"],
)
def test_other_unusable_arrays(array: np.ndarray, fragment: str) -> None:
    assert fragment in load_npy("odd.npy", array)


def test_npy_files_that_are_not_arrays() -> None:
    with tempfile.TemporaryDirectory() as folder:
        empty, archive = Path(folder) / "empty.npy", Path(folder) / "archive.npy"
        empty.write_bytes(b"")
        with open(archive, "wb") as handle:
            np.savez(handle, a=np.zeros((2, 2)))  # a .npz archive under a .npy name
        for path, fragment in ((empty, "not a readable .npy file"), (archive, "expected a single array")):
            with pytest.raises(DataError, match=fragment) as info:
                load_array(path)
            assert str(path) in str(info.value)
