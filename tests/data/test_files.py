"""load_array: good .npy / .csv files round-trip; every malformed file raises DataError naming file and line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ctflows.data import load_array
from ctflows.errors import DataError

TABLE = np.array([[1.5, -2.0, 3.0], [0.0, 4.25, -1e-3], [7.0, 8.0, 9.5]])


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_npy_round_trip(tmp_path: Path, dtype: type) -> None:
    path = tmp_path / "data.npy"
    np.save(path, TABLE.astype(dtype))
    out = load_array(path)
    assert out.dtype == torch.float32 and out.shape == (3, 3)
    np.testing.assert_array_equal(out.numpy(), TABLE.astype(dtype).astype(np.float32))


@pytest.mark.parametrize("header", ["", "x,y,z\n", '"first x","y",z\n'])
def test_csv_round_trip_with_and_without_header(tmp_path: Path, header: str) -> None:
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in TABLE) + "\n\n"
    out = load_array(write(tmp_path, "data.csv", header + body))
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), TABLE.astype(np.float32))


@pytest.mark.parametrize("crlf", [False, True])
def test_a_header_after_blank_lines_is_still_the_first_row(tmp_path: Path, crlf: bool) -> None:
    """Blank lines (empty, or only spaces and tabs) before the header are skipped, the header is still recognised, and
    a later fault is reported at its physical line, counting the blank ones."""
    end = "\r\n" if crlf else "\n"
    lines = ["", " \t ", "x,y", "1,2", "\t", "3,4"]
    out = load_array(write(tmp_path, "lead.csv", end.join(lines) + end))
    assert out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    path = tmp_path / "lead_bad.csv"
    path.write_bytes(end.join(lines + ["5,six"]).encode())
    with pytest.raises(DataError, match=r"lead_bad.csv: line 7, column 2: 'six' is not a number"):
        load_array(path)


def test_csv_accepts_spaces_exponents_and_upper_case_extension(tmp_path: Path) -> None:
    out = load_array(write(tmp_path, "DATA.CSV", "a, b\n 1e-3 , 2\n-4,  5.0\n"))
    np.testing.assert_allclose(out.numpy(), [[1e-3, 2.0], [-4.0, 5.0]])


def test_path_may_be_a_string(tmp_path: Path) -> None:
    assert load_array(str(write(tmp_path, "d.csv", "1,2\n"))).shape == (1, 2)


@pytest.mark.parametrize(
    "text, match",
    [
        ("1,2,3\n4,5\n", "line 2: expected 3"),
        ("x,y\n1,2\n3,4,5\n", "line 3: expected 2"),
        ("1,2\n3,abc\n", r"line 2, column 2: 'abc' is not a number"),
        ("1,2\n\n3,\n", "line 3, column 2: '' is not a number"),
        ("x,1\n2,3\n", "line 1, column 1: 'x' is not a number"),
        ("1,2\n3,nan\n", "line 2, column 2: 'nan' is NaN"),
        ("1,2\n3,4\n-inf,4\n", "line 3, column 1: '-inf' is NaN, Inf"),
        ("1,2\n1e39,4\n", "line 2, column 1: '1e39' is NaN, Inf or beyond float32"),
        ("", "is empty"),
        ("\n \n", "is empty"),
        ("x,y\n", "header but no data"),
    ],
    ids=["ragged", "ragged-after-header", "text-cell", "empty-cell", "mixed-header", "nan", "inf", "overflow",
         "empty", "blank", "header-only"],
)
def test_malformed_csv(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError, match=match) as info:
        load_array(path)
    assert "bad.csv" in str(info.value)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros(4), "2-D"),
        (np.zeros((2, 3, 4)), "2-D"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[1.0, np.nan]]), "NaN, Inf.*row 0, column 1"),
        (np.array([[1.0, 2.0], [np.inf, 0.0]]), "NaN, Inf.*row 1, column 0"),
        (np.array([[1e300, 2.0]]), "beyond float32"),
        (np.array([["a", "b"]]), "real numeric"),
        (np.array([[1 + 2j, 0]]), "real numeric"),
    ],
    ids=["1d", "3d", "empty", "nan", "inf", "overflow", "strings", "complex"],
)
def test_malformed_npy(tmp_path: Path, array: np.ndarray, match: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=match) as info:
        load_array(path)
    assert "bad.npy" in str(info.value)


def test_npy_with_objects_or_garbage(tmp_path: Path) -> None:
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="objects.npy"):
        load_array(objects)
    garbage = write(tmp_path, "garbage.npy", "not numpy at all")
    with pytest.raises(DataError, match="garbage.npy: not a readable .npy"):
        load_array(garbage)


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing.csv: no such file"):
        load_array(tmp_path / "nothing.csv")
    with pytest.raises(DataError, match=r"table.txt: unsupported file type '.txt'"):
        load_array(write(tmp_path, "table.txt", "1,2\n"))
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(DataError, match="folder.npy: not a regular file"):
        load_array(tmp_path / "folder.npy")


@pytest.mark.parametrize("path", [3, None, b"data.csv", ["data.csv"]], ids=["int", "none", "bytes", "list"])
def test_a_path_that_is_not_a_str_or_pathlike_is_a_data_error(path: object) -> None:
    """Not pathlib's TypeError, which names neither load_array nor its argument."""
    with pytest.raises(DataError, match=rf"^load_array: path must be a str or os.PathLike such as 'data.csv', got {type(path).__name__}"):
        load_array(path)


