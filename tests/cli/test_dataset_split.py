"""What `--data` loads: every row of a file, split 80/20 with no row in both; the digits' fixed split; the plot view."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ctflows.cli.dataset import MIN_ROWS, is_file_argument, load_dataset, plot_bounds
from ctflows.cli.main import main
from ctflows.core.span import check_spans_space
from ctflows.data.images import load_digits
from ctflows.errors import DataError


def _write(path, rows):
    np.savetxt(path, rows, delimiter=",", header="a,b", comments="")
    return str(path)


def _row_set(x):
    return {tuple(row) for row in x.tolist()}


@pytest.mark.parametrize("n", [10, 13, 17, 200])
def test_a_file_is_split_into_disjoint_train_and_test_rows_that_cover_it(tmp_path, n):
    rows = np.stack([np.arange(n), np.arange(n) ** 2], axis=1).astype(np.float32)  # distinct rows, not on a line
    data = load_dataset(_write(tmp_path / "d.csv", rows), seed=3)
    train, test = _row_set(data.train), _row_set(data.test)
    assert len(data.test) == round(0.2 * n) and len(data.train) == n - round(0.2 * n)  # 13 rows: 3 held out, not 2
    assert not train & test and train | test == _row_set(rows)
    assert data.dim == 2 and data.density is None and data.file_points is data.train


def test_a_file_needs_at_least_ten_rows(tmp_path):
    rows = np.stack([np.arange(MIN_ROWS), np.arange(MIN_ROWS) ** 2], axis=1).astype(np.float32)
    assert MIN_ROWS == 10 and len(load_dataset(_write(tmp_path / "ten.csv", rows), seed=0).train) == 8
    with pytest.raises(DataError, match=r"too few rows \(9\) to hold out.*at least 10"):
        load_dataset(_write(tmp_path / "nine.csv", rows[:9]), seed=0)


def test_a_file_given_whole_is_all_test_rows(tmp_path):
    rows = np.arange(8, dtype=np.float32).reshape(4, 2)  # below MIN_ROWS: a test file is not split
    data = load_dataset(_write(tmp_path / "t.csv", rows), seed=0, split=False)
    assert torch.equal(data.test, torch.from_numpy(rows))


def test_the_reference_points_of_a_file_are_its_training_rows(tmp_path):
    rows = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    data = load_dataset(_write(tmp_path / "d.csv", rows), seed=0)
    assert torch.equal(data.reference(1000, seed=0), data.train)  # the "training data" panel and the plot bounds


def test_digits_train_on_the_first_1500_and_test_on_the_last_297():
    pytest.importorskip("sklearn")

    images = load_digits()
    data = load_dataset("digits", seed=0)
    assert torch.equal(data.train.images, images[:1500]) and torch.equal(data.test, images[1500:])
    assert data.dim == 64 and data.shape == (1, 8, 8) and data.levels == 17


def test_a_missing_upper_case_csv_is_named_as_a_missing_file(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "DATA.CSV"), "--model", "nice", "--steps", "1", "--out", str(tmp_path / "o")]) == 1
    assert "DATA.CSV: no such file" in capsys.readouterr().err


def test_plot_bounds_are_a_square_around_the_points_widened_by_the_margin():
    # x in [0, 10], y in [100, 104]: centre (5, 102); half-width 5 (the wider axis), widened by 15% each side.
    x = torch.stack([torch.linspace(0, 10, 2001), torch.linspace(100, 104, 2001)], dim=1)
    x0, x1, y0, y1 = plot_bounds(x)
    half = (float(torch.quantile(x[:, 0].double(), 0.995)) - float(torch.quantile(x[:, 0].double(), 0.005))) / 2 * 1.3
    assert (x0 + x1) / 2 == pytest.approx(5.0) and (y0 + y1) / 2 == pytest.approx(102.0)
    assert (x1 - x0) / 2 == pytest.approx(half) and (y1 - y0) / 2 == pytest.approx(half)
    assert math.isclose(half, 4.95 * 1.3, rel_tol=1e-6)


def test_a_built_in_name_wins_over_a_file_of_that_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file named `two_moons` or `digits` in the working directory does not hide the built-in data; another
    existing file without a known extension is taken as a file (to be refused by its type, not as an unknown density)."""
    monkeypatch.chdir(tmp_path)
    rows = np.stack([np.arange(20), np.arange(20) ** 2], axis=1).astype(np.float32)
    for name in ("two_moons", "digits", "rows"):
        _write(tmp_path / name, rows)
    assert (is_file_argument("two_moons"), is_file_argument("digits"), is_file_argument("rows")) == (False, False, True)
    assert load_dataset("two_moons", seed=0).density is not None


def test_the_digits_batches_follow_the_seed() -> None:
    """The shuffle and the dequantization noise of the training images come from --seed."""
    pytest.importorskip("sklearn")
    first, again, other = (next(iter(load_dataset("digits", seed, image_batch=8).train)) for seed in (0, 0, 1))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_plot_bounds_of_points_all_in_one_place_are_a_square_of_positive_size_around_them() -> None:
    """No spread to widen (half-width 0): the view is still a square of positive size, centred on the points."""
    x0, x1, y0, y1 = plot_bounds(torch.tensor([[2.0, -3.0]]).repeat(5, 1))
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == (2.0, -3.0)
    assert x1 - x0 == y1 - y0 > 0


def test_a_file_whose_training_rows_lie_on_a_line_is_refused(tmp_path: Path) -> None:
    """The hyperplane check looks at the rows to be trained on: a file on a line but for one row, which the split
    holds out, spans the plane as a whole, yet would train a spike (measured: test NLL ~3e5 nats after 300 steps)."""
    t = np.linspace(-1.0, 1.0, 30)
    rows = np.stack([t, 2 * t + 1], axis=1)
    held_out = int(torch.randperm(30, generator=torch.Generator().manual_seed(0))[0])  # load_dataset's split: held out first
    rows[held_out, 1] += 3.0
    check_spans_space("all rows", torch.from_numpy(rows))  # the file as a whole is fine
    with pytest.raises(DataError, match="the data lie on a hyperplane"):
        load_dataset(_write(tmp_path / "line.csv", rows), seed=0)
