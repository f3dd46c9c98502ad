"""Writing a finished matplotlib figure to a file, with the file-only (Agg) backend every ctflows plot uses."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is assumed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` (its folder made if missing), close it so it frees its memory, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
