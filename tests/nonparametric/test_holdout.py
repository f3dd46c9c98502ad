"""The held-out split and the early-stopping rule of the fitted models: the split is a seeded partition of the
data, patience counts steps without a strict improvement, and a fit stops there and keeps its best step."""
import pytest
import torch

from ctflows.core.span import check_spans_space
from ctflows.errors import DataError
from ctflows.nonparametric import fit_dual_ascent, fit_gaussianization
from ctflows.nonparametric.holdout import Patience, split


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


def test_a_gain_below_min_improvement_is_not_an_improvement():
    """Only a value above best + min_improvement resets the count and moves the best step."""
    stopper = Patience(2, initial=0.0, min_improvement=0.1)
    assert stopper.update(0.05) is False and stopper.best_step == 0  # +0.05: not enough
    assert stopper.update(0.2) is False and stopper.best_step == 2 and stopper.best == 0.2
    assert stopper.update(0.29) is False  # +0.09 over the best
    assert stopper.update(0.25) is True and stopper.best_step == 2


def points(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def sorted_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` in lexicographic order, to compare sets of points."""
    order = torch.argsort(x[:, 1], stable=True)
    x = x[order]
    return x[torch.argsort(x[:, 0], stable=True)]


def test_split_is_a_partition_of_the_data_fixed_by_the_generator_alone():
    """Train and held-out parts are disjoint, together are the data, the held-out part has round(fraction·N)
    points, and a seeded generator decides it whatever torch's global random state."""
    data = points(100)
    torch.manual_seed(1)
    train, held_out = split(data, 0.25, torch.Generator().manual_seed(7), owner="test")
    assert held_out.shape == (25, 2) and train.shape == (75, 2)
    torch.testing.assert_close(sorted_rows(torch.cat([train, held_out])), sorted_rows(data), rtol=0, atol=0)
    torch.manual_seed(2)
    again = split(data, 0.25, torch.Generator().manual_seed(7), owner="test")
    assert torch.equal(again[0], train) and torch.equal(again[1], held_out)
    other = split(data, 0.25, torch.Generator().manual_seed(8), owner="test")
    assert not torch.equal(other[1], held_out)


def test_split_holds_out_at_least_one_point():
    """A fraction that rounds to no points still holds one out, so the stopping rule has something to score; other
    fractions hold out fraction·N rounded to the nearest count (0.26 · 20 = 5.2 -> 5, 0.29 · 20 = 5.8 -> 6)."""
    train, held_out = split(points(20), 0.01, torch.Generator().manual_seed(0), owner="test")
    assert held_out.shape == (1, 2) and train.shape == (19, 2)
    for fraction, count in ((0.26, 5), (0.29, 6)):
        assert split(points(20), fraction, torch.Generator().manual_seed(0), owner="test")[1].shape == (count, 2)


def test_split_allows_up_to_one_percent_of_exact_repeats():
    """2 repeated points of 200 (1%) pass; 3 (more than 1%) are refused with the dequantization hint."""
    data = points(200)
    data[[10, 20]] = data[[0, 1]]
    split(data, 0.2, torch.Generator().manual_seed(0), owner="test")
    data[30] = data[2]
    with pytest.raises(DataError, match="test: 3 of 200 points repeat another point exactly"):
        split(data, 0.2, torch.Generator().manual_seed(0), owner="test")


def test_a_fit_stops_after_patience_steps_without_improvement_and_keeps_its_best_step():
    """Stopped by patience: exactly ``patience`` scores follow the best one, none above it, and the chain is cut
    back to it. Stopped by max_steps: one score per step. (Steps of 0.9 overfit 300 points within a few maps.)"""
    data = points(300)
    flow = fit_dual_ascent(data, max_steps=500, step_limit=0.9, patience=3, generator=torch.Generator().manual_seed(1))
    report = flow.report
    assert report.stopped == "patience"
    assert len(report.validation) == report.steps + 3 + 1
    assert max(report.validation[report.steps + 1 :]) <= report.validation[report.steps]
    assert len(flow.transform.layers) == 1 + report.steps
    report = fit_dual_ascent(data, max_steps=4, patience=10, generator=torch.Generator().manual_seed(1)).report
    assert report.stopped == "max_steps" and len(report.validation) == len(report.train) == 4 + 1



def test_the_kept_step_is_the_first_best_held_out_score_including_step_zero():
    """``steps`` is the first argmax of the held-out scores, step 0 (whitening alone) included: when no map beats
    it the fit keeps none. On Gaussian points, maps of two neighbours with steps of 0.9 mostly fit noise, so
    some of these fits keep no map (measured: 4 of 6)."""
    kept = []
    for seed in range(6):
        flow = fit_dual_ascent(points(300, seed), max_steps=50, step_limit=0.9, neighbours=2, patience=2,
                               generator=torch.Generator().manual_seed(seed))
        report = flow.report
        assert report.steps == report.validation.index(max(report.validation)), seed
        assert len(flow.transform.layers) == 1 + report.steps
        if report.steps == 0:  # no map beat whitening alone: patience ran out after 2 maps, long before max_steps
            assert report.stopped == "patience" and len(report.validation) == 3, seed
        kept.append(report.steps)
    assert 0 in kept, kept


def test_training_points_on_a_line_are_refused_when_the_point_off_it_is_held_out():
    """200 points on a line and one off it span the plane, but a split that holds that one out leaves the 161 training
    points on the line (a Gaussianization fit built a spike on it without a word). Over 20 seeds, each split either
    keeps the point off the line for training or is refused naming the training points, and at least one is refused."""
    t = torch.randn(200, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    data = torch.cat([torch.cat([t, 2 * t + 1], dim=1), torch.tensor([[0.3, 5.0]], dtype=torch.float64)])
    check_spans_space("fit", data)  # all the points together span the plane
    with pytest.raises(DataError, match=r"^fit_gaussianization: the data lie on a hyperplane"):  # not blamed on the split
        split(data[:-1], 0.2, torch.Generator().manual_seed(0), owner="fit_gaussianization")
    refused = []
    for seed in range(20):
        try:
            train, _ = split(data, 0.2, torch.Generator().manual_seed(seed), owner="fit_gaussianization")
        except DataError as error:
            assert str(error).startswith("fit_gaussianization (its 161 training points): the data lie on a hyperplane")
            refused.append(seed)
        else:
            assert (train == data[-1]).all(dim=1).any()
    assert refused
    with pytest.raises(DataError, match=r"^fit_gaussianization \(its 161 training points\): the data lie on a hyperplane"):
        fit_gaussianization(data, max_steps=2, generator=torch.Generator().manual_seed(refused[0]))
