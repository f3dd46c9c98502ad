"""The hyperplane check: the covariance it rests on, and which point sets it refuses."""
from __future__ import annotations

import pytest
import torch

import ctflows.core.span as span
from ctflows.core.span import check_spans_space, mean_and_covariance
from ctflows.errors import DataError


def points(n: int = 500, d: int = 4, offset: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + offset


@pytest.mark.parametrize("rows_per_chunk", [7, 500, 65536])
def test_the_moments_are_torchs_whatever_the_chunks(monkeypatch: pytest.MonkeyPatch, rows_per_chunk: int) -> None:
    """Summed over chunks of rows (one chunk of 7 leaves a remainder), mean and covariance are torch's (cov with 1/N),
    also for points far from the origin, where one pass over E[xxᵀ] - E[x]E[x]ᵀ would lose every digit."""
    monkeypatch.setattr(span, "ROWS_PER_CHUNK", rows_per_chunk)
    x = points(offset=1e8)
    mean, cov = mean_and_covariance(x)
    torch.testing.assert_close(mean, x.mean(dim=0), rtol=1e-15, atol=0)
    torch.testing.assert_close(cov, torch.cov(x.T, correction=0), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(mean_and_covariance(x.float())[1], torch.cov(x.float().double().T, correction=0), rtol=1e-9, atol=1e-6)


def test_points_that_span_the_space_pass_in_any_units() -> None:
    """Scale-free: columns a million times apart in size pass as they are."""
    check_spans_space("fit", points() * torch.tensor([1e-3, 1.0, 1e3, 1e6], dtype=torch.float64))


@pytest.mark.parametrize("case, message", [
    ("constant", r"fit: column 2 of the data is constant; drop it"),
    ("dependent", r"fit: the data lie on a hyperplane: .* so no density on R\^5 fits them; drop a redundant column"),
    ("too_few_rows", r"fit: the data lie on a hyperplane"),  # 4 points in R^4 lie on a 3-D affine plane
    ("two_constant", r"fit: column 1 of the data is constant"),  # the first constant column is named
])
def test_points_on_a_hyperplane_are_refused(case: str, message: str) -> None:
    x = points()
    data = {
        "constant": torch.cat([x[:, :2], torch.full((500, 1), 7.0, dtype=torch.float64), x[:, 2:]], dim=1),
        "dependent": torch.cat([x, 2 * x[:, :1] - 0.5 * x[:, 3:] + 1], dim=1),
        "too_few_rows": x[:4],
        "two_constant": torch.cat([x[:, :1], torch.full((500, 1), 7.0, dtype=torch.float64), x[:, 1:2],
                                   torch.full((500, 1), -2.0, dtype=torch.float64)], dim=1),
    }[case]
    with pytest.raises(DataError, match=message):
        check_spans_space("fit", data)
    with pytest.raises(DataError, match=message):
        check_spans_space("fit", data.float())  # float32 rounding of exact dependence stays below the tolerance


@pytest.mark.parametrize("value", [0.1, 0.3, 1e8 + 0.1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("rows_per_chunk", [7, 65536])
def test_a_constant_column_whose_sum_rounds_is_refused_as_constant(
    monkeypatch: pytest.MonkeyPatch, value: float, dtype: torch.dtype, rows_per_chunk: int
) -> None:
    """A constant column has variance exactly 0 whatever its value: 500 copies of 0.1 do not sum to 50 exactly, and a
    mean rounded that way left a variance of rounding (1e-34) whose correlation with the other columns is noise, so
    the column passed as a full coordinate of the space."""
    monkeypatch.setattr(span, "ROWS_PER_CHUNK", rows_per_chunk)
    data = points().to(dtype)
    data[:, 1] = value
    assert float(mean_and_covariance(data)[1][1, 1]) == 0.0
    with pytest.raises(DataError, match=r"^fit: column 1 of the data is constant"):
        check_spans_space("fit", data)


def test_the_message_gives_the_spread_of_the_flat_combination() -> None:
    """x = (1, -1, 1, -1) and n = (1, 1, -1, -1) are centred, orthogonal and of unit variance, so the columns x and
    x + εn have correlation 1/√(1 + ε²): the smallest eigenvalue of R is 1 - 1/√(1 + ε²) ≈ ε²/2, and the message
    reports its square root, ε/√2 = 7.1e-07 for ε = 1e-6 (the spread of the standardised difference)."""
    x = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    n = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    with pytest.raises(DataError, match=r"constant to 7\.1e-07 of their spread"):
        check_spans_space("fit", torch.stack([x, x + 1e-6 * n], dim=1))


@pytest.mark.parametrize("size", [1e160, 1e-170])
def test_float64_columns_far_beyond_float32s_range_are_judged_by_their_correlations(size: float) -> None:
    """Squares of 1e160 overflow float64 (a raw LinAlgError) and those of 1e-170 underflow to 0 (a spanning column
    called constant): the check works in units of each column's range."""
    data = points()
    data[:, 1] *= size
    check_spans_space("fit", data)  # spans R^4 in any units
    dependent = torch.cat([data, (2 * data[:, 1:2] - 3 * size * data[:, :1])], dim=1)
    with pytest.raises(DataError, match=r"^fit: the data lie on a hyperplane"):
        check_spans_space("fit", dependent)
