"""The CLI's figures show what their titles say: training vs held-out rows, the digits at their gray level, in order."""
import numpy as np
import pytest
import torch

from ctflows.cli.dataset import load_dataset
from ctflows.cli.figures import MOSAIC, _mosaic, _with_base, truth_panels
from ctflows.viz.density import plt


def _counts(panel):
    """The 2-D histogram a sample panel draws: counts [bins_y, bins_x], rows in y."""
    fig, ax = plt.subplots()
    try:
        panel[1](ax)
        return np.asarray(ax.collections[0].get_array()).reshape(-1)
    finally:
        plt.close(fig)


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