def test_non_utf8_csv(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"\xff\xfe1,2\n")
    with pytest.raises(DataError, match="latin.csv"):
        load_array(path)


def test_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path: Path) -> None:
    # Spreadsheet programs write UTF-8 with a BOM: the first row is data, not a header, and not an error.
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeff1,2\n3,4\n".encode("utf-8"))
    assert load_array(path).tolist() == [[1.0, 2.0], [3.0, 4.0]]



# Round-to-nearest sends a number to a finite float32 exactly when its magnitude is below float32's max plus
# half a unit in the last place, 0x1.ffffffp+127 (the tie itself rounds to even: Inf). numpy and pandas print
# float32's max as '3.4028235e+38', a little above the max, so the max alone is the wrong limit.
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TIE = float.fromhex("0x1.ffffffp+127")


@pytest.mark.parametrize("value", [_F32_MAX, 3.4028235e38, float(np.nextafter(_F32_TIE, 0.0))],
                         ids=["max", "max-as-numpy-prints-it", "just-below-the-tie"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_numbers_that_round_to_a_finite_float32_load(tmp_path: Path, value: float, sign: float) -> None:
    """Every number whose float32 rounding is finite loads, from .csv text and from a float64 .npy, as ±max."""
    assert np.isfinite(np.float32(value)) and np.float32(value) == np.float32(_F32_MAX)  # the premise, by numpy
    csv_path = write(tmp_path, "edge.csv", f"1,{sign * value!r}\n")
    npy_path = tmp_path / "edge.npy"
    np.save(npy_path, np.array([[1.0, sign * value]]))
    for path in (csv_path, npy_path):
        assert load_array(path).tolist() == [[1.0, sign * _F32_MAX]], path.name


@pytest.mark.parametrize("value", [_F32_TIE, float(np.nextafter(_F32_TIE, np.inf)), 1e39])
def test_numbers_that_round_to_float32_inf_are_refused(tmp_path: Path, value: float) -> None:
    """From the tie upwards the float32 cast is Inf: refused from .csv and .npy, naming the place."""
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(value))  # the premise, by numpy
    with pytest.raises(DataError, match=r"edge.csv: line 1, column 2: .* beyond float32's range"):
        load_array(write(tmp_path, "edge.csv", f"1,{-value!r}\n"))
    np.save(tmp_path / "edge.npy", np.array([[1.0, value]]))
    with pytest.raises(DataError, match=r"edge.npy: 1 value\(s\) .* beyond float32's range; first at row 0, column 1"):
        load_array(tmp_path / "edge.npy")


def test_npy_in_fortran_order_loads_as_a_contiguous_row_major_tensor(tmp_path: Path) -> None:
    """np.save keeps a column-major array's order; the tensor must still be C-contiguous (views and batching rely on it)."""
    path = tmp_path / "fortran.npy"
    for array in (np.asfortranarray(TABLE), np.asfortranarray(TABLE.astype(np.float32))):
        np.save(path, array)
        out = load_array(path)
        assert out.is_contiguous() and out.stride() == (3, 1)
        np.testing.assert_array_equal(out.numpy(), TABLE.astype(np.float32))


def test_csv_whose_cell_overflows_the_csv_modules_field_limit(tmp_path: Path) -> None:
    """The csv module refuses a cell longer than its field limit (131,072 characters): a DataError naming the file."""
    path = write(tmp_path, "long.csv", "1," + "1" * 200_000 + "\n")
    with pytest.raises(DataError, match=r"long.csv: not a readable text CSV file \(field larger than field limit"):
        load_array(path)
