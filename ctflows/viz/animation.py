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
from ctflows.core.counts import positive_count, real_setting, whole_setting
from ctflows.core.modes import evaluation_mode
from ctflows.core.transform import forward_through
from ctflows.errors import InputError
from ctflows.grid import Bounds, check_bounds, grid_2d
from ctflows.viz.checks import check_planar, plot_tensor
from ctflows.viz.density import CMAP, plt
from ctflows.viz.figure import output_path, write_figure_file


def cnf_density_frames(flow: nn.Module, bounds: Bounds, frames: int = 16, n: int = 64) -> tuple[Tensor, Tensor]:
    """Densities ``p_t`` of a one-CNF 2-D flow on an ``n × n`` grid at ``frames`` times from 0 to T.

    Layers in front of the CNF (a :class:`~ctflows.linear.Standardization`) are held fixed: each frame is the
    density, in data coordinates, of the state at time t mapped back through them, so the first frame is the
    model's density. Returns ``(times [frames], densities [frames, n, n])``, rows in y as
    :func:`ctflows.grid.grid_2d` lays them.
    """
    front, cnf = split_at_cnf(flow, "the density animation")
    check_planar("cnf_density_frames", "flow", flow)
    bounds, n = check_bounds("cnf_density_frames", bounds), positive_count("cnf_density_frames", "n", n)
    frames = whole_setting("cnf_density_frames", "frames", frames,
                           "an int >= 2 (the first at t = 0, the data, the last at t = T, the base)", lambda v: v >= 2)
    with evaluation_mode(flow):
        like = next(flow.parameters())
        points, _ = grid_2d(bounds, n, dtype=like.dtype, device=like.device)
        times = torch.linspace(0.0, float(cnf.end_time), frames)
        with torch.no_grad():
            inside, front_logdet = forward_through(front, points)
        log_p = density_along_t(cnf, flow.base.log_prob, inside, times.tolist()) + front_logdet
    return times, torch.exp(log_p).reshape(frames, n, n).cpu()


def density_animation(
    times: Tensor, densities: Tensor, bounds: Bounds, path: str | Path, *, title: str = "", fps: float = 6
) -> Path:
    """Write ``densities [K, n, m]`` (>= 0) at ``times [K]`` as a looping GIF to ``path``; the last frame is held a moment."""
    owner = "density_animation"
    densities = plot_tensor(owner, "densities", densities, ("K", "n", "m"))
    times = plot_tensor(owner, "times", times, ("K",))
    if len(times) != len(densities):  # else frames are dropped, or the writer stops halfway on a missing one
        raise InputError(
            f"{owner}: times has {len(times)} entries but densities has {len(densities)} frames; give one time per frame"
        )
    lowest = float(densities.nan_to_num(nan=0.0).min())
    if lowest < 0:  # a density is never negative: these are most likely log-densities
        raise InputError(f"{owner}: densities must be >= 0, got a minimum of {lowest:.3g}; for log-densities pass their exp()")
    bounds, path = check_bounds(owner, bounds), output_path(owner, path, ("gif",))
    fps = real_setting(owner, "fps", fps, "a number of frames per second > 0, e.g. 6", lambda v: v > 0)
    fig, ax = plt.subplots(figsize=(3.4, 3.6))
    ax.set_axis_off()
    image = ax.imshow(densities[0].numpy(), origin="lower", extent=bounds, cmap=CMAP, aspect="equal")
    label = ax.set_title("")
    # Hold the two ends (data and base) so the eye can compare them.
    order = [0] * 3 + list(range(len(times))) + [len(times) - 1] * 3

    def show(k: int) -> tuple:
        frame = densities[order[k]].numpy()
        image.set_data(frame)
        finite = frame[np.isfinite(frame)]  # one NaN cell (a diverged solve) would make the whole scale NaN
        image.set_clim(0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
        end = "  (data)" if order[k] == 0 else "  (base)" if order[k] == len(times) - 1 else ""
        label.set_text(f"{title}  t = {float(times[order[k]]):.2f}{end}".strip())
        return image, label

    animation = FuncAnimation(fig, show, frames=len(order), blit=False)
    try:
        # The writer flushes the frames it has on the way out of a failure: written beside path and renamed onto it,
        # a failed animation leaves no half GIF, and an earlier file there as it was.
        write_figure_file(path, lambda tmp: animation.save(tmp, writer=PillowWriter(fps=fps)))
    finally:
        plt.close(fig)
    return path
