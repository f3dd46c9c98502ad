"""Where the plots put things: densities upright (x across, y up), histograms over the given bounds, every panel
drawn, the GIF's frames in order with their own scale and time, the loss curve's steps and y-range."""
import numpy as np
import pytest
import torch

import ctflows.viz.animation as animation_module
import ctflows.viz.loss as loss_module
from ctflows.errors import ConfigurationError
from ctflows.viz import density_animation, density_panel, loss_curves, sample_panel, side_by_side, trajectory_panel
from ctflows.viz.checks import check_bounds
from ctflows.viz.density import plt


def _rendered(draw, size=2.0):
    """The panel rendered on an axes filling a square figure: RGB pixels [H, W, 3], row 0 at the top."""
    fig = plt.figure(figsize=(size, size), dpi=50)
    ax = fig.add_axes((0, 0, 1, 1))
    try:
        draw(ax)
        ax.set_axis_off()
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    finally:
        plt.close(fig)


def test_density_is_drawn_with_x_across_and_y_up():
    # All the mass in the lower right (x > 0, y < 0) must light up the lower-right quarter of the picture.
    def log_prob(x):
        return torch.where((x[:, 0] > 0) & (x[:, 1] < 0), 0.0, -30.0)

    _, draw = density_panel("d", log_prob, (-1.0, 1.0, -1.0, 1.0), n=20)
    pixels = _rendered(draw).sum(axis=2)
    h, w = pixels.shape
    quarters = {"upper left": pixels[: h // 2, : w // 2], "upper right": pixels[: h // 2, w // 2:],
                "lower left": pixels[h // 2:, : w // 2], "lower right": pixels[h // 2:, w // 2:]}
    brightest = max(quarters, key=lambda q: quarters[q].mean())
    assert brightest == "lower right", {q: float(v.mean()) for q, v in quarters.items()}


def test_sample_histogram_bins_x_across_and_y_up_over_the_given_bounds():
    x = torch.tensor(np.random.default_rng(0).uniform([0, -1], [4, 1], size=(500, 2)), dtype=torch.float32)
    bounds = (0.0, 4.0, -1.0, 1.0)  # not square: swapped ranges or axes show
    _, draw = sample_panel("s", x, bounds, bins=8)
    fig, ax = plt.subplots()
    draw(ax)
    mesh = ax.collections[0]
    counts = np.asarray(mesh.get_array()).reshape(8, 8)  # rows in y, columns in x
    plt.close(fig)
    expected, _, _ = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=8, range=[(0, 4), (-1, 1)])
    np.testing.assert_array_equal(counts, expected.T)
    assert counts.sum() == 500


def test_trajectory_view_is_the_given_bounds():
    _, draw = trajectory_panel("p", torch.randn(3, 5, 2), (-1.0, 4.0, -2.0, 0.5))
    fig, ax = plt.subplots()
    draw(ax)
    assert ax.get_xlim() == (-1.0, 4.0) and ax.get_ylim() == (-2.0, 0.5)
    plt.close(fig)


@pytest.mark.parametrize("count, columns", [(4, 3), (5, 2), (7, None)])
def test_side_by_side_draws_every_panel(count, columns, tmp_path):
    drawn = []
    panels = [(f"p{i}", lambda ax, i=i: drawn.append(i)) for i in range(count)]
    side_by_side(panels, tmp_path / "f.png", columns=columns)
    assert drawn == list(range(count))


def test_reversed_y_bounds_are_refused_like_reversed_x_bounds():
    with pytest.raises(ConfigurationError, match="y_min < y_max"):
        check_bounds("f", (-1.0, 1.0, 2.0, -2.0))
    with pytest.raises(ConfigurationError, match="x_min < x_max"):
        check_bounds("f", (1.0, 1.0, -1.0, 1.0))  # an empty view


def test_density_animation_shows_each_frame_in_order_with_its_time_and_own_scale(tmp_path, monkeypatch):
    shows = []

    class Recording(animation_module.FuncAnimation):
        def __init__(self, fig, func, frames=None, **kwargs):
            shows.append((func, frames))
            super().__init__(fig, func, frames=frames, **kwargs)

    monkeypatch.setattr(animation_module, "FuncAnimation", Recording)
    times = torch.tensor([0.0, 0.25, 0.5, 1.0])
    densities = torch.stack([torch.arange(16.0).reshape(4, 4) * (k + 1) for k in range(4)])  # frame k peaks at 15(k + 1)
    density_animation(times, densities, (-1, 1, -1, 1), tmp_path / "a.gif", title="cnf")
    (show, count), = shows
    order = [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]  # the two ends are held three extra frames
    assert count == len(order)
    for k, index in enumerate(order):
        image, label = show(k)
        np.testing.assert_array_equal(np.asarray(image.get_array()), densities[index].numpy())
        assert image.get_clim() == (0.0, 15.0 * (index + 1))
        end = "  (data)" if index == 0 else "  (base)" if index == 3 else ""
        assert label.get_text() == f"cnf  t = {float(times[index]):.2f}{end}"


def test_loss_curve_counts_steps_from_1_and_clips_to_the_1st_99th_percentile(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(loss_module, "save_figure", lambda fig, path: figures.append(fig) or path)
    losses = list(np.linspace(10.0, 0.0, 200) ** 2)
    loss_curves({"a": losses}, tmp_path / "loss.png")
    (fig,) = figures
    ax = fig.axes[0]
    raw, smooth = ax.get_lines()
    np.testing.assert_array_equal(raw.get_xdata(), np.arange(1, 201))
    low, high = np.percentile(smooth.get_ydata(), [1, 99])
    pad = 0.1 * (high - low) + 1e-3
    assert ax.get_ylim() == pytest.approx((low - pad, high + pad))
    plt.close(fig)
