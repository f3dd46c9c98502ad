"""The numbers a report row carries: what evaluate gave on the same points, the median step time, the mean NFE
per evaluation batch, the sampling speed, and a budget in minutes counted in seconds."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import Tensor

from ctflows.cli import measure as module
from ctflows.cli.dataset import Dataset, load_dataset
from ctflows.cli.measure import SPEED_SAMPLES, Budget, Trained, measure, train
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


def fixed_model(name: str = "realnvp") -> Trained:
    """:func:`fixed_flow` as a model ``name`` trained for one step."""
    return Trained(name, fixed_flow(), History(losses=[1.0]), step_seconds=[0.1], settings={})


def test_the_row_carries_evaluates_numbers_on_the_points_for_seed_plus_one():
    flow, data = fixed_flow(), density_data()
    history = History(losses=[1.0, 0.5, 0.4], skipped=[2], wall_time=7.5)
    trained = Trained("realnvp", flow, history, step_seconds=[0.1, 0.2, 5.0], settings={"lr": 1e-3})
    row, _ = measure(trained, data, eval_n=600, seed=3)
    want = evaluate(flow, data.test, n=600, seed=4)
    for key in ("nll", "nll_se", "kl", "kl_se"):
        assert row[key] == want[key], key
    assert row["eval_points"] == 600 and row["exact"] is True and row["steps"] == 3 and row["lr"] == 1e-3
    assert row["seconds_per_step"] == 0.2  # the median: one slow step (a first step's set-up) does not move it
    assert row["parameters"] == 4 and row["eval_nfe"] is None  # not a CNF
    assert row["train_seconds"] == 7.5 and row["skipped_steps"] == 1  # fit's wall time; step 2 was not applied


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


def test_samples_per_second_is_the_number_drawn_over_the_seconds_the_draw_took(monkeypatch):
    """The speed counts the samples measure returns (SPEED_SAMPLES points of a density) over the timed seconds."""
    clock = iter([100.0, 102.5])  # measure reads the clock before and after the draw, and nowhere else
    monkeypatch.setattr(module, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    row, samples = measure(fixed_model(), density_data(), eval_n=10, seed=0)
    assert samples.shape == (SPEED_SAMPLES, 2) and row["speed_samples"] == SPEED_SAMPLES
    assert row["samples_per_second"] == SPEED_SAMPLES / 2.5


def test_the_samples_drawn_depend_on_the_seed_alone():
    """The samples (the figures' histograms) are the seed's: the same seed draws the same samples, another seed others."""
    data = density_data()
    (_, a), (_, b), (_, c) = (measure(fixed_model(), data, eval_n=10, seed=seed) for seed in (3, 3, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_each_image_model_trains_on_the_image_stream_from_its_start_in_the_data_sets_batches():
    """Two models trained from one data set see the same batches (the second of a comparison trains as the first);
    the batch size reported is the data set's batches', which never hold more than the training images."""
    pytest.importorskip("sklearn")
    data = load_dataset("digits", 0, image_batch=2000)  # more than the 1,500 training images: one batch of all
    first, second = (train("glow", data, Budget(steps=1), seed=0, device=torch.device("cpu"), progress=False) for _ in range(2))
    a, b = first.flow.state_dict(), second.flow.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.settings["batch_size"] == len(next(iter(data.train))) == len(data.train.images)


class _RecordsMode(ElementwiseAffine):
    """Records, at each sampling pass (the inverse), whether it ran in training mode and with autograd on."""

    def __init__(self, features: int) -> None:
        super().__init__(features)
        self.sampled_in: list[tuple[bool, bool]] = []

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        self.sampled_in.append((self.training, torch.is_grad_enabled()))
        return super()._inverse(z, context)


def test_the_samples_are_drawn_in_eval_mode_without_autograd():
    """A model comes out of fit in training mode; the speed is measured as documented: eval() and no_grad."""
    flow = Flow(_RecordsMode(2), StandardNormal(2)).train()
    row, samples = measure(Trained("realnvp", flow, History(losses=[1.0]), [0.1], {}), density_data(), eval_n=10, seed=0)
    assert flow.transform.sampled_in == [(False, False)] and not samples.requires_grad


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
