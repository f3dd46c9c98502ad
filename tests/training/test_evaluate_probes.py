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
    # The same 300 points each time; only the probes' noise changes between calls (each seed draws its own).
    # Over 24 calls the spread of the NLL must be what nll_probe_se says: ratio 0.78-1.16 for eight seeds; a
    # standard deviation in its place (√9 = 3 times the error) would give about 1/3.
    flow, density = model_and_density
    points = density.sample(300, generator=torch.Generator().manual_seed(1))
    results = [ctflows.evaluate(flow, points, seed=100 + draw, probes=9) for draw in range(24)]
    spread = torch.tensor([r["nll"] for r in results], dtype=torch.float64).std()
    claimed = torch.tensor([r["nll_probe_se"] for r in results], dtype=torch.float64).square().mean().sqrt()
    assert 0.6 < float(spread / claimed) < 1.5, (float(spread), float(claimed))


def test_a_seed_fixes_the_probes_and_leaves_the_global_rng_alone(model_and_density):
    flow, density = model_and_density
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first = ctflows.evaluate(flow, density, n=200, seed=3)
    torch.manual_seed(6)  # a different global stream: the result must not depend on it
    second = ctflows.evaluate(flow, density, n=200, seed=3)
    assert first["nll"] == second["nll"]
    torch.manual_seed(5)
    ctflows.evaluate(flow, density, n=200, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    same_generator = ctflows.evaluate(flow, density, n=200, generator=torch.Generator().manual_seed(3))
    assert same_generator["nll"] == first["nll"]


def test_without_a_seed_probes_come_from_the_global_rng(model_and_density):
    flow, density = model_and_density
    points = density.sample(200, generator=torch.Generator().manual_seed(1))
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append(ctflows.evaluate(flow, points)["nll"])
    torch.manual_seed(8)
    draws.append(ctflows.evaluate(flow, points)["nll"])
    assert draws[0] == draws[1] != draws[2]


@pytest.mark.cuda
def test_a_seed_fixes_the_probes_on_the_gpu_and_leaves_its_generator_alone(model_and_density):
    """On a GPU the probes come from the CUDA generator: the seed must fix them there, and restore it."""
    flow, density = model_and_density
    flow = flow.to("cuda")
    try:
        torch.cuda.manual_seed(5)
        expected = torch.rand(4, device="cuda")
        torch.cuda.manual_seed(5)
        first = ctflows.evaluate(flow, density, n=200, seed=3)
        assert torch.equal(torch.rand(4, device="cuda"), expected)
        torch.cuda.manual_seed(6)
        assert ctflows.evaluate(flow, density, n=200, seed=3)["nll"] == first["nll"]
    finally:
        flow.to("cpu")
