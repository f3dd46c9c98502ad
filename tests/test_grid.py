"""The plotting and integration grid: cell centres, their order, the cell area, and the midpoint rule."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctflows.errors import ConfigurationError
from ctflows.grid import evaluate_on_grid, grid_2d, integrate_2d


def test_grid_points_are_cell_centres_row_major_in_y_then_x():
    points, area = grid_2d((0.0, 4.0, 10.0, 13.0), 2, dtype=torch.float64)
    # hx = 2, hy = 1.5: centres x ∈ {1, 3}, y ∈ {10.75, 12.25}; x varies fastest.
    expected = torch.tensor([[1.0, 10.75], [3.0, 10.75], [1.0, 12.25], [3.0, 12.25]], dtype=torch.float64)
    torch.testing.assert_close(points, expected, rtol=0, atol=1e-12)
    assert area == 3.0


def test_midpoint_rule_is_exact_for_linear_densities_on_an_asymmetric_box():
    # ∫_1^3 ∫_10^12 (x + 2y) dy dx = 2·4 + 2·2·22 = 96; the midpoint rule is exact for linear integrands,
    # and swapping the coordinates would give 60.
    total = integrate_2d(lambda p: torch.log(p[:, 0] + 2 * p[:, 1]), (1.0, 3.0, 10.0, 12.0), n=7, dtype=torch.float64)
    assert abs(total - 96.0) < 1e-10


def test_a_normal_density_integrates_to_one():
    def log_prob(p):
        return (-0.5 * ((p[:, 0] - 0.5) / 0.7) ** 2 - 0.5 * ((p[:, 1] + 1.0) / 1.3) ** 2
                - math.log(2 * math.pi * 0.7 * 1.3))

    assert abs(integrate_2d(log_prob, (-6.0, 7.0, -10.0, 8.0), n=300, dtype=torch.float64) - 1.0) < 1e-6


def test_reversed_or_empty_bounds_and_bad_cell_counts_are_refused() -> None:
    """A reversed y range would give a negative cell area (an integral of -1); n must be a count, not 0, 2.5 or True."""
    for bounds in ((0.0, 1.0, 1.0, 0.0), (1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 2.0, 2.0)):
        with pytest.raises(ConfigurationError, match=r"^grid_2d: bounds must be .*x_min < x_max and y_min < y_max"):
            grid_2d(bounds, 4)
    # The message shows the bounds as the four numbers read, whatever held them (here a NumPy array).
    with pytest.raises(ConfigurationError, match=r"got \(0\.0, 1\.0, 1\.0, 0\.0\); put each minimum before its maximum$"):
        grid_2d(np.array([0, 1, 1, 0]), 4)
    for n in (0, -3, 2.5, True):
        with pytest.raises(ConfigurationError, match=r"^grid_2d: n must be an int >= 1, got"):
            grid_2d((0.0, 1.0, 0.0, 1.0), n)
    points, area = grid_2d((0.0, 1.0, 0.0, 1.0), np.int64(1), dtype=torch.float64)
    assert points.tolist() == [[0.5, 0.5]] and area == 1.0


@pytest.mark.parametrize("bounds, got", [((-math.inf, 1.0, 0.0, 1.0), "-inf"), ((0.0, 1.0, 0.0, math.inf), "inf"),
                                         ((0.0, math.nan, 0.0, 1.0), "nan")])
def test_infinite_or_nan_bounds_are_refused(bounds: tuple[float, ...], got: str) -> None:
    """An infinite bound used to give NaN points and an infinite cell area, so integrate_2d returned NaN silently."""
    with pytest.raises(ConfigurationError, match=rf"^grid_2d: each entry of bounds .* must be a finite number, got {got}$"):
        integrate_2d(lambda p: -0.5 * (p**2).sum(1), bounds, n=4)


def test_bounds_may_be_numpy_or_torch_numbers_and_the_area_is_a_float() -> None:
    """Bounds given as a tensor (as a plot may take them) give the same grid, and a Python float for the cell area."""
    points, area = grid_2d(torch.tensor([0.0, 4.0, 10.0, 13.0]), 2, dtype=torch.float64)
    same, same_area = grid_2d((np.float64(0.0), 4, 10.0, np.float32(13.0)), 2, dtype=torch.float64)
    assert type(area) is float and area == same_area == 3.0 and torch.equal(points, same)


def test_grid_evaluation_builds_no_graph() -> None:
    """A density on 10⁵ points is for plotting or integrating: no autograd graph is kept for it."""
    weight = torch.ones(2, dtype=torch.float64, requires_grad=True)
    points, _ = grid_2d((0.0, 1.0, 0.0, 1.0), 8, dtype=torch.float64)
    values = evaluate_on_grid(lambda p: (p * weight).sum(1), points, batch_size=10)
    assert values.shape == (64,) and not values.requires_grad
    torch.testing.assert_close(values, points.sum(1))


def test_densities_beyond_float32s_exp_range_integrate_in_float64() -> None:
    """The sum is in float64 from the exp on: a uniform density on a 1e-20 × 1e-20 box (log p = 92.1, beyond float32's
    exp limit 88.7) integrates to one on a float32 grid, where a float32 exp would be inf. (The float32 log p itself is
    rounded by up to 92 · 2^-24 = 5.5e-6, hence the tolerance.)"""
    side = 1e-20
    total = integrate_2d(lambda p: torch.full((len(p),), -2 * math.log(side), dtype=p.dtype), (0.0, side, 0.0, side), n=4)
    assert abs(total - 1.0) < 1e-5
