"""Plotting with arguments a user gets wrong: a ctflows error naming the function, the argument and the fix, raised
before a figure is drawn or a file written (not numpy's IndexError, matplotlib's ValueError or an empty picture)."""
import math

import numpy as np
import pytest
import torch

import ctflows
from ctflows.errors import ConfigurationError, InputError
from ctflows.viz import (
    cnf_density_frames, density_animation, density_panel, flow_paths, lines_panel, loss_curves, sample_panel,
    save_figure, side_by_side, trajectory_panel,
)
from ctflows.viz.figure import plt

B = (-2.0, 2.0, -2.0, 2.0)


@pytest.fixture(scope="module")
def cnf2():
    return ctflows.cnf(2, hidden=(4,)).eval()


def _normal(x):
    return -0.5 * (x ** 2).sum(dim=1)


def _frames(k=3):
    return torch.linspace(0, 1, k), torch.rand(k, 4, 4)


MAKERS = {  # each plotting function that takes bounds, called with otherwise good arguments
    "density_panel": lambda b, cnf: density_panel("t", _normal, b, n=4),
    "sample_panel": lambda b, cnf: sample_panel("t", torch.randn(20, 2), b, bins=4),
    "trajectory_panel": lambda b, cnf: trajectory_panel("t", torch.randn(3, 5, 2), b),
    "cnf_density_frames": lambda b, cnf: cnf_density_frames(cnf, b, frames=2, n=2),
    "density_animation": lambda b, cnf: density_animation(*_frames(), b, "unused.gif"),
}


@pytest.mark.parametrize("owner", MAKERS)
@pytest.mark.parametrize("bounds, message", [
    ((2.0, -2.0, -2.0, 2.0), r"x_min < x_max .*put each minimum before its maximum"),  # silently mirrored before
    ((float("nan"), 2.0, -2.0, 2.0), r"each entry of bounds .* must be a finite number, got nan"),
    ((-math.inf, 2.0, -2.0, 2.0), r"must be a finite number, got -inf"),
    ((-2.0, 2.0, -2.0), r"bounds must be four numbers \(x_min, x_max, y_min, y_max\), got \(-2.0, 2.0, -2.0\)"),
    ("0123", r"bounds must be four numbers .*got '0123'"),  # four characters are not four numbers
])
def test_bad_bounds_are_refused_naming_the_function(owner, bounds, message, cnf2, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=rf"^{owner}: .*{message}"):
        MAKERS[owner](bounds, cnf2)
    assert not list(tmp_path.iterdir())  # no animation begun


