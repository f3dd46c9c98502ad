"""evaluate() on a model with an estimated log-det: says so, averages probes and reports their error."""
import math

import pytest
import torch

import ctflows


@pytest.fixture(scope="module")
def model_and_density():
    torch.manual_seed(0)
    flow = ctflows.cnf(2, hidden=(16, 16), eval_divergence="hutchinson", eval_atol=1e-6, eval_rtol=1e-6)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow, ctflows.get_density("two_moons")


def test_estimated_log_det_is_reported_with_probe_error(model_and_density):
    flow, density = model_and_density
    one = ctflows.evaluate(flow, density, n=500, seed=1)
    many = ctflows.evaluate(flow, density, n=500, seed=1, probes=6)
    assert not one["exact"] and not many["exact"]
    assert one["probes"] == 1 and math.isnan(one["nll_probe_se"])  # one estimate: its probe error is unknown
    assert many["probes"] == 6 and many["nll_probe_se"] > 0


def test_probe_average_agrees_with_exact_divergence(model_and_density):
    flow, density = model_and_density
    estimated = ctflows.evaluate(flow, density, n=500, seed=1, probes=16)
    layer = flow.transform.layers[0]
    layer.eval_divergence = "exact"
    try:
        exact = ctflows.evaluate(flow, density, n=500, seed=1)
    finally:
        layer.eval_divergence = "hutchinson"
    assert exact["exact"] and exact["probes"] == 1
    # Same points: the only difference is the probes' noise, so the gap is judged by the probe error alone.
    assert abs(estimated["nll"] - exact["nll"]) < 4 * estimated["nll_probe_se"] + 1e-4, (estimated, exact)


def test_probe_error_is_the_spread_of_the_nll_over_probe_draws(model_and_density):
    # The same 300 points each time; only the probes' noise changes between calls. Over 24 calls the spread of
    # the NLL must be what nll_probe_se says: ratio 0.78-1.16 for eight seeds; a standard deviation in its
    # place (√9 = 3 times the error) would give about 1/3.
    flow, density = model_and_density
    results = []
    for draw in range(24):
        torch.manual_seed(100 + draw)
        results.append(ctflows.evaluate(flow, density, n=300, seed=1, probes=9))
    spread = torch.tensor([r["nll"] for r in results], dtype=torch.float64).std()
    claimed = torch.tensor([r["nll_probe_se"] for r in results], dtype=torch.float64).square().mean().sqrt()
    assert 0.6 < float(spread / claimed) < 1.5, (float(spread), float(claimed))
