"""End to end: the default RealNVP trained by the default fit learns eight Gaussians and stays normalised.

The full budget (2,000 steps) reaches KL ≈ 0.074 (README, `make demo`); this seeded test uses 800 steps,
where the measured KL is 0.124 ± 0.003, and bounds it loosely enough to hold across platforms.
"""
import pytest
import torch

import ctflows
from ctflows.grid import integrate_2d


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    density = ctflows.get_density("eight_gaussians")
    flow = ctflows.realnvp(2, seed=0)
    history = ctflows.fit(flow, density, steps=800, batch_size=512, seed=0, progress=False)
    flow.eval()
    return flow, density, history


def test_small_budget_reaches_kl_bound(trained):
    flow, density, history = trained
    result = ctflows.evaluate(flow, density, n=20000, seed=1)
    assert result["exact"]
    assert result["kl"] < 0.18, result
    assert history.losses[-1] < history.losses[0] - 1.0


def test_trained_density_integrates_to_one(trained):
    flow, _, _ = trained
    assert integrate_2d(flow.log_prob, (-7, 7, -7, 7), n=600) == pytest.approx(1.0, abs=0.01)


def test_checkpoint_of_trained_model_gives_identical_log_prob(trained, tmp_path):
    flow, density, _ = trained
    x = density.sample(1000, generator=torch.Generator().manual_seed(3))
    ctflows.save(flow, tmp_path / "flow.pt")
    loaded = ctflows.load(tmp_path / "flow.pt")
    loaded.eval()
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))