@pytest.mark.parametrize("call, message", [
    (lambda cnf: density_panel("t", _normal, B, n=0), r"density_panel: n must be an int >= 1, got 0"),
    (lambda cnf: density_panel("t", _normal, B, n=10.0), r"density_panel: n must be an int >= 1, got 10.0"),
    (lambda cnf: sample_panel("t", torch.randn(9, 2), B, bins=0), r"sample_panel: bins must be an int >= 1, got 0"),
    (lambda cnf: sample_panel("t", torch.randn(9, 2), B, bins=True), r"sample_panel: bins must be an int >= 1, got True"),
    (lambda cnf: side_by_side([("t", lambda ax: None)], "x.png", columns=0), r"side_by_side: columns must be an int >= 1"),
    (lambda cnf: lines_panel("t", {"a": [1.0]}, xlabel="", ylabel="", smooth=2.5), r"lines_panel: smooth must be an int >= 1"),
    (lambda cnf: flow_paths(cnf, torch.randn(4, 2), cnf_steps=0), r"flow_paths: cnf_steps must be an int >= 1, got 0"),
    (lambda cnf: cnf_density_frames(cnf, B, frames=0, n=2), r"cnf_density_frames: frames must be an int >= 2 .*got 0"),
    (lambda cnf: cnf_density_frames(cnf, B, frames=1, n=2), r"cnf_density_frames: frames must be an int >= 2 .*got 1"),
    (lambda cnf: cnf_density_frames(cnf, B, frames=2, n=0), r"cnf_density_frames: n must be an int >= 1, got 0"),
    (lambda cnf: density_animation(*_frames(), B, "a.gif", fps=0), r"density_animation: fps must be .* > 0"),
    (lambda cnf: save_figure(plt.figure(), "a.png", dpi=0), r"save_figure: dpi must be a number > 0"),
])
def test_bad_counts_and_settings_are_refused(call, message, cnf2, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=message):
        call(cnf2)
    plt.close("all")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("call, message", [
    (lambda cnf: sample_panel("t", torch.randn(9, 3), B), r"sample_panel: samples must have shape \[N, 2\], got \[9, 3\]; .*samples\[\.\.\., :2\]"),
    (lambda cnf: sample_panel("t", torch.randn(9), B), r"sample_panel: samples must have shape \[N, 2\], got \[9\]"),
    (lambda cnf: sample_panel("t", torch.empty(0, 2), B), r"sample_panel: samples is empty .*nothing to draw"),
    (lambda cnf: sample_panel("t", np.zeros((9, 2)), B), r"sample_panel: samples must be a torch.Tensor .*got ndarray; .*torch.as_tensor"),
    (lambda cnf: trajectory_panel("t", torch.randn(9, 2)), r"trajectory_panel: paths must have shape \[K, N, 2\], got \[9, 2\]"),
    (lambda cnf: trajectory_panel("t", torch.randn(0, 4, 2)), r"trajectory_panel: paths is empty"),
    (lambda cnf: flow_paths(cnf, torch.randn(4, 3)), r"flow_paths: x must have shape \[batch, 2\], got \[4, 3\]"),
    (lambda cnf: flow_paths(cnf, np.zeros((4, 2))), r"flow_paths: x must be a torch.Tensor"),
    (lambda cnf: density_panel("t", lambda x: x, B, n=3)[1](plt.gca()), r"density_panel: log_prob must map points \[N, 2\] to log-densities \[N\], .*returned \[9, 2\]"),
    (lambda cnf: density_panel("t", cnf, B, n=3)[1](plt.gca()), r"density_panel: log_prob .* returned a tuple; .*not the flow itself"),
])
def test_points_and_functions_of_the_wrong_kind_are_refused(call, message, cnf2):
    with pytest.raises(InputError, match=message):
        call(cnf2)
    plt.close("all")


@pytest.mark.parametrize("log_prob", [torch.zeros(4), None], ids=["tensor", "none"])
def test_a_log_prob_that_is_not_a_function_is_refused(log_prob):
    """Values instead of a function (say log-densities already computed): a ConfigurationError, not a TypeError when drawn."""
    with pytest.raises(ConfigurationError, match=r"^density_panel: log_prob must be a function \[N, 2\] -> \[N\]"):
        density_panel("t", log_prob, B)


def test_a_model_in_three_dimensions_is_refused_by_the_2d_plots():
    with pytest.raises(ConfigurationError, match=r"density_panel: log_prob belongs to a model of event shape \(3,\)"):
        density_panel("t", ctflows.realnvp(3, blocks=1, hidden=(4,), seed=0).log_prob, B)
    with pytest.raises(ConfigurationError, match=r"cnf_density_frames: flow belongs to a model of event shape \(3,\)"):
        cnf_density_frames(ctflows.cnf(3, hidden=(4,)), B, frames=2, n=2)


@pytest.mark.parametrize("panels, message", [
    ([], r"panels must be a non-empty list"),
    (("t", lambda ax: None), r"got a single \(title, draw\) panel; wrap it: \[panel\]"),
    ([("t",)], r"panels\[0\] must be a \(title, draw\) pair"),
    ([("t", lambda ax: None, lambda ax: None)], r"panels\[0\] must be a \(title, draw\) pair"),
])
def test_side_by_side_refuses_panels_it_cannot_draw(panels, message, tmp_path):
    with pytest.raises(InputError, match="side_by_side: .*" + message):
        side_by_side(panels, tmp_path / "f.png")


