"""Density and sample panels for 2-D models, and the side-by-side figure the demo and CLI save.

Every panel shares the same bounds and colour map so that true and learned densities compare at a glance.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ctflows.grid import Bounds, evaluate_on_grid, grid_2d
from ctflows.viz.figure import plt, save_figure

CMAP = "magma"
Panel = tuple[str, Callable[[plt.Axes], None]]


def density_panel(title: str, log_prob: Callable[[Tensor], Tensor], bounds: Bounds, n: int = 200) -> Panel:
    """A panel showing ``exp(log_prob)`` on an ``n × n`` grid over ``bounds``."""

    def draw(ax: plt.Axes) -> None:
        points, _ = grid_2d(bounds, n)
        density = torch.exp(evaluate_on_grid(log_prob, points)).reshape(n, n)
        ax.imshow(density.cpu().numpy(), origin="lower", extent=bounds, cmap=CMAP, aspect="equal")

    return title, draw


def sample_panel(title: str, samples: Tensor, bounds: Bounds, bins: int = 200) -> Panel:
    """A panel showing a 2-D histogram of ``samples [N, 2]`` over ``bounds``."""

    def draw(ax: plt.Axes) -> None:
        x = samples.detach().cpu().numpy()
        ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=[bounds[:2], bounds[2:]], cmap=CMAP)
        ax.set_aspect("equal")

    return title, draw


def side_by_side(panels: Sequence[Panel], path: str | Path, *, suptitle: str | None = None, columns: int | None = None) -> Path:
    """Draw ``panels`` in a grid (one row unless ``columns`` is given) and save the figure to ``path`` (PNG)."""
    columns = columns or len(panels)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.3 * rows + (0.4 if suptitle else 0)), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_axis_off()
    for ax, (title, draw) in zip(axes.flat, panels):
        draw(ax)
        ax.set_title(title, fontsize=10)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    # Leave the top strip to the suptitle; tight_layout alone lets the first row's titles run into it.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()) if suptitle else None)
    return save_figure(fig, path)
