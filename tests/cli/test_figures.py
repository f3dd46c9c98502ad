"""The CLI's figures show what their titles say: training vs held-out rows, the digits at their gray level, in order."""
import numpy as np
import pytest
import torch

from ctflows.cli.dataset import load_dataset
from ctflows.cli import figures
from ctflows.cli.figures import MOSAIC, PATH_POINTS, _mosaic, _with_base, image_rows, model_panels, truth_panels
from ctflows.viz.density import plt
from training.fakes import affine_flow


def _drawn(panel, read):
    """``read(ax)`` after drawing ``panel`` on a fresh axes."""
    fig, ax = plt.subplots()
    try:
        panel[1](ax)
        return read(ax)
    finally:
        plt.close(fig)


def _counts(panel):
    """The 2-D histogram a sample panel draws: counts [bins_y, bins_x], rows in y."""
    return _drawn(panel, lambda ax: np.asarray(ax.collections[0].get_array()).reshape(-1))


def test_a_file_is_drawn_as_its_training_rows_and_its_held_out_rows(tmp_path):
    # Training rows sit left of x = 0 and held-out rows right of it, which a histogram of each tells apart.
    rows = np.random.default_rng(1).uniform(-1, 1, size=(100, 2)).astype(np.float32)
    np.savetxt(tmp_path / "d.csv", rows, delimiter=",")
    data = load_dataset(str(tmp_path / "d.csv"), seed=0)
    bounds = (-1.0, 1.0, -1.0, 1.0)
    (train_title, *_), (test_title, *_) = panels = truth_panels(data, bounds, data.reference(1000, 0), grid=20)[:2]
    assert (train_title, test_title) == ("training data", "held-out test data")
    train_counts, test_counts = _counts(panels[0]), _counts(panels[1])
    assert train_counts.size == test_counts.size == 10 * 10  # grid // 2 bins a side
    assert train_counts.sum() == len(data.train) == 80 and test_counts.sum() == len(data.test) == 20
    expected, _, _ = np.histogram2d(data.test[:, 0].numpy(), data.test[:, 1].numpy(), bins=10, range=[(-1, 1), (-1, 1)])
    np.testing.assert_array_equal(test_counts, expected.T.reshape(-1))


def test_a_models_row_draws_its_density_a_histogram_of_its_own_samples_and_its_map():
    """The samples panel counts the model's samples; the map starts from the data's first PATH_POINTS points and
    its view is widened to hold the base."""
    # The model's samples sit left of x = 0 and the data's reference points right of it.
    rng = np.random.default_rng(2)
    samples = torch.as_tensor(rng.uniform([-1, -1], [0, 1], size=(300, 2)), dtype=torch.float32)
    reference = torch.as_tensor(rng.uniform([0, -1], [1, 1], size=(PATH_POINTS + 50, 2)), dtype=torch.float32)
    bounds = (-1.0, 1.0, -1.0, 1.0)
    density, histogram, paths = model_panels("m", affine_flow(), samples, reference, bounds, grid=20)
    assert [density[0], histogram[0], paths[0]] == ["m: density", "m: samples", "m: map data → base"]
    expected, _, _ = np.histogram2d(samples[:, 0].numpy(), samples[:, 1].numpy(), bins=10, range=[(-1, 1), (-1, 1)])
    np.testing.assert_array_equal(_counts(histogram), expected.T.reshape(-1))
    starts, view = _drawn(paths, lambda ax: (ax.collections[0].get_offsets(), (*ax.get_xlim(), *ax.get_ylim())))
    np.testing.assert_array_equal(starts, reference[:PATH_POINTS].numpy())  # the "data" marks: each path's start
    assert view == _with_base(bounds)


def test_the_image_figure_draws_each_row_at_its_gray_levels_in_order(tmp_path, monkeypatch):
    """Held-out integer images are shown at (k + 1/2) / L, model samples as they are, on one 0-1 gray scale."""
    drawn = {}
    monkeypatch.setattr(figures, "side_by_side", lambda panels, path, **kwargs: drawn.update(panels) or path)
    held_out = torch.randint(0, 17, (40, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    samples = torch.rand(40, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    image_rows({"held-out": held_out, "model": samples}, 17, tmp_path / "f.png", "title")
    assert list(drawn) == ["held-out", "model"]
    for label, images in (("held-out", held_out), ("model", samples)):
        picture, limits = _drawn((label, drawn[label]), lambda ax: (ax.images[0].get_array(), ax.images[0].get_clim()))
        np.testing.assert_allclose(np.asarray(picture), _mosaic(images, 17).numpy())
        assert limits == (0, 1)
    assert (_mosaic(held_out, 17)[:3, :3] == (held_out[0, 0] + 0.5) / 17).all()  # the first image at its levels


def test_the_map_panel_widens_the_view_to_hold_the_base():
    assert _with_base((0.0, 1.0, -0.5, 0.5)) == (-3.5, 3.5, -3.5, 3.5)
    assert _with_base((-9.0, 1.0, -2.0, 12.0)) == (-9.0, 3.5, -3.5, 12.0)


def test_the_image_mosaic_puts_image_i_in_row_i_div_6_at_its_gray_level():
    lines, per_line = MOSAIC
    n = 8  # fewer than 36: the rest are blank cells
    images = torch.zeros(n, 1, 3, 4, dtype=torch.uint8)
    for i in range(n):
        images[i, 0, 1, 2] = i + 1  # one ink pixel per image, at (row 1, column 2), of level i + 1
    picture = _mosaic(images, levels=17)
    assert picture.shape == (lines * 4, per_line * 5)  # a blank pixel row and column after each image
    for i in range(lines * per_line):
        top, left = (i // per_line) * 4, (i % per_line) * 5
        cell = picture[top: top + 4, left: left + 5]
        if i < n:
            expected = torch.full((4, 5), 0.5 / 17)
            expected[1, 2] = (i + 1.5) / 17  # integer level k is shown at (k + 1/2) / L
            expected[3, :], expected[:, 4] = 0.0, 0.0  # the separating blank row and column
        else:
            expected = torch.zeros(4, 5)
        torch.testing.assert_close(cell, expected, msg=f"image {i}")


def test_model_samples_in_the_mosaic_are_shown_as_they_are_clipped_to_0_1():
    x = torch.tensor([-0.5, 0.25, 0.75, 1.5]).reshape(4, 1, 1, 1)
    picture = _mosaic(x, levels=17)
    torch.testing.assert_close(picture[0, [0, 2, 4, 6]], torch.tensor([0.0, 0.25, 0.75, 1.0]))


def test_a_density_is_drawn_with_its_samples_binned_like_every_other_histogram():
    data = load_dataset("two_moons", seed=0)
    reference = data.reference(500, 0)
    titles = [title for title, _ in truth_panels(data, (-2.0, 3.0, -2.0, 2.0), reference, grid=20)]
    assert titles == ["true density", "data samples", ""]
    counts = _counts(truth_panels(data, (-2.0, 3.0, -2.0, 2.0), reference, grid=20)[1])
    assert counts.size == 10 * 10  # grid // 2 bins a side (points outside the view are not counted)
