"""The learning-rate schedule on its own: its multiplier outside the budget, its fractions, and its checks."""
from __future__ import annotations

import pytest

from ctflows.errors import ConfigurationError
from ctflows.training.schedule import Schedule, lr_factor


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
