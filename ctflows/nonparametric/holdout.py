"""Held-out data for the fitting procedures: the split, the points pushed so far, and the stopping rule.

Both fitted models grow one step at a time on the training part and watch the held-out mean
log-likelihood L_val = mean[log|det J(x)| + log N(φ(x); 0, I)]; growth stops after ``patience`` steps that
do not raise the best L_val by more than ``min_improvement``, and the model is cut back to the best length
(early stopping on a validation set, e.g. Prechelt 1998).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.core.counts import positive_count, real_setting
from ctflows.core.span import check_spans_space
from ctflows.core.transform import Transform
from ctflows.core.validation import check_generator
from ctflows.errors import DataError
from ctflows.nonparametric.checks import check_data

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
MAX_REPEATED_FRACTION = 0.01  # exact repeats allowed (float32 samples of a continuous density rarely collide)


def gaussian_log_likelihood(z: Tensor, logdet: Tensor) -> Tensor:
    """Per-point log N(z; 0, I) + log|det|: ``(z [N, D], [N]) -> [N]``."""
    return logdet - 0.5 * z.square().sum(dim=1) - z.shape[1] * _HALF_LOG_2PI


def split(
    data: Tensor, validation_fraction: float, generator: torch.Generator | None, *, owner: str
) -> tuple[Tensor, Tensor]:
    """Shuffle ``data [N, D]`` and cut it into ``(train, validation)``; the validation part has ≥ 1 point.

    Raises :class:`InputError` for ``data`` that is not a finite float32/float64 ``[N, D]`` tensor
    (:func:`check_data`), :class:`ConfigurationError` for a ``validation_fraction`` outside (0, 1) or a
    ``generator`` that is not a CPU ``torch.Generator``, and :class:`DataError` when too few points are left
    to fit (fewer than D + 2 for training), more than 1% of the points repeat another one exactly, or the points
    or the training part of them lie on a hyperplane (:func:`check_spans_space`).
    """
    check_data(owner, data)
    check_generator(owner, generator, torch.device("cpu"))  # the split, centres and rotations are drawn on the CPU
    validation_fraction = real_setting(owner, "validation_fraction", validation_fraction, "a number in (0, 1)",
                                       lambda v: 0 < v < 1)
    n = data.shape[0]
    n_val = max(1, round(validation_fraction * n))
    if n - n_val < data.shape[1] + 2:
        raise DataError(
            f"{owner}: {n} points leave {n - n_val} for training after holding out {n_val}; "
            f"pass at least {data.shape[1] + 2 + n_val} points (a few hundred give a useful fit)"
        )
    repeats = n - torch.unique(data, dim=0).shape[0]
    if repeats > MAX_REPEATED_FRACTION * n:
        # Copies of a point land on both sides of the split, so the held-out score rewards spikes on them.
        raise DataError(
            f"{owner}: {repeats} of {n} points repeat another point exactly; a density has no such ties, and the "
            "held-out likelihood would reward spikes on them. For rounded or discrete data add uniform noise of "
            "one rounding step (dequantization); otherwise drop the duplicates"
        )
    check_spans_space(owner, data)
    order = torch.randperm(n, generator=generator).to(data.device)
    train = data[order[n_val:]]
    # The training points may lie on a hyperplane where all of them do not: the few off it all held out.
    check_spans_space(f"{owner} (its {n - n_val} training points)", train)
    return train, data[order[:n_val]]


class Pushed:
    """Training and held-out points pushed through the layers fitted so far, with their summed log-dets."""

    def __init__(self, train: Tensor, validation: Tensor) -> None:
        self.train, self.validation = train.detach(), validation.detach()
        self.train_logdet = train.new_zeros(train.shape[0])
        self.validation_logdet = validation.new_zeros(validation.shape[0])

    @torch.no_grad()
    def push(self, layer: Transform) -> None:
        """Apply ``layer`` to both sets and add its log-det."""
        self.train, step = layer._forward(self.train, None)
        self.train_logdet = self.train_logdet + step
        self.validation, step = layer._forward(self.validation, None)
        self.validation_logdet = self.validation_logdet + step

    def log_likelihoods(self) -> tuple[float, float]:
        """Mean log-likelihood ``(train, validation)`` of the model so far, nats per point."""
        train = gaussian_log_likelihood(self.train, self.train_logdet).mean()
        validation = gaussian_log_likelihood(self.validation, self.validation_logdet).mean()
        return float(train), float(validation)


class Patience:
    """Tracks the best held-out value and says when ``patience`` steps have passed without beating it."""

    def __init__(
        self, patience: int, initial: float = -math.inf, min_improvement: float = 0.0, *, owner: str = "Patience"
    ) -> None:
        self.patience, self.min_improvement = positive_count(owner, "patience", patience), min_improvement
        self.best, self.best_step, self.step = initial, 0, 0  # step 0: the model before any addition

    def update(self, value: float) -> bool:
        """Record the value after one more step; return True when fitting should stop."""
        self.step += 1
        if value > self.best + self.min_improvement:
            self.best, self.best_step = value, self.step
        return self.step - self.best_step >= self.patience
