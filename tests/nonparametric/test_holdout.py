"""The early-stopping rule of the fitted models: patience counts steps without a strict improvement."""
from ctflows.nonparametric.holdout import Patience


def test_patience_stops_after_exactly_that_many_steps_without_improvement():
    stopper = Patience(3, initial=0.0)
    assert [stopper.update(v) for v in (-1.0, -2.0, -0.5)] == [False, False, True]
    assert stopper.best == 0.0 and stopper.best_step == 0


def test_an_equal_value_is_not_an_improvement_and_a_larger_one_resets_the_count():
    stopper = Patience(2, initial=1.0)
    assert stopper.update(1.0) is False
    assert stopper.update(1.5) is False  # improvement at step 2
    assert stopper.best_step == 2
    assert stopper.update(1.5) is False  # a tie: one step without improvement
    assert stopper.update(1.5) is True  # two: stop, best still step 2
    assert stopper.best_step == 2 and stopper.best == 1.5
