"""The figures the CLI writes for 2-D data: truth vs each model (density | samples | map), and CNF animations;
for images, held-out images and each model's samples, one row each.

Every panel uses the same bounds and colour map (:mod:`ctflows.viz.density`), so rows compare at a glance.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ctflows.cli.dataset import Dataset
from ctflows.grid import Bounds
from ctflows.viz import (
    cnf_density_frames, density_animation, density_panel, flow_paths, sample_panel, side_by_side, trajectory_panel,
)
from ctflows.viz.density import Panel

PATH_POINTS = 300
MOSAIC = (6, 6)  # each row of the image figure: a square of 6 × 6 images, the shape side_by_side draws panels in


def _blank() -> Panel:
    return "", lambda ax: None


def truth_panels(data: Dataset, bounds: Bounds, reference: Tensor, grid: int) -> list[Panel]:
    """The top row: the true density (or, for a file, a histogram of its training rows) and data samples."""
    if data.density is not None:
        return [density_panel("true density", data.density.log_prob, bounds, n=grid),
                sample_panel("data samples", reference, bounds, bins=grid // 2), _blank()]
    return [sample_panel("training data", reference, bounds, bins=grid // 2),
            sample_panel("held-out test data", data.test, bounds, bins=grid // 2), _blank()]


def _with_base(bounds: Bounds, reach: float = 3.5) -> Bounds:
    # The paths end in the standard normal base, which need not lie inside the data's view.
    return (min(bounds[0], -reach), max(bounds[1], reach), min(bounds[2], -reach), max(bounds[3], reach))


def model_panels(name: str, flow: nn.Module, samples: Tensor, reference: Tensor, bounds: Bounds, grid: int) -> list[Panel]:
    """One row for a trained 2-D model: its density, a histogram of its samples, and paths data -> base."""
    flow.eval()
    like = next(flow.parameters())
    paths = flow_paths(flow, reference[:PATH_POINTS].to(like))

    def log_prob(x: Tensor) -> Tensor:  # the grid is made on the CPU; the model may live on a GPU
        return flow.log_prob(x.to(like)).cpu()

    return [
        density_panel(f"{name}: density", log_prob, bounds, n=grid),
        sample_panel(f"{name}: samples", samples, bounds, bins=grid // 2),
        trajectory_panel(f"{name}: map data → base", paths.cpu(), _with_base(bounds)),
    ]


def figure_grid(rows: Sequence[list[Panel]], path: Path, title: str) -> Path:
    """Save the rows of three panels as one PNG."""
    return side_by_side([panel for row in rows for panel in row], path, suptitle=title, columns=3)


def animate(name: str, flow: nn.Module, bounds: Bounds, path: Path, frames: int, grid: int) -> Path:
    """A GIF of a one-CNF model's density from the data (t = 0) to the base (t = T)."""
    with torch.no_grad():
        times, densities = cnf_density_frames(flow, bounds, frames=frames, n=grid)
    return density_animation(times, densities, bounds, path, title=name)


def _mosaic(images: Tensor, levels: int | None) -> Tensor:
    """``[n, 1, H, W]`` -> one ``[6(H+1), 6(W+1)]`` picture in [0, 1]; integer pixels k are shown at (k + ½) / levels."""
    lines, per_line = MOSAIC
    x = images[: lines * per_line].float()
    x = (x + 0.5) / levels if levels is not None and not images.is_floating_point() else x.clamp(0, 1)
    x = torch.cat([x, x.new_zeros(lines * per_line - len(x), *x.shape[1:])])  # blank cells when there are fewer
    x = nn.functional.pad(x, (0, 1, 0, 1))  # a blank pixel between neighbours, or 8×8 digits run together
    height, width = x.shape[-2:]
    return x[:, 0].reshape(lines, per_line, height, width).permute(0, 2, 1, 3).reshape(lines * height, per_line * width)


def image_rows(images: dict[str, Tensor], levels: int | None, path: Path, title: str) -> Path:
    """Save one row per entry of ``images`` (label -> ``[n, 1, H, W]``, integers or model samples in [0, 1)) as one PNG."""

    def panel(label: str, x: Tensor) -> Panel:
        return label, lambda ax: ax.imshow(_mosaic(x.cpu(), levels).numpy(), cmap="gray_r", vmin=0, vmax=1)

    return side_by_side([panel(label, x) for label, x in images.items()], path, suptitle=title, columns=1)
