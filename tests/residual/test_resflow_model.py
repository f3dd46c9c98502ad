"""The resflow builder end to end: a residual flow trained briefly on two moons is a normalised density."""
from __future__ import annotations

import pytest
import torch

import ctflows
from ctflows.errors import ConfigurationError
from ctflows.grid import integrate_2d
from ctflows.models.residual import resflow
from ctflows.residual import ResidualBlock


@pytest.fixture(scope="module")
def trained():
    """200 steps at batch 256, exact log-det in 2-D (2.5–4 s on one thread). Measured: loss 3.41 -> 3.27,
    held-out KL 0.88 nats. Residual flows learn slowly (the default RealNVP reaches 0.33 with this budget,
    and an 8-block resflow 0.49 after 600 steps), but the density is normalised whatever the fit."""
    torch.manual_seed(0)
    density = ctflows.get_density("two_moons")
    flow = resflow(2, blocks=4, hidden=(64, 64), seed=0)
    history = ctflows.fit(flow, density, steps=200, batch_size=256, seed=0, progress=False)
    flow.eval()
    return flow, density, history


def test_trained_resflow_density_integrates_to_one(trained):
    flow, _, history = trained
    assert history.losses[-1] < history.losses[0]
    total = integrate_2d(flow.log_prob, (-8, 8, -8, 8), n=400)  # measured 0.999997
    assert total == pytest.approx(1.0, abs=0.01)


def test_trained_resflow_evaluates_exactly_and_samples_consistently(trained):
    flow, density, _ = trained
    result = ctflows.evaluate(flow, density, n=2000, seed=1)
    assert result["exact"] and result["num_nonfinite"] == 0
    x, log_prob = flow.sample_and_log_prob(500, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(log_prob, flow.log_prob(x), atol=1e-4, rtol=0)  # float32; measured 3.8e-6



def test_builder_passes_block_options_and_checks_blocks():
    flow = resflow(12, blocks=2, hidden=(8,), coefficient=0.9, logdet="power_series", terms=4, seed=0)
    blocks = [m for m in flow.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 2 and all(b.logdet == "power_series" and b.terms == 4 for b in blocks)
    assert blocks[0].eval_logdet == "russian_roulette"  # auto in 12-D
    with pytest.raises(ConfigurationError, match="blocks"):
        resflow(2, blocks=0)
