"""The learning-rate schedule on its own: its multiplier outside the budget, its fractions, and its checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctflows.errors import ConfigurationError
from ctflows.training.schedule import Schedule, lr_factor, plain_warmup, warmup_fraction


@pytest.mark.parametrize("kind", ["cosine", "constant"])
def test_the_multiplier_stays_at_its_ends_outside_the_budget(kind: str) -> None:
    """Progress past 1 (a clock that ran over, as in ``benchmarks/cnf.py``) keeps the rate where the budget
    ends, rather than the cosine climbing back up; progress below 0 is the warm-up's start, not a negative rate."""
    assert lr_factor(1.4, warmup=0.2, kind=kind) == lr_factor(1.0, warmup=0.2, kind=kind)
    assert lr_factor(-0.3, warmup=0.2, kind=kind) == lr_factor(0.0, warmup=0.2, kind=kind) == 0.0


@pytest.mark.parametrize("steps, seconds, done", [(10, None, (10, 0.0)), (None, 10.0, (3, 12.5)), (10, 10.0, (20, 30.0))])
def test_progress_is_a_fraction_even_past_the_budget(steps: int | None, seconds: float | None, done: tuple) -> None:
    """The fraction spent never exceeds 1: the step that overshoots a budget has spent all of it, not more."""
    assert Schedule.build("cosine", 0.0, steps=steps, seconds=seconds).progress(*done) == 1.0


def test_a_schedule_needs_a_budget_and_names_its_owner() -> None:
    """``Schedule.build`` (used directly by the benchmarks) refuses a budget of neither steps nor seconds."""
    with pytest.raises(ConfigurationError, match="^bench: give a budget"):
        Schedule.build("cosine", 0.3, steps=None, seconds=None, owner="bench")


def test_a_warmup_over_the_whole_budget_ramps_to_the_full_rate_at_its_end() -> None:
    """``lr_factor`` (called directly by ``benchmarks/cnf.py``) with ``warmup=1``: the ramp p / 1 all the way, and at
    p = 1 the cosine's start, 1, not a division by 1 - w = 0."""
    assert [lr_factor(p, warmup=1.0) for p in (0.0, 0.25, 0.999)] == [0.0, 0.25, 0.999]
    assert lr_factor(1.0, warmup=1.0) == 1.0


@pytest.mark.parametrize("given, plain", [
    (np.int64(3), 3), (torch.tensor(3), 3), (np.float64(0.25), 0.25), (np.float32(0.25), 0.25), (torch.tensor(0.25), 0.25),
])
def test_a_numpy_or_torch_warmup_is_the_python_number_it_equals(given: object, plain: int | float) -> None:
    """As for fit's other settings, a NumPy or 0-d torch warm-up counts as the Python int (steps) or float (fraction)
    it equals, and comes back as that plain number (a training state must hold no NumPy scalar)."""
    assert type(plain_warmup(given)) is type(plain) and plain_warmup(given) == plain
    fraction = warmup_fraction(given, 12)
    assert type(fraction) is float and fraction == warmup_fraction(plain, 12)
    assert Schedule.build("cosine", given, steps=12, seconds=None) == Schedule.build("cosine", plain, steps=12, seconds=None)


@pytest.mark.parametrize("warmup", [np.bool_(True), torch.tensor(True), torch.tensor([0.25]), np.float64(1.0), math.nan, "0.3"])
def test_a_warmup_that_is_a_flag_a_vector_or_no_fraction_is_refused(warmup: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^bench: warmup must be an int step count or a fraction in \[0, 1\)"):
        Schedule.build("cosine", warmup, steps=10, seconds=None, owner="bench")
