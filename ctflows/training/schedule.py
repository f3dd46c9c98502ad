"""Learning-rate schedules driven by the fraction of the training budget spent, in steps or in seconds.

    p = max(steps taken / steps, seconds spent / seconds)
    factor = p⁺ / w                                  while p⁺ < w  (linear warm-up over a fraction w)
    factor = ½ (1 + cos(π (max(p⁻, w) − w) / (1 − w)))   after     ("cosine", Loshchilov & Hutter 2017)

where p⁺ is the fraction spent once the step about to be taken is done and p⁻ the fraction before it. So
with a step budget neither the first step of a warm-up (the ramp is the familiar ``(s + 1) / W``) nor the
last step of the cosine runs at lr 0: with S steps and no warm-up step s takes ``½ (1 + cos(π s / S))``.
With a wall-clock budget the same shape is laid over time, p⁺ counting the next step as long as the last
one took (so the very first step, with no duration to go by, starts the warm-up at 0), and a run cut at
``seconds`` still ends its cosine near zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ctflows.core.counts import real_setting, whole_number
from ctflows.errors import ConfigurationError

SCHEDULES = ("cosine", "constant")


def lr_factor(progress: float, *, warmup: float = 0.0, kind: str = "cosine") -> float:
    """Multiplier of the base learning rate when a fraction ``progress`` ∈ [0, 1] of the budget is spent."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return progress / warmup
    if kind == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / max(1.0 - warmup, 1e-12)))


def plain_warmup(warmup: object, owner: str = "fit") -> int | float:
    """``warmup`` as the Python number it is: an int (a step count) from a Python, NumPy or 0-d torch integer, a float
    (a fraction) in [0, 1) from any other real number; a bool of any kind, another float, or a string is refused,
    naming ``owner``.

    A training state holds only plain values: a NumPy scalar kept in its settings would keep it from being read back.
    """
    count = whole_number(warmup)  # not a bool of any kind
    if count is not None:
        return count
    return real_setting(owner, "warmup", warmup, "an int step count or a fraction in [0, 1)", lambda v: 0.0 <= v < 1.0)


def warmup_fraction(warmup: int | float, steps: int | None, owner: str = "fit") -> float:
    """Warm-up as a fraction of the budget: a float in [0, 1) is one, an int counts steps of ``steps``; errors name ``owner``."""
    given, warmup = warmup, plain_warmup(warmup, owner)
    if isinstance(warmup, float):  # a fraction, in [0, 1)
        return warmup
    if steps is None and warmup == 0:  # no warm-up is the same in steps and in seconds
        return 0.0
    if steps is None:
        raise ConfigurationError(
            f"{owner}: warmup={warmup} counts steps, but the budget is in seconds only; give a fraction such as warmup=0.3"
        )
    if not 0 <= warmup < steps:
        raise ConfigurationError(f"{owner}: warmup must be an int in [0, steps={steps}) or a fraction in [0, 1), got {given!r}")
    return warmup / steps


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule over a budget of ``steps`` and/or ``seconds`` (whichever runs out first)."""

    kind: str
    warmup: float  # fraction of the budget
    steps: int | None
    seconds: float | None

    @classmethod
    def build(
        cls, kind: str, warmup: int | float, *, steps: int | None, seconds: float | None, owner: str = "fit"
    ) -> "Schedule":
        """Check the arguments and make the schedule; raises :class:`ConfigurationError` naming ``owner`` on bad ones."""
        if kind not in SCHEDULES:
            raise ConfigurationError(f"{owner}: schedule must be one of {SCHEDULES}, got {kind!r}")
        if steps is None and seconds is None:
            raise ConfigurationError(f"{owner}: give a budget: steps, seconds, or both")
        return cls(kind, warmup_fraction(warmup, steps, owner), steps, seconds)

    def progress(self, steps_done: int, seconds_done: float) -> float:
        """Fraction of the budget spent once step ``steps_done + 1`` is taken (``seconds_done`` includes it, estimated).

        ``progress(steps_done - 1, seconds)`` is then the fraction spent before that step.
        """
        fractions = [] if self.steps is None else [(steps_done + 1) / self.steps]
        if self.seconds is not None:
            fractions.append(seconds_done / self.seconds)
        return min(max(fractions), 1.0)

    def factor(self, steps_done: int, seconds_done: float, *, step_seconds: float = 0.0) -> float:
        """The learning-rate multiplier for the next step, after ``steps_done`` steps and ``seconds_done``
        seconds, the step expected to take ``step_seconds``."""
        after = self.progress(steps_done, seconds_done + step_seconds)
        if after < self.warmup:
            return lr_factor(after, warmup=self.warmup, kind=self.kind)
        before = self.progress(steps_done - 1, seconds_done)
        return lr_factor(max(before, self.warmup), warmup=self.warmup, kind=self.kind)

    def exhausted(self, steps_done: int, seconds_done: float) -> bool:
        """Whether the budget is spent (no further step should be taken)."""
        return (self.steps is not None and steps_done >= self.steps) or (
            self.seconds is not None and seconds_done >= self.seconds
        )

