"""The training curve: loss per step and its running mean, in the package's plot style."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ctflows.viz.checks import check_curves
from ctflows.viz.figure import output_path, plt, save_figure


def running_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps, ``m_k = mean(v_{k-w+1..k})`` (shorter at the start); ``[K] -> [K]``.

    Non-finite values (skipped steps) are left out of every window that holds them.
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    sums = np.cumsum(np.where(finite, v, 0.0))
    counts = np.cumsum(finite)
    lag = np.arange(len(v)) - window
    sums = sums - np.where(lag >= 0, sums[np.maximum(lag, 0)], 0.0)
    counts = counts - np.where(lag >= 0, counts[np.maximum(lag, 0)], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def loss_curves(curves: Mapping[str, Sequence[float]], path: str | Path, *, ylabel: str = "training loss") -> Path:
    """One panel per named per-step loss series ``[K]``: the raw losses (faint) and their running mean; saved as PNG.

    Panels are separate because objectives differ in scale (an NLL in nats, a flow-matching regression
    error). Each y-range is clipped to the 1st–99th percentile of the running mean, so a few huge early
    losses do not flatten the rest of the curve. NaN losses (a diverged run) are drawn as gaps.
    """
    curves, path = check_curves("loss_curves", curves), output_path("loss_curves", path)
    columns = min(4, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(curves):]:
        ax.set_axis_off()
    for ax, colour, (name, losses) in zip(axes.flat, plt.cm.tab10.colors, curves.items()):
        steps = np.arange(1, len(losses) + 1)
        smooth = running_mean(losses, max(1, len(losses) // 50))
        ax.plot(steps, losses, color=colour, alpha=0.25, linewidth=0.7)
        ax.plot(steps, smooth, color=colour, linewidth=1.6)
        finite = smooth[np.isfinite(smooth)]
        if finite.size:
            low, high = np.percentile(finite, [1, 99])
            pad = 0.1 * (high - low) + 1e-3
            ax.set_ylim(low - pad, high + pad)
        else:  # a run with no step (a resumed one with none left) or none finite: say so, not a bare frame
            ax.text(0.5, 0.5, "no finite loss recorded", transform=ax.transAxes, ha="center", va="center", fontsize=9)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