@pytest.mark.parametrize("name", ["out/f.xyz", "out/f", "out"])
def test_an_unknown_or_missing_suffix_is_refused_before_any_folder_is_made(name, tmp_path):
    panel = sample_panel("t", torch.randn(9, 2), B, bins=3)
    with pytest.raises(ConfigurationError, match=r"side_by_side: path .* has (suffix \.xyz|no suffix); .*\.png"):
        side_by_side([panel], tmp_path / name)  # without a suffix matplotlib wrote f.png and returned f
    with pytest.raises(ConfigurationError, match=r"loss_curves: path .* \.png"):
        loss_curves({"a": [1.0]}, tmp_path / name)
    with pytest.raises(ConfigurationError, match=r"save_figure: path .* \.png"):
        save_figure(plt.figure(), tmp_path / name)
    plt.close("all")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("path", [None, b"f.png", 3], ids=["none", "bytes", "int"])
def test_a_path_that_is_not_a_file_name_is_refused(path, tmp_path, monkeypatch):
    """A str or an os.PathLike only: Path() would raise a TypeError on bytes or None, after the figure was made."""
    monkeypatch.chdir(tmp_path)
    fig = plt.figure()
    with pytest.raises(ConfigurationError, match=rf"^save_figure: path must be a str or os.PathLike such as .figure.png., got {type(path).__name__}"):
        save_figure(fig, path)
    plt.close(fig)  # still the caller's, to save again under a good name
    with pytest.raises(ConfigurationError, match=r"^loss_curves: path must be a str or os.PathLike"):
        loss_curves({"a": [1.0]}, path)
    assert plt.get_fignums() == [] and not list(tmp_path.iterdir())


def test_save_figure_refuses_axes_for_a_figure(tmp_path):
    fig, ax = plt.subplots()
    with pytest.raises(InputError, match=r"save_figure: fig must be a matplotlib Figure, got Axes; pass ax.figure"):
        save_figure(ax, tmp_path / "f.png")
    plt.close(fig)


