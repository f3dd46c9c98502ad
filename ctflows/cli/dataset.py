"""What ``--data NAME|FILE`` means: a built-in toy density, or a ``.csv``/``.npy`` file split 80/20 into train and test."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ctflows.data import ToyDensity, get_density, load_array
from ctflows.errors import DataError
from ctflows.grid import Bounds

TEST_FRACTION = 0.2
MIN_ROWS = 10


@dataclass
class Dataset:
    """Training and test data for one command.

    Attributes:
        name: the density's name or the file's path, as given.
        dim: D, the number of features.
        train: a density (fresh samples every step) or a Tensor ``[N_train, D]``.
        test: the same density, or the held-out Tensor ``[N_test, D]``.
        density: the toy density when known (KL is then reported), else ``None``.
    """

    name: str
    dim: int
    train: Any
    test: Any
    density: ToyDensity | None

    def reference(self, n: int, seed: int) -> Tensor:
        """Up to ``n`` points of the data ``[n, D]``: exact samples, or the training rows (for plots and bounds)."""
        if self.density is not None:
            return self.density.sample(n, generator=torch.Generator().manual_seed(seed))
        return self.train[:n]


def is_file_argument(text: str) -> bool:
    """Whether ``--data`` names a file (a known extension or an existing path) rather than a built-in density."""
    return Path(text).suffix.lower() in (".csv", ".npy") or Path(text).exists()


def load_dataset(text: str, seed: int, *, split: bool = True) -> Dataset:
    """The data named by ``text``; a file is shuffled with ``seed`` and ``TEST_FRACTION`` of its rows held out.

    With ``split=False`` a file is used whole as test data (``ctflows evaluate`` on a test file).
    """
    if not is_file_argument(text):
        density = get_density(text)
        return Dataset(text, density.dim, density, density, density)
    x = load_array(text)
    if not split:
        return Dataset(text, x.shape[1], x, x, None)
    if x.shape[0] < MIN_ROWS:
        raise DataError(f"{text}: {x.shape[0]} rows is too few to hold out {TEST_FRACTION:.0%} for testing; give at least {MIN_ROWS}")
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(TEST_FRACTION * x.shape[0]))
    return Dataset(text, x.shape[1], x[order[n_test:]], x[order[:n_test]], None)


def plot_bounds(points: Tensor, margin: float = 0.15) -> Bounds:
    """A square view around ``points [N, 2]``: their 0.5–99.5% quantile box, widened by ``margin`` each side."""
    low = torch.quantile(points.double(), 0.005, dim=0)
    high = torch.quantile(points.double(), 0.995, dim=0)
    centre, half = (low + high) / 2, float((high - low).max()) / 2 * (1 + 2 * margin)
    half = half if half > 0 else 1.0
    return (float(centre[0]) - half, float(centre[0]) + half, float(centre[1]) - half, float(centre[1]) + half)
