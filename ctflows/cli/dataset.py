"""What ``--data NAME|FILE`` means: a built-in toy density, the image data set ``digits``, or a
``.csv``/``.npy`` file split 80/20 into train and test."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ctflows.core.span import check_spans_space
from ctflows.data import ToyDensity, get_density, list_densities, load_array
from ctflows.data.images import DIGITS_LEVELS, load_digits
from ctflows.errors import DataError
from ctflows.grid import Bounds
from ctflows.image import DequantizedImages

TEST_FRACTION = 0.2
MIN_ROWS = 10
IMAGE_DATA = ("digits",)
DIGITS_TEST = 297  # the last 297 of the 1,797 digits are held out, as in examples/09_images.py
IMAGE_BATCH = 128


@dataclass
class Dataset:
    """Training and test data for one command.

    Attributes:
        name: the density's name or the file's path, as given.
        dim: D, the number of features (C·H·W for images).
        train: a density (fresh samples every step) or a Tensor ``[N_train, D]``.
        test: the same density, or the held-out Tensor ``[N_test, D]``.
        density: the toy density when known (KL is then reported), else ``None``.
        shape: one point's shape: ``(D,)`` for vectors, ``(C, H, W)`` for images.
        levels: for images, the gray levels L of the integer pixels (bits/dim are then reported), else ``None``;
            ``train`` is then a :class:`~ctflows.image.DequantizedImages` and ``test`` integer images ``[N, C, H, W]``.
    """

    name: str
    dim: int
    train: Any
    test: Any
    density: ToyDensity | None
    shape: tuple[int, ...] = ()
    levels: int | None = None

    def __post_init__(self) -> None:
        self.shape = self.shape or (self.dim,)

    @property
    def file_points(self) -> Tensor | None:
        """The training points ``[N_train, D]`` when they come from a file, else ``None`` (densities, images)."""
        return self.train if isinstance(self.train, Tensor) and self.levels is None else None

    @property
    def is_image(self) -> bool:
        """Whether the points are integer images (quality in bits/dim, image models only)."""
        return self.levels is not None

    def reference(self, n: int, seed: int) -> Tensor:
        """Up to ``n`` points of the data ``[n, D]``: exact samples, or the training rows (for 2-D plots and bounds)."""
        if self.density is not None:
            return self.density.sample(n, generator=torch.Generator().manual_seed(seed))
        return self.train[:n]


def is_file_argument(text: str) -> bool:
    """Whether ``--data`` names a file (a known extension or an existing file) rather than built-in data.

    A built-in name wins over a file or folder of that name (``--out two_moons`` makes one).
    """
    if text in list_densities() or text in IMAGE_DATA:
        return False
    return Path(text).suffix.lower() in (".csv", ".npy") or Path(text).is_file()


def load_dataset(text: str, seed: int, *, split: bool = True, image_batch: int | None = None) -> Dataset:
    """The data named by ``text``; a file is shuffled with ``seed`` and ``TEST_FRACTION`` of its rows held out.

    Images are batched here (``image_batch`` per step, default ``IMAGE_BATCH``), since their batches come
    from the data set, not ``fit``.

    With ``split=False`` a file is used whole as test data (``ctflows evaluate`` on a test file).

    Raises:
        DataError: a file that cannot be read, has too few rows to split, or whose rows (to be trained on) lie on
            a hyperplane (a constant column, or linearly dependent columns).
    """
    if text in IMAGE_DATA:
        return load_digits_dataset(seed, image_batch or IMAGE_BATCH)
    if not is_file_argument(text):
        density = get_density(text)
        return Dataset(text, density.dim, density, density, density)
    x = load_array(text)
    if not split:
        return Dataset(text, x.shape[1], x, x, None)
    if x.shape[0] < MIN_ROWS:
        raise DataError(f"{text}: too few rows ({x.shape[0]}) to hold out {TEST_FRACTION:.0%} for testing; give at least {MIN_ROWS}")
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(TEST_FRACTION * x.shape[0]))
    train, test = x[order[n_test:]], x[order[:n_test]]
    # Training on points in a hyperplane builds a spike on it: the likelihood grows without bound, and every
    # number the command reports with it. The training rows are checked: they may lie on one when the file does not.
    check_spans_space(text, train)
    return Dataset(text, x.shape[1], train, test, None)


def load_digits_dataset(seed: int, batch_size: int = IMAGE_BATCH) -> Dataset:
    """scikit-learn's 8×8 digits (values 0…16): the first 1,500 for training, freshly dequantized each pass
    (batches of ``batch_size`` shuffled with ``seed``), and the last ``DIGITS_TEST`` held out as integers."""
    images = load_digits()
    train, test = images[:-DIGITS_TEST], images[-DIGITS_TEST:]
    return Dataset("digits", test[0].numel(), DequantizedImages(train, DIGITS_LEVELS, batch_size, seed=seed), test,
                   density=None, shape=tuple(test.shape[1:]), levels=DIGITS_LEVELS)


def plot_bounds(points: Tensor, margin: float = 0.15) -> Bounds:
    """A square view around ``points [N, 2]``: their 0.5–99.5% quantile box, widened by ``margin`` each side."""
    low = torch.quantile(points.double(), 0.005, dim=0)
    high = torch.quantile(points.double(), 0.995, dim=0)
    centre, half = (low + high) / 2, float((high - low).max()) / 2 * (1 + 2 * margin)
    half = half if half > 0 else 1.0
    return (float(centre[0]) - half, float(centre[0]) + half, float(centre[1]) - half, float(centre[1]) + half)
