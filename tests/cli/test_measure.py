"""The numbers a report row carries: what evaluate gave on the same points, the median step time, the mean NFE
per evaluation batch, and a budget in minutes counted in seconds."""
from __future__ import annotations

import pytest
import torch

from ctflows.cli.dataset import Dataset
from ctflows.cli.measure import Budget, Trained, measure
from ctflows.core import Flow, StandardNormal
from ctflows.training import History, evaluate
from training.fakes import CorrelatedGaussian, ElementwiseAffine, affine_flow


def density_data() -> Dataset:
    p = CorrelatedGaussian()
    return Dataset(name="correlated_gaussian", dim=2, train=p, test=p, density=p)


def fixed_flow() -> Flow:
    flow = affine_flow()
    with torch.no_grad():
        flow.transform.loc.copy_(torch.tensor([0.6, -0.2]))
        flow.transform.log_scale.copy_(torch.tensor([0.1, -0.1]))
    return flow


def test_the_row_carries_evaluates_numbers_on_the_points_for_seed_plus_one():
    flow, data = fixed_flow(), density_data()
    history = History(losses=[1.0, 0.5, 0.4])
    trained = Trained("realnvp", flow, history, step_seconds=[0.1, 0.2, 5.0], settings={"lr": 1e-3})
    row, _ = measure(trained, data, eval_n=600, seed=3)
    want = evaluate(flow, data.test, n=600, seed=4)
    for key in ("nll", "nll_se", "kl", "kl_se"):
        assert row[key] == want[key], key
    assert row["eval_points"] == 600 and row["exact"] is True and row["steps"] == 3 and row["lr"] == 1e-3
    assert row["seconds_per_step"] == 0.2  # the median: one slow step (a first step's set-up) does not move it
    assert row["parameters"] == 4 and row["eval_nfe"] is None  # not a CNF


class _CountsRows(ElementwiseAffine):
    """Reports an NFE equal to the rows of each batch, so batches of different sizes report different NFE."""

    def _forward(self, x, context):
        self.stats = {"nfe_forward": int(x.shape[0])}
        return super()._forward(x, context)


def test_eval_nfe_is_the_mean_over_the_evaluation_batches():
    # evaluate scores 5000 points in batches of 4096 and 904: the mean NFE per batch is 2500.
    flow = Flow(_CountsRows(2), StandardNormal(2))
    trained = Trained("cnf", flow, History(losses=[1.0]), step_seconds=[0.1], settings={})
    row, _ = measure(trained, density_data(), eval_n=5000, seed=0)
    assert row["eval_nfe"] == pytest.approx(2500.0)


def test_a_budget_in_minutes_is_counted_in_seconds():
    assert Budget.from_options(None, 1.5) == Budget(steps=None, seconds=90.0)
    assert Budget.from_options(None, None, default_steps=200) == Budget(steps=200, seconds=None)
    assert Budget.from_options(None, None, default_minutes=0.5).seconds == 30.0
    assert Budget.from_options(100, 2.0).describe() == "100 steps or 120 s"


def test_frozen_parameters_are_not_counted_and_unknown_errors_are_none():
    # One scored point: its standard error is unknown (NaN), which the row, bound for JSON, holds as None.
    flow = fixed_flow()
    flow.transform.log_scale.requires_grad_(False)
    trained = Trained("realnvp", flow, History(losses=[1.0]), step_seconds=[], settings={})
    row, _ = measure(trained, density_data(), eval_n=1, seed=0)
    assert row["parameters"] == 2  # loc only
    assert row["eval_points"] == 1 and row["nll_se"] is None and row["kl_se"] is None
    assert isinstance(row["nll"], float) and row["seconds_per_step"] is None
