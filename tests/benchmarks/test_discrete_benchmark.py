"""The helper logic of benchmarks/discrete.py: parameter matching, fair interleaving, the zuko adapter."""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import torch
from torch import nn

import ctflows

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "discrete.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("discrete_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bench = load_benchmark()


def test_matched_spline_blocks_is_nearest_count():
    torch.set_num_threads(1)
    target = bench.count_parameters(bench.maf(16, blocks=9))
    blocks = bench.matched_spline_blocks(16, target)
    gap = lambda b: abs(bench.count_parameters(ctflows.spline(16, blocks=b, hidden=bench.HIDDEN, bins=bench.BINS)) - target)
    assert gap(blocks) <= gap(blocks - 1) and gap(blocks) <= gap(blocks + 1)
    assert gap(blocks) / target < 0.1


def _args(**kw) -> argparse.Namespace:
    base = dict(batch=64, lr=5e-3, clip=1.0, warmup=0.3, steps=None, seconds=None)
    return argparse.Namespace(**{**base, **kw})


def test_interleaved_steps_give_twins_the_same_data_and_updates():
    torch.set_num_threads(1)
    density = ctflows.get_density("eight_gaussians")
    torch.manual_seed(0)
    first = ctflows.realnvp(2, blocks=2, hidden=(8,))
    twin = ctflows.realnvp(2, blocks=2, hidden=(8,))
    twin.load_state_dict(first.state_dict())
    runs = bench.make_runs({"a": first, "b": twin}, density, 64, seed=3, lr=5e-3)
    bench.train_interleaved(runs, density, _args(mode="steps", steps=6))
    assert runs["a"].steps == runs["b"].steps == 6
    for p, q in zip(first.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert any(not torch.equal(p, q) for p, q in zip(first.parameters(), ctflows.realnvp(2, blocks=2, hidden=(8,)).parameters()))


def test_interleaved_seconds_share_the_budget_fairly():
    torch.set_num_threads(1)
    density = ctflows.get_density("eight_gaussians")
    models = {"small": ctflows.realnvp(2, blocks=1, hidden=(8,)), "big": ctflows.realnvp(2, blocks=4, hidden=(32,))}
    runs = bench.make_runs(models, density, 64, seed=0, lr=5e-3)
    bench.train_interleaved(runs, density, _args(mode="seconds", seconds=0.3))
    for run in runs.values():
        # Each model stops at the first step that crosses the budget, so it overshoots by at most one step.
        assert 0.3 <= run.seconds <= 0.3 + max(run.step_times)
    assert runs["small"].steps >= runs["big"].steps


class _LazyGaussian(nn.Module):
    """A zuko-style lazy flow: calling it builds the distribution (here a learnable diagonal Gaussian)."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.tensor([0.3, -0.2]))

    def forward(self):
        return torch.distributions.Independent(torch.distributions.Normal(self.loc, torch.ones(2)), 1)


def test_zuko_adapter_is_evaluated_on_the_same_samples_with_the_same_formula():
    density = ctflows.get_density("eight_gaussians")
    adapter = bench.ZukoFlow(_LazyGaussian())
    result = ctflows.evaluate(adapter, density, n=500, seed=7)
    x = density.sample(500, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    with torch.no_grad():
        gap = (density.log_prob(x).double() - adapter.flow().log_prob(x).double())
    assert math.isclose(result["kl"], float(gap.mean()), rel_tol=1e-6)
    assert math.isclose(result["kl_se"], float(gap.std() / math.sqrt(500)), rel_tol=1e-6)
    assert adapter.sample(5).shape == (5, 2)


def test_standardised_zuko_adapter_is_the_pushed_forward_density():
    # u = (x - loc) / scale with u ~ N(m, I) means x ~ N(loc + scale m, diag(scale²)).
    torch.manual_seed(0)
    lazy, loc, scale = _LazyGaussian(), torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    adapter = bench.ZukoFlow(lazy, loc, scale)
    x = torch.randn(50, 2) * 4
    expected = torch.distributions.Normal(loc + scale * lazy.loc, scale).log_prob(x).sum(dim=1)
    with torch.no_grad():
        torch.testing.assert_close(adapter.log_prob(x), expected)
        draws = adapter.sample(20000)
    torch.testing.assert_close(draws.mean(dim=0), (loc + scale * lazy.loc).detach(), atol=0.08, rtol=0)
