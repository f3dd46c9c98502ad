"""A wall-clock budget: training stops when it is spent and the schedule is laid over it."""
from __future__ import annotations

import importlib
import math
import time

import pytest

from ctflows.errors import ConfigurationError
from ctflows.training import fit
from ctflows.training.schedule import Schedule, lr_factor
from training.fakes import CorrelatedGaussian, affine_flow


def test_seconds_budget_stops_training_and_ends_the_cosine():
    seen: list[float] = []
    history = fit(affine_flow(), CorrelatedGaussian(), steps=None, seconds=1.0, batch_size=16, lr=1e-2,
                  callback=lambda step, history: seen.append(history.trained_seconds))
    # It stops after the first step that spends the budget, not before it and not one step later.
    assert seen[-2] < 1.0 <= seen[-1] == history.trained_seconds <= history.wall_time
    assert history.steps > 10
    assert history.lr[-1] < 1e-2 * 0.05  # the cosine got (nearly) to its end
    peak = max(history.lr)
    assert history.lr.index(peak) > 0  # warm-up first


def test_trained_seconds_count_the_steps_not_the_callbacks_or_evaluations(monkeypatch):
    fit_module = importlib.import_module("ctflows.training.fit")  # the package's `fit` attribute is the function

    pause, seen = 0.1, []
    real_evaluate = fit_module.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(pause)
        return real_evaluate(*args, **kwargs)

    def slow_callback(step, history):
        seen.append(history.trained_seconds)
        time.sleep(pause)

    monkeypatch.setattr(fit_module, "evaluate", slow_evaluate)
    history = fit(affine_flow(), CorrelatedGaussian(), steps=3, batch_size=16, callback=slow_callback,
                  eval_data=CorrelatedGaussian(), eval_every=1, eval_samples=64)
    assert 0 < seen[0] < seen[1] < seen[2] == history.trained_seconds
    # Three callbacks and three evaluations slept outside the clock; had they counted, this would not hold.
    assert history.trained_seconds + 6 * pause <= history.wall_time
    assert [e["time"] for e in history.evals] == seen


def test_steps_cap_a_seconds_budget():
    history = fit(affine_flow(), CorrelatedGaussian(), steps=7, seconds=60.0, batch_size=16)
    assert history.steps == 7


def test_progress_is_the_larger_of_the_two_fractions():
    plan = Schedule.build("cosine", 0.25, steps=100, seconds=10.0)
    assert plan.progress(9, 1.0) == pytest.approx(0.1)  # steps lead
    assert plan.progress(9, 5.0) == pytest.approx(0.5)  # time leads
    assert plan.exhausted(100, 0.0) and plan.exhausted(3, 10.0) and not plan.exhausted(3, 9.9)
    assert lr_factor(0.125, warmup=0.25) == pytest.approx(0.5)
    assert lr_factor(0.625, warmup=0.25) == pytest.approx(0.5)  # half way down the cosine


def test_a_step_budget_wastes_neither_the_first_nor_the_last_step():
    history = fit(affine_flow(), CorrelatedGaussian(), steps=10, batch_size=16, lr=1e-2, warmup=0)
    assert history.lr == pytest.approx([1e-2 * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)])
    assert history.lr[-1] > 1e-2 * 0.02
    ramped = fit(affine_flow(), CorrelatedGaussian(), steps=10, batch_size=16, lr=1e-2, warmup=2)
    assert ramped.lr[:3] == pytest.approx([5e-3, 1e-2, 1e-2]) and ramped.lr[-1] > 0
    assert ramped.lr == sorted(ramped.lr[:2]) + sorted(ramped.lr[2:], reverse=True)


def test_a_seconds_budget_ramps_with_the_time_after_the_step_and_decays_with_the_time_before_it():
    plan = Schedule.build("cosine", 0.5, steps=None, seconds=10.0)
    assert plan.factor(0, 0.0, step_seconds=1.0) == pytest.approx(0.2)  # 1 s of a 5-s warm-up, once taken
    assert plan.factor(7, 5.0, step_seconds=1.0) == pytest.approx(1.0)  # the cosine starts where 5 s are spent
    assert plan.factor(9, 7.5, step_seconds=1.0) == pytest.approx(0.5)  # half way down, from the time before
    assert 0 < plan.factor(12, 9.9, step_seconds=1.0) < 0.01  # the last step: small, not zero


def test_no_warmup_needs_no_unit():
    # warmup=0 means no warm-up whether the budget is counted in steps or in seconds.
    assert Schedule.build("constant", 0, steps=None, seconds=5.0).factor(0, 0.0) == 1.0
    history = fit(affine_flow(), CorrelatedGaussian(), steps=None, seconds=0.3, batch_size=16, lr=1e-2,
                  warmup=0, schedule="constant")
    assert history.lr[0] == 1e-2


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": None}, "give a budget"),
    ({"steps": None, "seconds": -1.0}, "seconds must be a positive number"),
    ({"steps": None, "seconds": 1.0, "warmup": 5}, "give a fraction"),
])
def test_bad_budgets(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        fit(affine_flow(), CorrelatedGaussian(), **kwargs)


class TickingClock:
    """A stand-in for the ``time`` module whose ``perf_counter`` advances a fixed tick at each reading, so every
    step of a seconds budget lasts exactly one tick."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def test_a_resumed_seconds_budget_run_takes_the_learning_rates_of_an_unbroken_one(tmp_path, monkeypatch):
    """The warm-up counts the next step as long as the last one: a resumed run must know the last step's length
    (it took 0 and so a lower rate before), so with steps of equal length it repeats the unbroken run's rates."""
    fit_module = importlib.import_module("ctflows.training.fit")
    settings = dict(steps=None, seconds=2.0, warmup=0.5, batch_size=16, lr=1e-2, seed=0, progress=False)
    monkeypatch.setattr(fit_module, "time", TickingClock(0.25))
    whole = fit(affine_flow(), CorrelatedGaussian(), **settings)
    monkeypatch.setattr(fit_module, "time", TickingClock(0.25))
    fit(affine_flow(), CorrelatedGaussian(), checkpoint_dir=tmp_path, callback=lambda step, history: step == 2, **settings)
    resumed = fit(affine_flow(), CorrelatedGaussian(), checkpoint_dir=tmp_path, resume=True, **settings)
    assert whole.steps == resumed.steps == 8  # 2 s of 0.25 s steps
    assert resumed.lr == whole.lr