@pytest.mark.parametrize("plot", [
    lambda curves, tmp: loss_curves(curves, tmp / "l.png"),
    lambda curves, tmp: lines_panel("t", curves, xlabel="", ylabel=""),
], ids=["loss_curves", "lines_panel"])
@pytest.mark.parametrize("curves, message", [
    ({}, r"curves is empty, so there is nothing to draw"),  # an empty figure before
    ([1.0, 2.0], r"curves must be a dict of name -> per-step values.*got list"),
    ({"a": [[1.0, 2.0]]}, r"curves\['a'\] must be a flat sequence of numbers"),
    ({"a": 3.0}, r"curves\['a'\] must be a flat sequence of numbers, .*got 3.0"),
    ({"a": "123"}, r"curves\['a'\] must be a flat sequence of numbers, .*got '123'"),  # not the steps 1, 2, 3
])
def test_series_that_are_not_named_lists_of_numbers_are_refused(plot, curves, message, tmp_path):
    with pytest.raises(InputError, match=message):
        plot(curves, tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("times, densities, path, message", [
    (torch.linspace(0, 1, 3), torch.rand(2, 4, 4), "a.gif", r"times has 3 entries but densities has 2 frames"),
    (torch.linspace(0, 1, 2), torch.rand(3, 4, 4), "a.gif", r"times has 2 entries but densities has 3 frames"),
    (torch.linspace(0, 1, 3), torch.rand(3, 16), "a.gif", r"densities must have shape \[K, n, m\], got \[3, 16\]"),
    (np.linspace(0, 1, 3), np.random.rand(3, 4, 4), "a.gif", r"densities must be a torch.Tensor .*got ndarray"),
    (torch.linspace(0, 1, 3), -torch.rand(3, 4, 4), "a.gif", r"densities must be >= 0, .*for log-densities pass their exp\(\)"),
    (torch.linspace(0, 1, 2), torch.tensor([[[0.5, -1e-6]], [[0.5, 0.5]]]), "a.gif", r"densities must be >= 0, got a minimum of -1e-06"),
    (torch.linspace(0, 1, 3), torch.rand(3, 4, 4), "a.mp4", r"path .* has suffix \.mp4; .*\.gif"),
    # .png is a format matplotlib writes, but not an animation: only .gif is offered
    (torch.linspace(0, 1, 3), torch.rand(3, 4, 4), "a.png", r"path .* has suffix \.png; give a file name ending in one of: \.gif$"),
])
def test_density_animation_refuses_frames_it_cannot_write_and_leaves_no_file(times, densities, path, message, tmp_path):
    # A mismatch used to fail halfway through writing, leaving a GIF of the frames drawn so far.
    kind = InputError if path.endswith(".gif") else ConfigurationError
    with pytest.raises(kind, match="density_animation: " + message):
        density_animation(times, densities, B, tmp_path / path)
    assert not list(tmp_path.iterdir())


def test_valid_uses_still_draw(tmp_path):
    # Bounds as a tensor, a series with NaN (a diverged run), an empty one (a resumed run with no step left),
    # None gaps, a tensor of losses and a path into a folder not yet made are all fine.
    bounds = torch.tensor(B)
    assert side_by_side([density_panel("t", _normal, bounds, n=4)], tmp_path / "new" / "d.png").exists()
    curves = {"nan": [1.0, float("nan"), 0.5], "empty": [], "gaps": [1.0, None, 2.0], "tensor": torch.tensor([3.0, 2.0])}
    assert loss_curves(curves, tmp_path / "l.png").exists()
    times, frames = _frames()
    frames[1, 0, 0] = float("nan")
    assert density_animation(times, frames.requires_grad_(), B, tmp_path / "a.gif").exists()


def test_losses_kept_with_their_graph_are_drawn_as_their_values(tmp_path):
    """losses.append(loss) keeps each 0-d loss with its graph: the series is its numbers, not numpy's RuntimeError
    "Can't call numpy() on Tensor that requires grad"; a whole tensor that requires grad likewise."""
    w = torch.ones(1, requires_grad=True)
    kept = [(w * k).sum() for k in (3.0, 2.0, 1.0)]
    title, draw = lines_panel("t", {"kept": kept, "whole": torch.tensor([3.0, 2.0, 1.0], requires_grad=True)},
                              xlabel="step", ylabel="loss")
    fig, ax = plt.subplots()
    draw(ax)
    assert [list(line.get_ydata()) for line in ax.get_lines()] == [[3.0, 2.0, 1.0]] * 2
    plt.close(fig)
    assert loss_curves({"kept": kept}, tmp_path / "l.png").exists()


def test_samples_with_nan_rows_are_drawn_with_their_count_on_the_panel():
    # A row with a single NaN or infinite coordinate cannot be binned either: it counts.
    bad = torch.tensor([[math.nan, math.nan], [math.nan, 0.5], [0.5, math.inf], [-math.inf, math.nan]])
    samples = torch.cat([torch.randn(20, 2), bad])
    fig, ax = plt.subplots()
    sample_panel("t", samples, B, bins=4)[1](ax)
    assert [text.get_text() for text in ax.texts] == ["4 of 24 samples NaN/Inf"]
    plt.close(fig)


def test_the_hint_to_pick_two_coordinates_is_only_for_wider_points():
    """[N, 1] points are not points of a wider model: the message names the shape without the [..., :2] hint."""
    with pytest.raises(InputError, match=r"samples must have shape \[N, 2\], got \[9, 1\]$"):
        sample_panel("t", torch.randn(9, 1), B)


def test_frame_counts_may_be_numpy_or_0d_torch_integers(cnf2):
    """frames is a count like n: np.int64(2) and torch.tensor(2) give what 2 gives (both were refused)."""
    times, frames = cnf_density_frames(cnf2, B, frames=2, n=2)
    for count in (np.int64(2), torch.tensor(2)):
        again_times, again = cnf_density_frames(cnf2, B, frames=count, n=2)
        assert torch.equal(again_times, times) and torch.equal(again, frames)
    with pytest.raises(ConfigurationError, match=r"frames must be an int >= 2 .*got True"):
        cnf_density_frames(cnf2, B, frames=True, n=2)
