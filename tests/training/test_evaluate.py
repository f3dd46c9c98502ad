"""evaluate: KL and NLL agree with closed forms, and their standard errors are honest."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctflows.errors import ConfigurationError, DataError
from ctflows.training import evaluate
from ctflows.training.data_source import make_generator
from training.fakes import CorrelatedGaussian, ElementwiseAffine, Estimated, affine_flow

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
    assert result["probes"] == 1 and result["nll_probe_se"] == 0.0  # every log-det exact: no probe error
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


@pytest.mark.parametrize("name", ["n", "batch_size", "probes"])
def test_a_count_below_one_is_refused_naming_evaluate_and_the_argument(name: str) -> None:
    """A zero count is refused by evaluate itself, naming the argument the caller gave (not an inner one)."""
    with pytest.raises(ConfigurationError, match=f"^evaluate: {name} must be an int >= 1, got 0"):
        evaluate(fixed_flow(), CorrelatedGaussian(), **{name: 0})


class _EstimatedOnFirstCall(ElementwiseAffine):
    """Estimates its log-det on its first call only (the later batches are exact)."""

    def __init__(self, features: int, context_features=None) -> None:
        super().__init__(features, context_features)
        self.calls = 0

    def _forward(self, x, context):
        self.calls += 1
        self.stats = {"logdet_exact": self.calls > 1}
        return super()._forward(x, context)


@pytest.mark.parametrize("probes", [1, 3])
def test_one_estimated_batch_makes_the_whole_result_inexact(probes):
    # The first of two batches is estimated (K = probes evaluations), the second exact (one evaluation):
    # the result is not exact, and the probes used are the fewest any batch had.
    x = CorrelatedGaussian().sample(20, generator=torch.Generator().manual_seed(0))
    flow = fixed_flow(_EstimatedOnFirstCall)
    result = evaluate(flow, x, batch_size=10, probes=probes)
    assert result["exact"] is False and result["n"] == 20 and result["probes"] == 1
    assert math.isnan(result["nll_probe_se"])  # one estimate per point: the probes' error is unknown, not 0
    assert result["nll"] == pytest.approx(float(-fixed_flow().log_prob(x).mean().detach()), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_standard_error_is_the_sample_sd_over_root_n(dtype):
    # Three rows: se = sd(ddof=1) / √3 exactly, for the NLL (no density, so no KL). A float32 model's
    # log-densities are averaged in float64 too, so both numbers match a float64 computation to 1e-12.
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0], [3.0, 0.5]], dtype=dtype)
    flow = fixed_flow().to(dtype)
    nll = -flow.log_prob(x).detach().double()
    result = evaluate(flow, x)
    assert result["nll"] == pytest.approx(float(nll.mean()), rel=1e-12)
    by_hand = math.sqrt(float(((nll - nll.mean()) ** 2).sum()) / 2) / math.sqrt(3)
    assert result["nll_se"] == pytest.approx(by_hand, rel=1e-12)


def test_a_given_generator_is_where_the_points_come_from():
    # generator= wins over seed=: two generators in the same state give the same evaluation as seed= does,
    # and the generator is advanced by the draw.
    p, flow = CorrelatedGaussian(), fixed_flow().double()
    first, second = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    a = evaluate(flow, p, n=500, generator=first)
    b = evaluate(flow, p, n=500, generator=second, seed=99)
    assert a["kl"] == b["kl"] == evaluate(flow, p, n=500, seed=11)["kl"]
    assert not torch.equal(first.get_state(), torch.Generator().manual_seed(11).get_state())


@pytest.mark.parametrize("batch_size", [1, 2, 4, 5, 8])
def test_every_point_is_scored_whatever_the_batch_size(batch_size):
    # 5 points in batches that divide them, leave one over, or hold them all: every point counts once.
    p, flow = CorrelatedGaussian(), fixed_flow().double()
    x = p.sample(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    whole = float(-flow.log_prob(x).mean().detach())
    by_tensor = evaluate(flow, x, batch_size=batch_size)
    by_density = evaluate(flow, p, n=5, seed=4, batch_size=batch_size)
    assert by_tensor["n"] == by_density["n"] == 5
    assert by_tensor["nll"] == pytest.approx(whole, rel=1e-12)
    assert by_density["nll"] == pytest.approx(evaluate(flow, p, n=5, seed=4, batch_size=5)["nll"], rel=1e-12)


class _NoDensityBeyond(ElementwiseAffine):
    """log-det −inf where x₀ > 50 (no density there) and NaN where x₀ < −50 (a diverged evaluation)."""

    def _forward(self, x, context):
        z, logdet = super()._forward(x, context)
        logdet = torch.where(x[:, 0] > 50, -math.inf, logdet)
        return z, torch.where(x[:, 0] < -50, math.nan, logdet)


def test_nonfinite_log_densities_are_kept_and_counted():
    """A point of zero density makes the NLL inf, a NaN one makes it NaN; both are counted, none dropped."""
    x = torch.zeros(4, 2)
    x[1, 0] = 100.0
    one_inf = evaluate(fixed_flow(_NoDensityBeyond), x)
    assert one_inf["n"] == 4 and one_inf["num_nonfinite"] == 1 and one_inf["nll"] == math.inf
    x[2, 0] = -100.0
    with_nan = evaluate(fixed_flow(_NoDensityBeyond), x)
    assert with_nan["num_nonfinite"] == 2 and math.isnan(with_nan["nll"])


class _Recording(ElementwiseAffine):
    """Records ``(training, grad enabled)`` at every forward call."""

    def __init__(self, features: int, context_features=None) -> None:
        super().__init__(features, context_features)
        self.seen: list[tuple[bool, bool]] = []

    def _forward(self, x, context):
        self.seen.append((self.training, torch.is_grad_enabled()))
        return super()._forward(x, context)


@pytest.mark.parametrize("seed", [None, 5])
def test_evaluation_runs_in_eval_mode_without_grad_and_leaves_no_trace(seed):
    """Layers run in eval mode under no_grad; the model's state, its modes and the global RNG are as before,
    so evaluating again (same seed) gives the very same numbers."""
    flow = fixed_flow(_Recording).double().train()
    state, rng = copy.deepcopy(flow.state_dict()), torch.get_rng_state()
    first = evaluate(flow, CorrelatedGaussian(), n=300, batch_size=100, seed=seed)
    assert flow.transform.seen == [(False, False)] * 3
    assert flow.training and flow.transform.training
    torch.testing.assert_close(flow.state_dict(), state, rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), rng), "evaluate drew from the global RNG"
    if seed is not None:
        assert evaluate(flow, CorrelatedGaussian(), n=300, batch_size=100, seed=seed) == first


def test_a_shared_context_of_several_features_is_given_to_every_point():
    """context=[c] with c > 1 evaluates as the [N, c] context that repeats it on every row; a float32 one is given
    to a float64 model in the model's dtype, as Tensor data are."""
    x = CorrelatedGaussian().sample(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cond = affine_flow(features=2, context_features=2).double()
    with torch.no_grad():
        cond.transform.weight.copy_(torch.tensor([[1.0, -0.5], [0.3, 2.0]]))
    c = torch.tensor([0.5, -1.0], dtype=torch.float64)
    by_hand = float(-cond.log_prob(x, c.expand(50, 2)).mean().detach())
    assert evaluate(cond, x, context=c)["nll"] == pytest.approx(by_hand, rel=1e-12)
    assert evaluate(cond, x, context=c.reshape(1, 2))["nll"] == pytest.approx(by_hand, rel=1e-12)
    assert evaluate(cond, x, context=c.float())["nll"] == pytest.approx(by_hand, rel=1e-12)  # 0.5, -1 exact in float32


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_seeds_points_are_its_generators_draws_and_every_mean_is_taken_in_float64(dtype):
    """seed=s scores the n points ``p.sample(n, generator=make_generator(s))`` (the probes' seed is drawn from a copy
    of that generator, so the points are those of a call without probes), in batches whose last one is short; NLL,
    KL and entropy are float64 means of the model's and the density's log-densities, for a float32 model too."""
    p, flow = CorrelatedGaussian(), fixed_flow().to(dtype)
    x = p.sample(1000, generator=make_generator(7), dtype=dtype)
    log_q, log_p = flow.log_prob(x).detach().double(), p.log_prob(x).double()
    result = evaluate(flow, p, n=1000, seed=7, batch_size=300)
    assert result["n"] == 1000
    assert result["nll"] == pytest.approx(float(-log_q.mean()), rel=1e-12)
    assert result["kl"] == pytest.approx(float((log_p - log_q).mean()), rel=1e-12)
    assert result["entropy"] == pytest.approx(float(-log_p.mean()), rel=1e-12)


@pytest.mark.parametrize("data", [CorrelatedGaussian(), DataLoader(TensorDataset(torch.zeros(4, 1, 2, 2)), batch_size=2)],
                         ids=["density", "loader"])
def test_levels_need_a_tensor_of_images(data):
    """Only a Tensor of integer images can be dequantized once for all; other data is refused by name."""
    with pytest.raises(ConfigurationError, match=rf"^evaluate: levels= needs a Tensor of integer images, got {type(data).__name__}"):
        evaluate(fixed_flow(), data, levels=4)
