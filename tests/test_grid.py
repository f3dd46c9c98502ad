"""The plotting and integration grid: cell centres, their order, the cell area, and the midpoint rule."""
from __future__ import annotations

import math

import torch

from ctflows.grid import grid_2d, integrate_2d


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
