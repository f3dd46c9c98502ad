"""The learned map drawn as paths: where each data point travels on its way to the base.

A discrete flow moves a point once per layer; a CNF moves it continuously, ``dx/dt = v(t, x)``
(Chen et al. 2018), so its layers are expanded into many intermediate times.
"""
from __future__ import annotations

import math

import numpy as np

import torch
from torch import Tensor, nn

from ctflows.continuous.cnf import CNF
from ctflows.continuous.trajectory import cnf_path
from ctflows.core.counts import positive_count
from ctflows.core.modes import evaluation_mode
from ctflows.core.transform import flat_layers
from ctflows.core.validation import check_tensor, placement
from ctflows.grid import Bounds, check_bounds
from ctflows.viz.checks import plot_tensor
from ctflows.viz.density import CMAP, Panel, plt


@torch.no_grad()
def flow_paths(flow: nn.Module, x: Tensor, cnf_steps: int = 24) -> Tensor:
    """Positions of ``x [N, D]`` on the way through ``flow.transform`` (data -> base): ``[K, N, D]``.

    Row 0 is ``x`` and the last row ``z``. A CNF adds ``cnf_steps`` rows at evenly spaced times; a run of
    discrete layers adds only its end point, since a single layer's output (a permutation swapping the
    axes, an ActNorm rescaling) is no place on a path. The flow runs in ``eval()`` mode (a layer in
    training mode could change itself, e.g. ActNorm's initialisation); its modes are restored after.
    """
    # The layers are called one by one, past Flow's own input check: without this one, a CNF given the wrong
    # width fails inside its network with a matrix-shape error.
    device, dtype = placement(flow)
    check_tensor("flow_paths", x, getattr(flow, "event_shape", None), name="x", device=device, dtype=dtype)
    cnf_steps = positive_count("flow_paths", "cnf_steps", cnf_steps)  # 0 would end the path before the CNF moves
    with evaluation_mode(flow):
        rows, current, moved = [x], x, False
        for layer in flat_layers(flow.transform):
            if isinstance(layer, CNF):
                if moved:
                    rows.append(current)
                times = torch.linspace(0.0, float(layer.end_time), cnf_steps + 1)
                rows.extend(cnf_path(layer, current, times)[1:])
                current, moved = rows[-1], False
            else:
                current, moved = layer(current)[0], True
        if moved:
            rows.append(current)
    return torch.stack(rows)


def trajectory_panel(title: str, paths: Tensor, bounds: Bounds | None = None) -> Panel:
    """A panel drawing ``paths [K, N, 2]`` as lines, coloured by start angle, with start (·) and end (×) marks.

    ``bounds`` fixes the view; ``None`` fits it to the paths.
    """
    p = plot_tensor("trajectory_panel", "paths", paths, ("K", "N", 2)).numpy()
    bounds = None if bounds is None else check_bounds("trajectory_panel", bounds)

    def draw(ax: plt.Axes) -> None:
        angle = np.arctan2(p[0, :, 1], p[0, :, 0])
        colours = plt.get_cmap(CMAP)(0.15 + 0.7 * (angle + math.pi) / (2 * math.pi))
        for i in range(p.shape[1]):
            ax.plot(p[:, i, 0], p[:, i, 1], color=colours[i], linewidth=0.6, alpha=0.7)
        ax.scatter(p[0, :, 0], p[0, :, 1], s=4, color="black", zorder=3, label="data")
        ax.scatter(p[-1, :, 0], p[-1, :, 1], s=6, marker="x", color="tab:blue", linewidths=0.6, zorder=3, label="base")
        if bounds is not None:
            ax.set_xlim(bounds[:2])
            ax.set_ylim(bounds[2:])
        ax.set_aspect("equal")
        ax.legend(fontsize=6, loc="lower right")

    return title, draw
