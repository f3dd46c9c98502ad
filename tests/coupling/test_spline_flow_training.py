"""End to end: a small neural spline flow trained briefly learns the checkerboard and stays normalised.

Measured here (300 steps at batch 512, seed 0, 1 thread, ~5 s): KL 0.139 ± 0.002 (3.68 untrained), and
exp(log_prob) integrates to 0.99999 over [-7, 7]². For scale, the issue quotes zuko's NSF at KL ≈ 0.09 on
the checkerboard after 2,000 steps.
"""
import pytest
import torch

import ctflows
from ctflows.grid import integrate_2d
from ctflows.models.spline import spline


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    density = ctflows.get_density("checkerboard")
    flow = spline(2, blocks=4, hidden=(64, 64), seed=0)
    before = ctflows.evaluate(flow, density, n=20000, seed=1)
    ctflows.fit(flow, density, steps=300, batch_size=512, seed=0, progress=False)
    flow.eval()
    return flow, density, before


def test_small_budget_reaches_kl_bound(trained):
    flow, density, before = trained
    after = ctflows.evaluate(flow, density, n=20000, seed=1)
    assert after["exact"]
    assert after["kl"] < 0.2, after
    assert after["kl"] < before["kl"] - 0.3, (before, after)


def test_trained_density_integrates_to_one(trained):
    flow, _, _ = trained
    assert integrate_2d(flow.log_prob, (-7, 7, -7, 7), n=400) == pytest.approx(1.0, abs=0.01)


def test_sampling_is_consistent_with_log_prob(trained):
    flow, _, _ = trained
    samples, log_prob = flow.sample_and_log_prob(500)
    assert torch.isfinite(samples).all()
    torch.testing.assert_close(log_prob, flow.log_prob(samples), atol=1e-3, rtol=0)
