"""Where the plots put things: densities upright (x across, y up), histograms over the given bounds, every panel
drawn, the GIF's frames in order with their own scale and time, the loss curve's steps and y-range."""
import numpy as np
import pytest
import torch

import ctflows
import ctflows.viz.animation as animation_module
import ctflows.viz.loss as loss_module
from ctflows.errors import ConfigurationError
from ctflows.grid import check_bounds, grid_2d
from ctflows.viz import density_animation, density_panel, loss_curves, sample_panel, side_by_side, trajectory_panel
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


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_models_log_prob_is_drawn_on_a_grid_in_the_models_dtype(dtype):
    """flow.log_prob of a float64 (or bfloat16) model: the grid is made in the model's dtype, and the image holds
    exp(log_prob) at the cell centres (a float32 grid was refused by the model halfway through the figure)."""
    flow = ctflows.realnvp(2, blocks=1, hidden=(4,), seed=0).to(dtype).eval()
    bounds = (-2.0, 2.0, -1.0, 3.0)
    _, draw = density_panel("d", flow.log_prob, bounds, n=5)
    fig, ax = plt.subplots()
    draw(ax)
    image = np.asarray(ax.images[0].get_array())
    plt.close(fig)
    with torch.no_grad():
        expected = torch.exp(flow.log_prob(grid_2d(bounds, 5, dtype=dtype)[0])).reshape(5, 5).double().numpy()
    np.testing.assert_array_equal(image, expected)


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


def test_trajectories_are_coloured_by_where_they_start_and_marked_at_both_ends():
    """Paths 0 and 1 start on the same ray and end apart, path 2 starts opposite: colour follows the start alone;
    the data marks (·) sit on the first row of the paths, the base marks (×) on the last."""
    paths = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [-1.0, -1.0]],
                          [[1.5, 0.0], [0.0, 2.5], [-2.0, 0.0]],
                          [[3.0, -1.0], [-2.0, 3.0], [-3.0, 1.0]]])
    _, draw = trajectory_panel("p", paths)
    fig, ax = plt.subplots()
    draw(ax)
    colours = [tuple(line.get_color()) for line in ax.get_lines()]
    assert colours[0] == colours[1] != colours[2]
    marks = {c.get_label(): c.get_offsets() for c in ax.collections}
    np.testing.assert_array_equal(marks["data"], paths[0].numpy())
    np.testing.assert_array_equal(marks["base"], paths[-1].numpy())
    plt.close(fig)


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
    for empty in ((1.0, 1.0, -1.0, 1.0), (-1.0, 1.0, 2.0, 2.0)):  # an empty view, in x or in y
        with pytest.raises(ConfigurationError, match="x_min < x_max and y_min < y_max"):
            check_bounds("f", empty)


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


@pytest.mark.parametrize("frame", [torch.zeros(4, 4), torch.full((4, 4), float("nan"))], ids=["zeros", "nan"])
def test_a_frame_with_no_positive_finite_density_gets_a_unit_colour_scale(frame, tmp_path, monkeypatch):
    """A frame of zeros (or of NaN, a diverged solve) has no peak to scale to: (0, 1), not the empty range (0, 0)."""
    shows = []

    class Recording(animation_module.FuncAnimation):
        def __init__(self, fig, func, frames=None, **kwargs):
            shows.append(func)
            super().__init__(fig, func, frames=frames, **kwargs)

    monkeypatch.setattr(animation_module, "FuncAnimation", Recording)
    densities = torch.stack([frame, torch.ones(4, 4)])
    density_animation(torch.tensor([0.0, 1.0]), densities, (-1, 1, -1, 1), tmp_path / "a.gif")
    image, _ = shows[0](0)  # the first shown frame is frame 0
    assert image.get_clim() == (0.0, 1.0)


def test_loss_curves_hide_the_axes_they_leave_empty(tmp_path, monkeypatch):
    """Five series fill two rows of four: the three axes without a series are switched off, the five are not."""
    figures = []
    monkeypatch.setattr(loss_module, "save_figure", lambda fig, path: figures.append(fig) or path)
    loss_curves({f"s{i}": [3.0, 2.0, 1.0] for i in range(5)}, tmp_path / "loss.png")
    (fig,) = figures
    assert [ax.axison for ax in fig.axes] == [True] * 5 + [False] * 3
    assert [ax.get_title() for ax in fig.axes[:5]] == [f"s{i}" for i in range(5)]
    plt.close(fig)



def test_bfloat16_points_and_frames_are_drawn_as_their_float32_values(tmp_path):
    """NumPy has no bfloat16: samples, paths and frames in it (a model trained in bfloat16) were a TypeError from
    .numpy(); they are drawn as the float32 numbers they equal."""
    x = torch.tensor(np.random.default_rng(1).uniform(-1, 1, size=(300, 2)), dtype=torch.bfloat16)
    _, draw = sample_panel("s", x, (-1.0, 1.0, -1.0, 1.0), bins=4)
    fig, ax = plt.subplots()
    draw(ax)
    counts = np.asarray(ax.collections[0].get_array()).reshape(4, 4)
    plt.close(fig)
    expected, _, _ = np.histogram2d(x[:, 0].float().numpy(), x[:, 1].float().numpy(), bins=4, range=[(-1, 1), (-1, 1)])
    np.testing.assert_array_equal(counts, expected.T)
    _, draw = trajectory_panel("p", x.reshape(3, 100, 2))
    fig, ax = plt.subplots()
    draw(ax)
    np.testing.assert_array_equal(ax.get_lines()[0].get_xydata(), x.reshape(3, 100, 2)[:, 0].float().numpy())
    plt.close(fig)
    frames = torch.rand(2, 4, 4).to(torch.bfloat16)
    assert density_animation(torch.tensor([0.0, 1.0], dtype=torch.bfloat16), frames, (-1, 1, -1, 1), tmp_path / "a.gif").exists()
