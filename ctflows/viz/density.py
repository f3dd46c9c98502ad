"""Density and sample panels for 2-D models, and the side-by-side figure the demo and CLI save.

Every panel shares the same bounds and colour map so that true and learned densities compare at a glance.
Each panel checks its arguments when it is made, so a mistake is reported before any figure is drawn.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ctflows.core.counts import optional_count, positive_count
from ctflows.core.validation import placement
from ctflows.errors import ConfigurationError, InputError
from ctflows.grid import Bounds, check_bounds, evaluate_on_grid, grid_2d
from ctflows.viz.checks import check_planar, plot_tensor
from ctflows.viz.figure import output_path, plt, save_figure

CMAP = "magma"
Panel = tuple[str, Callable[[plt.Axes], None]]


def density_panel(title: str, log_prob: Callable[[Tensor], Tensor], bounds: Bounds, n: int = 200) -> Panel:
    """A panel showing ``exp(log_prob)`` on an ``n × n`` grid over ``bounds``; ``log_prob: [N, 2] -> [N]``."""
    if not callable(log_prob):
        raise ConfigurationError(
            f"density_panel: log_prob must be a function [N, 2] -> [N], e.g. flow.log_prob, got {type(log_prob).__name__}"
        )
    check_planar("density_panel", "log_prob", log_prob)
    bounds, n = check_bounds("density_panel", bounds), positive_count("density_panel", "n", n)
    # The grid in the dtype and on the device of the model a bound method such as flow.log_prob belongs to: points in
    # torch's default dtype made a float64 model refuse them halfway through the figure.
    model = getattr(log_prob, "__self__", None)
    device, dtype = placement(model) if isinstance(model, nn.Module) else (None, None)

    def checked(points: Tensor) -> Tensor:
        out = log_prob(points)
        if not isinstance(out, Tensor) or tuple(out.shape) != (len(points),):
            got = list(out.shape) if isinstance(out, Tensor) else f"a {type(out).__name__}"
            raise InputError(
                f"density_panel: log_prob must map points [N, 2] to log-densities [N], but for N = {len(points)} it "
                f"returned {got}; pass a log-density function such as flow.log_prob (not the flow itself)"
            )
        return out

    def draw(ax: plt.Axes) -> None:
        points, _ = grid_2d(bounds, n, dtype=dtype, device=device)
        density = torch.exp(evaluate_on_grid(checked, points)).reshape(n, n)
        ax.imshow(density.cpu().double().numpy(), origin="lower", extent=bounds, cmap=CMAP, aspect="equal")

    return title, draw


def sample_panel(title: str, samples: Tensor, bounds: Bounds, bins: int = 200) -> Panel:
    """A panel showing a 2-D histogram of ``samples [N, 2]`` over ``bounds``.

    Rows with NaN or Inf (a diverged model) cannot be binned; their number is written on the panel.
    """
    x = plot_tensor("sample_panel", "samples", samples, ("N", 2)).numpy()
    bounds, bins = check_bounds("sample_panel", bounds), positive_count("sample_panel", "bins", bins)
    dropped = int((~np.isfinite(x).all(axis=1)).sum())

    def draw(ax: plt.Axes) -> None:
        ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=[bounds[:2], bounds[2:]], cmap=CMAP)
        ax.set_aspect("equal")
        if dropped:  # else a partly or wholly diverged sample would look like a sparse or empty one
            ax.text(0.5, 0.02, f"{dropped} of {len(x)} samples NaN/Inf", transform=ax.transAxes, ha="center",
                    fontsize=7, color="white")

    return title, draw


def _check_panels(panels: object) -> list[Panel]:
    """``panels`` as a non-empty list of ``(title, draw)`` pairs, or an :class:`InputError` saying what to pass."""
    if isinstance(panels, tuple) and len(panels) == 2 and isinstance(panels[0], str) and callable(panels[1]):
        raise InputError("side_by_side: panels must be a list of panels, got a single (title, draw) panel; wrap it: [panel]")
    panels = list(panels) if hasattr(panels, "__iter__") and not isinstance(panels, (str, bytes)) else None
    if not panels:
        raise InputError("side_by_side: panels must be a non-empty list of (title, draw) panels such as density_panel returns")
    for i, panel in enumerate(panels):
        if not (isinstance(panel, (tuple, list)) and len(panel) == 2 and callable(panel[1])):
            raise InputError(
                f"side_by_side: panels[{i}] must be a (title, draw) pair such as density_panel returns, got {panel!r:.80}"
            )
    return panels


def side_by_side(panels: Sequence[Panel], path: str | Path, *, suptitle: str | None = None, columns: int | None = None) -> Path:
    """Draw ``panels`` in a grid (one row unless ``columns`` is given) and save the figure to ``path`` (PNG)."""
    panels, path = _check_panels(panels), output_path("side_by_side", path)
    columns = optional_count("side_by_side", "columns", columns) or len(panels)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.3 * rows + (0.4 if suptitle else 0)), squeeze=False)
    try:
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_axis_off()
        for ax, (title, draw) in zip(axes.flat, panels):
            draw(ax)
            ax.set_title(title, fontsize=10)
    except BaseException:
        plt.close(fig)  # a panel that fails (a solver error on the grid) must not leave the figure open in pyplot
        raise
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    # Leave the top strip to the suptitle; tight_layout alone lets the first row's titles run into it.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()) if suptitle else None)
    return save_figure(fig, path)
