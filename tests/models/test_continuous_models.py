"""Continuous flows end to end: a seeded small-budget convergence test, normalisation of the trained
density, and a hybrid model mixing ActNorm, CNF and affine coupling layers."""
import pytest
import torch

import ctflows
from ctflows.continuous import CNF, TimeMLP
from ctflows.core.stats import count_stats
from ctflows.grid import integrate_2d


@pytest.fixture(scope="module")
def trained_cnf():
    torch.manual_seed(0)
    density = ctflows.get_density("two_moons")
    flow = ctflows.cnf(2, hidden=(32, 32, 32), adjoint=False, atol=1e-4, rtol=1e-4)
    before = ctflows.evaluate(flow, density, n=5000, seed=1)
    history = ctflows.fit(flow, density, steps=400, batch_size=256, lr=2e-2, seed=0, progress=False)
    flow.eval()
    return flow, density, before, history


def test_cnf_small_budget_convergence(trained_cnf):
    # Measured here: KL 1.485 untrained, 0.421 ± 0.010 after these 400 steps.
    flow, density, before, history = trained_cnf
    after = ctflows.evaluate(flow, density, n=5000, seed=1)
    assert after["exact"], "eval() must use the exact divergence"
    assert after["kl"] < 0.6, after
    assert after["kl"] < before["kl"] - 0.8, (before, after)
    assert all(n > 0 for n in history.counts["nfe_forward"] if n is not None)


def test_trained_cnf_density_integrates_to_one(trained_cnf):
    flow, _, _, _ = trained_cnf
    assert integrate_2d(flow.log_prob, (-6, 6, -6, 6), n=200) == pytest.approx(1.0, abs=0.01)


def test_hybrid_discrete_and_continuous_model_trains_evaluates_and_saves(tmp_path):
    torch.manual_seed(0)
    density = ctflows.get_density("eight_gaussians")
    flow = ctflows.Flow(
        [
            ctflows.ActNorm(2),
            CNF(TimeMLP(2, (32, 32)), atol=1e-4, rtol=1e-4, adjoint=True, divergence="hutchinson"),
            ctflows.AffineCoupling(2, hidden=(32, 32)),
            ctflows.ReversePermutation(2),
            ctflows.AffineCoupling(2, hidden=(32, 32)),
        ],
        ctflows.StandardNormal(2),
    )
    before = ctflows.evaluate(flow, density, n=4000, seed=1)
    history = ctflows.fit(flow, density, steps=60, batch_size=256, lr=1e-2, seed=0, progress=False)
    assert count_stats(flow)["nfe_backward"] > 0, "the adjoint solve was not counted"
    assert history.losses[-1] < history.losses[0]
    after = ctflows.evaluate(flow, density, n=4000, seed=1)
    assert after["exact"] and after["kl"] < before["kl"]
    flow.eval()
    assert integrate_2d(flow.log_prob, (-7, 7, -7, 7), n=200) == pytest.approx(1.0, abs=0.01)
    x = density.sample(300, generator=torch.Generator().manual_seed(2))
    ctflows.save(flow, tmp_path / "hybrid.pt")
    assert torch.equal(ctflows.load(tmp_path / "hybrid.pt").eval().log_prob(x), flow.log_prob(x))
    samples, log_prob = flow.sample_and_log_prob(200)
    torch.testing.assert_close(log_prob, flow.log_prob(samples), atol=1e-3, rtol=0)
