"""An exponential moving average (EMA) of a model's trainable parameters, to evaluate and return:

    θ̄ ← β · θ̄ + (1 − β) · θ      after every applied optimizer step, starting from θ̄ = θ

Averaging the iterates cancels much of the step-to-step noise of stochastic training (Polyak & Juditsky,
1992); models trained by regression onto noisy targets, flow matching among them, are usually evaluated
with such an average (Song et al., 2021). The update itself is torch's ``get_ema_multi_avg_fn``.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ctflows.errors import CheckpointError, ConfigurationError


def check_decay(decay: float) -> float:
    """``decay`` as a float in (0, 1), else a ConfigurationError that says what the number means."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (0 < decay < 1) or not math.isfinite(decay):
        raise ConfigurationError(
            f"fit: ema_decay must be a number strictly between 0 and 1 (the weight kept by the average at each "
            f"step; 0.99 averages over roughly the last 100 steps), got {decay!r}"
        )
    return float(decay)


class ParameterAverage:
    """The running average θ̄ of ``params`` (tensors updated in place by an optimizer), β = ``decay``.

    ``update()`` after each optimizer step; ``applied()`` puts θ̄ into the parameters for a while (to
    evaluate or save), ``swap()`` exchanges θ and θ̄ for good.
    """

    def __init__(self, params: Iterable[Tensor], decay: float) -> None:
        self.decay = check_decay(decay)
        self.params = list(params)
        self.averaged = [p.detach().clone() for p in self.params]
        self._lerp = get_ema_multi_avg_fn(self.decay)

    def update(self) -> None:
        """θ̄ ← β θ̄ + (1 − β) θ for the parameters' current values."""
        self._lerp(self.averaged, [p.detach() for p in self.params], None)

    def swap(self) -> None:
        """Exchange the parameters' values with the averages (done twice, it restores both)."""
        with torch.no_grad():
            for param, average in zip(self.params, self.averaged):
                held = param.detach().clone()
                param.copy_(average)
                average.copy_(held)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The parameters hold θ̄ inside the block and their own values again after it."""
        self.swap()
        try:
            yield
        finally:
            self.swap()

    def state_dict(self) -> dict:
        return {"decay": self.decay, "averaged": [a.clone() for a in self.averaged]}

    def load_state_dict(self, state: dict) -> None:
        """Restore saved averages; they must belong to parameters of the same shapes."""
        saved = state["averaged"]
        shapes = [tuple(a.shape) for a in self.averaged]
        if [tuple(a.shape) for a in saved] != shapes:
            raise CheckpointError(
                "resume: the saved parameter averages do not match this model's parameters "
                f"({len(saved)} saved tensors, {len(shapes)} parameters); resume with the model that wrote them"
            )
        with torch.no_grad():
            for average, value in zip(self.averaged, saved):
                average.copy_(value)
