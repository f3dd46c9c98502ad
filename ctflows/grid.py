"""Regular 2-D grids, for plotting densities and for checking that they integrate to one."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ctflows.core.counts import positive_count, real_setting
from ctflows.errors import ConfigurationError

Bounds = tuple[float, float, float, float]  # (x_min, x_max, y_min, y_max)


def check_bounds(owner: str, bounds: object) -> Bounds:
    """``bounds`` as four floats ``(x_min, x_max, y_min, y_max)`` with ``x_min < x_max`` and ``y_min < y_max``.

    Reversed bounds would draw the picture mirrored and NaN or infinite ones an empty view, both without an error.
    """
    values = list(bounds) if hasattr(bounds, "__iter__") and not isinstance(bounds, (str, bytes)) else None
    if values is None or len(values) != 4:
        raise ConfigurationError(f"{owner}: bounds must be four numbers (x_min, x_max, y_min, y_max), got {bounds!r}")
    x0, x1, y0, y1 = (real_setting(owner, "each entry of bounds (x_min, x_max, y_min, y_max)", v, "a finite number")
                      for v in values)
    if not (x0 < x1 and y0 < y1):
        raise ConfigurationError(
            f"{owner}: bounds must be (x_min, x_max, y_min, y_max) with x_min < x_max and y_min < y_max, "
            f"got {(x0, x1, y0, y1)}; put each minimum before its maximum"
        )
    return x0, x1, y0, y1


def grid_2d(bounds: Bounds, n: int, *, dtype: torch.dtype | None = None, device=None) -> tuple[Tensor, float]:
    """Cell centres of an ``n × n`` grid over ``bounds``: ``([n*n, 2], cell area)``, row-major in y then x.

    ``dtype`` defaults to torch's default dtype, so the points fit a model built with the defaults.
    """
    n = positive_count("grid_2d", "n", n)  # n = 0 divided by zero; a float or bool reached torch.linspace
    # An infinite bound gave NaN points and an infinite cell area (a NaN integral), reversed ones a negative area.
    x0, x1, y0, y1 = check_bounds("grid_2d", bounds)
    hx, hy = (x1 - x0) / n, (y1 - y0) / n
    xs = torch.linspace(x0 + hx / 2, x1 - hx / 2, n, dtype=dtype, device=device)
    ys = torch.linspace(y0 + hy / 2, y1 - hy / 2, n, dtype=dtype, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1), hx * hy


@torch.no_grad()
def evaluate_on_grid(log_prob: Callable[[Tensor], Tensor], points: Tensor, batch_size: int = 16384) -> Tensor:
    """``log_prob`` on ``points [N, 2]`` in batches: ``-> [N]``."""
    return torch.cat([log_prob(chunk) for chunk in points.split(batch_size)])


def integrate_2d(log_prob: Callable[[Tensor], Tensor], bounds: Bounds, n: int = 400, **kwargs) -> float:
    """Midpoint-rule integral of ``exp(log_prob)`` over ``bounds`` on an ``n × n`` grid (summed in float64)."""
    points, area = grid_2d(bounds, n, **kwargs)
    return float(torch.exp(evaluate_on_grid(log_prob, points).double()).sum() * area)
