"""evaluate: KL and NLL agree with closed forms, and their standard errors are honest."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctflows.errors import ConfigurationError, DataError
from ctflows.training import evaluate
from training.fakes import CorrelatedGaussian, Estimated, affine_flow

LOC, SCALE = torch.tensor([0.6, -0.2]), torch.tensor([1.1, 0.9])


def fixed_flow(layer_cls=None):
    flow = affine_flow() if layer_cls is None else affine_flow(layer_cls)
    with torch.no_grad():
        flow.transform.loc.copy_(LOC)
        flow.transform.log_scale.copy_(SCALE.log())
    return flow


def test_kl_matches_the_gaussian_closed_form():
    p = CorrelatedGaussian()
    result = evaluate(fixed_flow().double(), p, n=20000, seed=0)
    truth = p.kl_to_diagonal(LOC, SCALE)
    assert result["exact"] and result["n"] == 20000 and result["num_nonfinite"] == 0
    assert abs(result["kl"] - truth) < 4 * result["kl_se"]
    assert abs(result["nll"] - (p.entropy() + truth)) < 4 * result["nll_se"]
    assert abs(result["entropy"] - p.entropy()) < 4 * result["entropy_se"]


def test_standard_errors_are_honest():
    # Over many independent small evaluations, (estimate − truth) / se must look standard normal.
    p = CorrelatedGaussian()
    flow = fixed_flow().double()
    truth = p.kl_to_diagonal(LOC, SCALE)
    z_kl, z_nll = [], []
    for seed in range(300):
        r = evaluate(flow, p, n=400, seed=seed)
        z_kl.append((r["kl"] - truth) / r["kl_se"])
        z_nll.append((r["nll"] - p.entropy() - truth) / r["nll_se"])
    for z in (torch.tensor(z_kl), torch.tensor(z_nll)):
        assert abs(float(z.mean())) < 0.25  # se of the mean of 300 unit z-scores is 0.058
        assert 0.85 < float(z.std()) < 1.15
        assert float((z.abs() < 1.96).double().mean()) == pytest.approx(0.95, abs=0.04)


def test_seed_reproducible_and_batch_size_irrelevant():
    p = CorrelatedGaussian()
    a = evaluate(fixed_flow().double(), p, n=1000, seed=3, batch_size=1000)
    b = evaluate(fixed_flow().double(), p, n=1000, seed=3, batch_size=7)
    assert a["kl"] == pytest.approx(b["kl"], rel=1e-12) and a["nll"] == pytest.approx(b["nll"], rel=1e-12)


def test_tensor_loader_and_context_data():
    x = CorrelatedGaussian().sample(300, generator=torch.Generator().manual_seed(0))
    flow = fixed_flow()
    by_tensor = evaluate(flow, x, batch_size=64)
    by_loader = evaluate(flow, DataLoader(TensorDataset(x), batch_size=50))
    assert by_tensor["n"] == by_loader["n"] == 300 and "kl" not in by_tensor
    assert by_tensor["nll"] == pytest.approx(by_loader["nll"], rel=1e-6)
    assert by_tensor["nll"] == pytest.approx(float(-flow.log_prob(x).mean().detach()), rel=1e-6)

    cond = affine_flow(features=2, context_features=1)
    c = torch.randn(300, 1)
    with torch.no_grad():
        cond.transform.weight.fill_(1.0)
    pair = evaluate(cond, (x, c))
    assert pair["nll"] == pytest.approx(evaluate(cond, x, context=c)["nll"], rel=1e-6)
    assert pair["nll"] == pytest.approx(float(-cond.log_prob(x, c).mean().detach()), rel=1e-6)
    shared = evaluate(cond, x, context=torch.tensor([0.5]))
    assert shared["nll"] == pytest.approx(float(-cond.log_prob(x, torch.full((300, 1), 0.5)).mean().detach()), rel=1e-6)
    assert evaluate(cond, x, context=torch.tensor([[0.5]]))["nll"] == shared["nll"]  # [1, c] is shared too
    # A context given twice is refused, not silently dropped in favour of the data's own.
    with pytest.raises(ConfigurationError, match="give the context once"):
        evaluate(cond, (x, c), context=torch.tensor([0.5]))
    with pytest.raises(ConfigurationError, match="give the context once"):
        evaluate(cond, DataLoader(TensorDataset(x, c), batch_size=50), context=torch.tensor([0.5]))


def test_modes_restored_and_exact_flag():
    flow = fixed_flow(Estimated)
    flow.train()
    flow.base.eval()  # a mixed state must come back as it was
    result = evaluate(flow, CorrelatedGaussian(), n=100, seed=0)
    assert result["exact"] is False
    assert flow.training and flow.transform.training and not flow.base.training


def test_bad_arguments():
    with pytest.raises(ConfigurationError):
        evaluate(fixed_flow(), CorrelatedGaussian(), n=0)
    with pytest.raises(DataError):
        evaluate(fixed_flow(), DataLoader(TensorDataset(torch.zeros(0, 2)), batch_size=4))
    with pytest.raises(DataError):
        evaluate(fixed_flow(), "not data")
    with pytest.raises(ConfigurationError, match="shared context"):
        evaluate(affine_flow(features=2, context_features=1), CorrelatedGaussian(), context=torch.zeros(5, 1))
