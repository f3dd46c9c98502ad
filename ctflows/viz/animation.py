"""Density evolution along t as a GIF: a CNF's density carried from the data (t = 0) to the base (t = T).

    log p_t(y) = log p_T(x(T)) + ∫_t^T tr(∂v/∂x) ds,   x(t) = y     (FFJORD, Grathwohl et al. 2019)

Each frame is that density on a grid (see :mod:`ctflows.continuous.trajectory`); frames use their own
colour scale, since the peak density changes by orders of magnitude between data and base.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from torch import Tensor, nn

from ctflows.continuous.single import split_at_cnf
from ctflows.continuous.trajectory import density_along_t
from ctflows.core.modes import evaluation_mode
from ctflows.core.transform import forward_through
from ctflows.grid import Bounds, grid_2d
from ctflows.viz.density import CMAP, plt


def cnf_density_frames(flow: nn.Module, bounds: Bounds, frames: int = 16, n: int = 64) -> tuple[Tensor, Tensor]:
    """Densities ``p_t`` of a one-CNF 2-D flow on an ``n × n`` grid at ``frames`` times from 0 to T.

    Layers in front of the CNF (a :class:`~ctflows.linear.Standardization`) are held fixed: each frame is the
    density, in data coordinates, of the state at time t mapped back through them, so the first frame is the
    model's density. Returns ``(times [frames], densities [frames, n, n])``, rows in y as
    :func:`ctflows.grid.grid_2d` lays them.
    """
    front, cnf = split_at_cnf(flow, "the density animation")
    with evaluation_mode(flow):
        like = next(flow.parameters())
        points, _ = grid_2d(bounds, n, dtype=like.dtype, device=like.device)
        times = torch.linspace(0.0, float(cnf.end_time), frames)
        with torch.no_grad():
            inside, front_logdet = forward_through(front, points)
        log_p = density_along_t(cnf, flow.base.log_prob, inside, times.tolist()) + front_logdet
    return times, torch.exp(log_p).reshape(frames, n, n).cpu()


def density_animation(times: Tensor, densities: Tensor, bounds: Bounds, path: str | Path, *, title: str = "", fps: int = 6) -> Path:
    """Write ``densities [K, n, n]`` at ``times [K]`` as a looping GIF to ``path``; the last frame is held a moment."""
    fig, ax = plt.subplots(figsize=(3.4, 3.6))
    ax.set_axis_off()
    image = ax.imshow(densities[0].numpy(), origin="lower", extent=bounds, cmap=CMAP, aspect="equal")
    label = ax.set_title("")
    # Hold the two ends (data and base) so the eye can compare them.
    order = [0] * 3 + list(range(len(times))) + [len(times) - 1] * 3

    def show(k: int) -> tuple:
        frame = densities[order[k]].numpy()
        image.set_data(frame)
        image.set_clim(0.0, float(np.max(frame)) or 1.0)
        end = "  (data)" if order[k] == 0 else "  (base)" if order[k] == len(times) - 1 else ""
        label.set_text(f"{title}  t = {float(times[order[k]]):.2f}{end}".strip())
        return image, label

    animation = FuncAnimation(fig, show, frames=len(order), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.save(path, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return path
