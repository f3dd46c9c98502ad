"""Log-likelihood with several Hutchinson probes: mean and standard error; exact layers need one probe."""
from __future__ import annotations

import torch

from ctflows.continuous import CNF, ConcatSquashMLP, estimate_log_prob, log_prob_is_exact
from ctflows.core import Flow, StandardNormal


def flow(eval_divergence: str) -> Flow:
    torch.manual_seed(0)
    field = ConcatSquashMLP(3, (16, 16), activation="tanh", init_scale=1.0)
    cnf = CNF(field, eval_divergence=eval_divergence, eval_atol=1e-9, eval_rtol=1e-9)
    return Flow(cnf, StandardNormal(3)).double().eval()


def test_exact_evaluation_takes_one_probe_and_has_no_error():
    model = flow("exact")
    x = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        est = estimate_log_prob(model, x, num_probes=5)
        reference = model.log_prob(x)
    assert est.exact and est.num_probes == 1 and log_prob_is_exact(model)
    torch.testing.assert_close(est.log_prob, reference)
    assert torch.all(est.stderr == 0)


def test_hutchinson_evaluation_reports_mean_and_standard_error():
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        exact = flow("exact").log_prob(x)
        torch.manual_seed(2)
        est = estimate_log_prob(flow("hutchinson"), x, num_probes=64)
    assert not est.exact and est.num_probes == 64
    assert torch.all(est.stderr > 0)
    assert torch.all((est.log_prob - exact).abs() < 5 * est.stderr)
    mean, se = est.batch_mean()
    assert abs(float(mean - exact.mean())) < 5 * float(se)


def test_the_standard_error_is_the_spread_of_the_estimate():
    # 30 copies of 4 points in one batch draw independent probes: the spread of each point's 30 estimates must
    # be what their standard errors say (pooled ratio 0.83-1.09 over seeds 0-9; an error off by √K gives 1/4).
    points = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model = flow("hutchinson")
    with torch.no_grad():
        torch.manual_seed(3)
        est = estimate_log_prob(model, points.repeat(30, 1), num_probes=16)
    spread = est.log_prob.reshape(30, 4).var(dim=0)
    claimed = est.stderr.reshape(30, 4).square().mean(dim=0)
    assert 0.7 < float((spread.sum() / claimed.sum()).sqrt()) < 1.3


def test_one_hutchinson_probe_has_an_unknown_error_not_zero():
    # Zero is what an exact evaluation reports; from one estimated probe the spread cannot be measured.
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        est = estimate_log_prob(flow("hutchinson"), x, num_probes=1)
    assert not est.exact and est.num_probes == 1
    assert torch.isnan(est.stderr).all() and torch.isnan(est.batch_mean()[1])
    assert torch.isfinite(est.log_prob).all() and torch.isfinite(est.batch_mean()[0])
