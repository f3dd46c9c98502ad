"""Figure files: written in the format their suffix names, to the asked path, and all or nothing.

A figure that fails while it is drawn (a bad title, a solver error in a panel, Ctrl-C) must leave no half-written
file at the path, an earlier file there unchanged, no temporary file beside it and no figure open in pyplot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch
from matplotlib.animation import PillowWriter

from ctflows.viz import density_animation, sample_panel, save_figure, side_by_side
from ctflows.viz.figure import plt

# The first bytes of each format, from the formats' specifications (PNG signature, PDF header, XML declaration, GIF89a).
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml", "gif": b"GIF8"}
B = (-2.0, 2.0, -2.0, 2.0)


def _figure(title: str = "fine") -> plt.Figure:
    fig = plt.figure(figsize=(1, 1))
    fig.suptitle(title)
    return fig


def _broken_figure() -> plt.Figure:
    """A figure that fails only when drawn: mathtext cannot parse an unknown command."""
    return _figure(r"$\notacommand$")


def _assert_untouched(folder: Path, path: Path, before: bytes | None) -> None:
    """``path`` holds ``before`` (or does not exist), nothing else is in ``folder``, and no figure is left open."""
    assert (path.read_bytes() if path.exists() else None) == before
    assert sorted(p.name for p in folder.iterdir()) == ([path.name] if before is not None else [])
    assert plt.get_fignums() == []


@pytest.mark.parametrize("name", ["f.png", "f.pdf", "f.svg", "F.PNG"])
def test_save_figure_writes_the_format_its_suffix_names(tmp_path: Path, name: str) -> None:
    """Every format matplotlib writes is accepted, the suffix in any case, and the file is that format."""
    path = save_figure(_figure(), tmp_path / "new" / name)
    assert path == tmp_path / "new" / name and sorted(p.name for p in path.parent.iterdir()) == [name]
    assert path.read_bytes().startswith(MAGIC[name.split(".")[1].lower()])
    assert plt.get_fignums() == []


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
@pytest.mark.parametrize("earlier", [None, b"an earlier figure"])
def test_a_figure_that_fails_to_draw_leaves_the_path_as_it_was(tmp_path: Path, suffix: str, earlier: bytes | None) -> None:
    """PDF and SVG are streamed into the file as they are drawn: a failure used to leave half a file there."""
    path = tmp_path / f"f.{suffix}"
    if earlier is not None:
        path.write_bytes(earlier)
    with pytest.raises(ValueError, match="notacommand"):
        save_figure(_broken_figure(), path)
    _assert_untouched(tmp_path, path, earlier)


def test_side_by_side_closes_its_figure_when_a_panel_fails(tmp_path: Path) -> None:
    """A panel that raises (say a solver error on the grid) leaves no figure open in pyplot and no file."""
    def failing(ax: plt.Axes) -> None:
        raise RuntimeError("solver diverged")

    with pytest.raises(RuntimeError, match="solver diverged"):
        side_by_side([sample_panel("s", torch.randn(9, 2), B, bins=3), ("bad", failing)], tmp_path / "f.png")
    _assert_untouched(tmp_path, tmp_path / "f.png", None)


@pytest.mark.parametrize("earlier", [None, b"an earlier animation"])
def test_an_animation_that_fails_halfway_leaves_the_path_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier: bytes | None
) -> None:
    """PillowWriter writes the frames it has when a frame fails; neither they nor the loss of an earlier file may show."""
    grab: Callable = PillowWriter.grab_frame
    grabbed = []

    def failing_grab(self: PillowWriter, **kwargs: object) -> None:
        if len(grabbed) == 3:
            raise KeyboardInterrupt
        grabbed.append(1)
        grab(self, **kwargs)

    monkeypatch.setattr(PillowWriter, "grab_frame", failing_grab)
    path = tmp_path / "a.gif"
    if earlier is not None:
        path.write_bytes(earlier)
    with pytest.raises(KeyboardInterrupt):
        density_animation(torch.linspace(0, 1, 3), torch.rand(3, 4, 4), B, path)
    assert len(grabbed) == 3
    _assert_untouched(tmp_path, path, earlier)


def test_an_animation_replaces_an_earlier_file_whole(tmp_path: Path) -> None:
    """A finished GIF takes the place of an earlier file at the path, and nothing else is left in its folder."""
    path = tmp_path / "a.gif"
    path.write_bytes(b"an earlier animation")
    assert density_animation(torch.linspace(0, 1, 2), torch.rand(2, 4, 4), B, path) == path
    assert path.read_bytes().startswith(MAGIC["gif"]) and [p.name for p in tmp_path.iterdir()] == ["a.gif"]
    assert plt.get_fignums() == []
