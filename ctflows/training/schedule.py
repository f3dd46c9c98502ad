"""Learning-rate schedules: linear warm-up, then constant or cosine decay to zero.

    factor(s) = (s + 1) / W                          for s < W          (warm-up over W steps)
    factor(s) = ½ (1 + cos(π (s − W) / (S − W)))     for W ≤ s < S     ("cosine", Loshchilov & Hutter 2017)

Step ``s`` counts from 0; ``S`` is the total number of steps; the learning rate is ``lr · factor(s)``.
"""
from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ctflows.errors import ConfigurationError

SCHEDULES = ("cosine", "constant")


def lr_factor(step: int, *, total: int, warmup: int = 0, kind: str = "cosine") -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps(warmup: int | float, total: int) -> int:
    """Warm-up length in steps: an int is a step count, a float in [0, 1) a fraction of ``total``."""
    if isinstance(warmup, float) and 0.0 <= warmup < 1.0:
        return int(warmup * total)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < total:
        raise ConfigurationError(
            f"warmup must be an int in [0, steps={total}) or a fraction in [0, 1), got {warmup!r}"
        )
    return warmup


def check_schedule(kind: str, total: int, warmup: int | float) -> None:
    """Raise :class:`ConfigurationError` unless ``kind`` is known and ``warmup`` fits in ``total`` steps."""
    if kind not in SCHEDULES:
        raise ConfigurationError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
    warmup_steps(warmup, total)


def make_scheduler(optimizer: Optimizer, kind: str, *, total: int, warmup: int | float = 0) -> LambdaLR:
    """A scheduler stepping ``optimizer``'s learning rate by :func:`lr_factor`, once per training step."""
    check_schedule(kind, total, warmup)
    return LambdaLR(optimizer, partial(lr_factor, total=total, warmup=warmup_steps(warmup, total), kind=kind))
