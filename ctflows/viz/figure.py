"""Writing a finished matplotlib figure to a file, with the file-only (Agg) backend every ctflows plot uses."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is assumed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ctflows.core.atomic_file import write_atomically  # noqa: E402
from ctflows.core.counts import real_setting  # noqa: E402
from ctflows.core.paths import as_path  # noqa: E402
from ctflows.errors import ConfigurationError, InputError  # noqa: E402


def output_path(owner: str, path: object, formats: tuple[str, ...] | None = None) -> Path:
    """``path`` as a Path if its suffix names one of ``formats`` (default: every format matplotlib writes).

    Checked before anything is drawn: matplotlib refuses an unknown suffix only when saving, after the folder
    was made, and silently appends ``.png`` to a name without one (so the path returned would not exist).
    """
    formats = formats or tuple(sorted(FigureCanvasAgg.get_supported_filetypes()))
    path = as_path(owner, "path", path, "figure.png")
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        given = f"suffix .{suffix}" if suffix else "no suffix"
        raise ConfigurationError(
            f"{owner}: path {str(path)!r} has {given}; give a file name ending in one of: {', '.join('.' + f for f in formats)}"
        )
    return path


def save_figure(fig: Figure, path: str | Path, *, dpi: float = 110) -> Path:
    """Save ``fig`` to ``path`` (its folder made if missing), close it so it frees its memory, and return the path."""
    if not isinstance(fig, Figure):
        hint = "; pass ax.figure" if isinstance(fig, plt.Axes) else ""
        raise InputError(f"save_figure: fig must be a matplotlib Figure, got {type(fig).__name__}{hint}")
    path = output_path("save_figure", path)
    dpi = real_setting("save_figure", "dpi", dpi, "a number > 0, e.g. 110", lambda v: v > 0)
    try:
        write_figure_file(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix.lower().lstrip(".")))
    finally:
        plt.close(fig)  # also on failure: pyplot keeps every open figure alive
    return path


def write_figure_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Make ``path``'s folder if missing and run ``write(tmp)`` on a temporary named with ``path``'s suffix, renamed onto
    ``path`` when done (:func:`~ctflows.core.atomic_file.write_atomically`): PDF, SVG and GIF writers stream into
    their file as they draw, so a figure that fails (a bad title, Ctrl-C) would leave half a file, or none where an
    earlier one was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, write, suffix=path.suffix)
