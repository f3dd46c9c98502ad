"""Whether data points span the space a density is fitted on: points on a hyperplane have no density on R^D.

    C = Cov(x) (1/N),   R = diag(C)^-1/2 C diag(C)^-1/2,   the points lie on a hyperplane  <=>  λ_min(R) = 0

A fit to such points (a constant column, or linearly dependent columns) builds a spike on the hyperplane whose
likelihood grows without bound, so each number reported with it is meaningless. The test is on the correlation
matrix R, so columns in different units pass.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ctflows.errors import DataError

SPAN_TOLERANCE = 1e-10
"""Smallest eigenvalue of the data's correlation matrix below which the points count as lying on a hyperplane:
a combination of the standardised columns whose spread is under 1e-5 of theirs (float32 rounding of exactly
dependent columns leaves about 1e-7)."""

ROWS_PER_CHUNK = 65536
"""Rows converted to float64 at a time, so that the check needs O(chunk · D + D²) memory however many rows."""


def mean_and_covariance(points: Tensor, *, in_ranges: bool = False) -> tuple[Tensor, Tensor]:
    """The mean ``[D]`` and covariance ``[D, D]`` (divided by N) of ``points [N, D]``, in float64, summed over chunks
    of rows; ``in_ranges``: the covariance of each column divided by its range, its largest |x - x_0| (1 for a
    constant column), so that float64 columns beyond 1e±154 neither overflow nor underflow their squares.

    Two passes (the mean, then the centred products) so that data far from the origin keep their digits, both about
    the first row x_0: a constant column is then exactly zero after the shift, so its variance is exactly 0 (its
    rounded mean, 0.1 + 0.1 + 0.1 != 0.3, left a variance of rounding that passed for spread).
    """
    chunks = torch.split(points.detach(), ROWS_PER_CHUNK)
    shift = chunks[0][0].double()

    def differences() -> Iterator[Tensor]:
        return (chunk.double() - shift for chunk in chunks)

    unit = torch.ones_like(shift)
    if in_ranges:  # a third pass
        largest = torch.stack([d.abs().amax(dim=0) for d in differences()]).amax(dim=0)
        unit = torch.where(largest > 0, largest, unit)
    offset = sum((d / unit).sum(dim=0) for d in differences()) / points.shape[0]
    products = torch.zeros(points.shape[1], points.shape[1], dtype=torch.float64, device=points.device)
    for d in differences():
        centred = d / unit - offset
        products += centred.T @ centred
    return shift + offset * unit, products / points.shape[0]


def check_spans_space(owner: str, data: Tensor) -> None:
    """Raise :class:`DataError` naming ``owner`` when the points ``data [N, D]`` lie on a hyperplane: a constant
    column, or columns that are linearly dependent (also every set of N <= D points)."""
    _, moments = mean_and_covariance(data, in_ranges=True)  # the test is on correlations, which units do not change
    spread = moments.diagonal().sqrt()
    constant = (spread == 0).nonzero().flatten()
    if constant.numel():
        raise DataError(f"{owner}: column {int(constant[0])} of the data is constant; drop it (a density needs spread in every coordinate)")
    smallest = float(torch.linalg.eigvalsh(moments / torch.outer(spread, spread))[0])
    if smallest < SPAN_TOLERANCE:
        raise DataError(
            f"{owner}: the data lie on a hyperplane: a combination of the standardised columns is constant to "
            f"{max(smallest, 0.0) ** 0.5:.1e} of their spread, so no density on R^{data.shape[1]} fits them; drop a "
            "redundant column, or keep only the leading principal components"
        )
