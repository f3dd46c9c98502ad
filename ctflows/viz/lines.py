"""A panel of per-step series (e.g. a solver's function evaluations per training step) for ``side_by_side``."""
from __future__ import annotations

from typing import Mapping, Sequence

from matplotlib.ticker import AutoLocator

from ctflows.core.counts import positive_count
from ctflows.viz.checks import check_curves
from ctflows.viz.density import Panel, plt
from ctflows.viz.loss import running_mean


def lines_panel(
    title: str, curves: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str, smooth: int = 1
) -> Panel:
    """One line per named series ``[K]`` against its index, each a trailing mean over ``smooth`` points.

    ``None`` entries (steps a layer did not report, as in ``History.counts``) are gaps, like NaN.
    """
    series, smooth = check_curves("lines_panel", curves), positive_count("lines_panel", "smooth", smooth)

    def draw(ax: plt.Axes) -> None:
        ax.set_axis_on()
        # side_by_side clears every panel's ticks (images need none); a line plot needs them back.
        ax.xaxis.set_major_locator(AutoLocator())
        ax.yaxis.set_major_locator(AutoLocator())
        for name, values in series.items():
            ax.plot(running_mean(values, smooth), lw=0.9, label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)

    return title, draw
