"""Log-likelihood with several Hutchinson probes: mean and standard error; exact layers need one probe."""
from __future__ import annotations

import warnings

import torch

from ctflows.continuous import CNF, ConcatSquashMLP, estimate_log_prob, log_prob_is_exact
from ctflows.continuous.likelihood import LogProbEstimate
from ctflows.core import Flow, StandardNormal
from ctflows.core.transform import Transform


def flow(*eval_divergences: str, context_features: int | None = None) -> Flow:
    """One CNF layer per estimator named (the same weights for one seed), evaluated at tight tolerances."""
    torch.manual_seed(0)
    layers = [
        CNF(ConcatSquashMLP(3, (16, 16), activation="tanh", context_features=context_features, init_scale=1.0),
            eval_divergence=eval_divergence, eval_atol=1e-9, eval_rtol=1e-9)
        for eval_divergence in eval_divergences
    ]
    return Flow(layers, StandardNormal(3)).double().eval()


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
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")  # the unknown error is said, not left to a degrees-of-freedom warning
        est = estimate_log_prob(flow("hutchinson"), x, num_probes=1)
        stderr, batch_stderr = est.stderr, est.batch_mean()[1]
    assert not est.exact and est.num_probes == 1
    assert torch.isnan(stderr).all() and torch.isnan(batch_stderr)
    assert torch.isfinite(est.log_prob).all() and torch.isfinite(est.batch_mean()[0])


def test_standard_errors_follow_the_documented_formulas_on_known_numbers():
    # SE = sd_k / √K with the sample standard deviation (K - 1 in the denominator). Probes [K=2, B=2]:
    # point 0 has estimates 1 and 3 (sd √2, SE 1), point 1 has 4 and 2 (SE 1). The batch means per probe
    # are 2.5 and 2.5, so the batch mean is 2.5 with SE 0: the per-point errors cancel in the batch mean,
    # which is why batch_mean must take the spread of the per-probe batch means, not average per-point SEs.

    est = LogProbEstimate(torch.tensor([[1.0, 4.0], [3.0, 2.0]], dtype=torch.float64), exact=False)
    torch.testing.assert_close(est.log_prob, torch.tensor([2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(est.stderr, torch.ones(2, dtype=torch.float64))
    mean, se = est.batch_mean()
    assert float(mean) == 2.5 and float(se) == 0.0
    # Unequal per-probe batch means: probes give 1.5 and 3.5, so mean 2.5 and SE sd([1.5, 3.5]) / √2 = 1.
    est = LogProbEstimate(torch.tensor([[1.0, 2.0], [3.0, 4.0], [2.0, 3.0]], dtype=torch.float64)[:2], exact=False)
    mean, se = est.batch_mean()
    assert float(mean) == 2.5 and abs(float(se) - 1.0) < 1e-12
    # Three probes of one point, 0, 3, 6: sample sd 3, SE √3.
    est = LogProbEstimate(torch.tensor([[0.0], [3.0], [6.0]], dtype=torch.float64), exact=False)
    assert abs(float(est.stderr[0]) - 3.0 ** 0.5) < 1e-12


def test_layers_that_report_stats_without_logdet_exact_count_as_exact():
    # Only an explicit stats["logdet_exact"] = False marks an estimate; a layer whose stats hold other
    # things (an iteration count) is exact, and a model of such layers needs one probe.

    class CountingScale(Transform):
        event_shape = (3,)

        def _forward(self, x, context):
            self.stats = {"iterations": 1}
            return 2 * x, torch.full((x.shape[0],), 3 * torch.log(torch.tensor(2.0, dtype=x.dtype)), dtype=x.dtype)

        def _inverse(self, z, context):
            self.stats = {"iterations": 1}
            return z / 2, torch.full((z.shape[0],), -3 * torch.log(torch.tensor(2.0, dtype=z.dtype)), dtype=z.dtype)

    model = Flow(CountingScale(), StandardNormal(3)).double()
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    est = estimate_log_prob(model, x, num_probes=5)
    assert log_prob_is_exact(model) and est.exact and est.num_probes == 1
    assert torch.all(est.stderr == 0)
    reference = torch.distributions.Normal(0.0, 0.5).log_prob(x).sum(1)  # z = 2x: x ~ N(0, 1/4)
    torch.testing.assert_close(est.log_prob, reference)


def test_one_estimated_layer_makes_the_whole_log_density_an_estimate():
    """A flow of an exactly evaluated CNF and a Hutchinson one is an estimate: every probe runs and has a spread."""
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model = flow("exact", "hutchinson")
    with torch.no_grad():
        est = estimate_log_prob(model, x, num_probes=4)
    assert not log_prob_is_exact(model) and not est.exact and est.num_probes == 4
    assert torch.all(est.stderr > 0)


def test_a_conditional_flow_is_evaluated_at_the_given_context():
    """Every probe sees the context: the exact evaluation is the model's log-density at that context, and the
    Hutchinson mean agrees with it within its standard error, while another context gives another density."""
    g = torch.Generator().manual_seed(1)
    x, context = torch.randn(4, 3, dtype=torch.float64, generator=g), torch.randn(4, 2, dtype=torch.float64, generator=g)
    exact_model = flow("exact", context_features=2)
    with torch.no_grad():
        reference = exact_model.log_prob(x, context)
        exact = estimate_log_prob(exact_model, x, context, num_probes=3)
        est = estimate_log_prob(flow("hutchinson", context_features=2), x, context, num_probes=8)  # flow() seeds
        elsewhere = exact_model.log_prob(x, context + 1.0)
    torch.testing.assert_close(exact.log_prob, reference)
    assert est.num_probes == 8 and torch.all((est.log_prob - reference).abs() < 5 * est.stderr)
    assert torch.all((elsewhere - reference).abs() > 10 * est.stderr)
