"""The CNF layer with neural fields: round trips, log-det against autograd, adjoint gradients, stats."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from brute_force import brute_force_logdets
from ctflows.continuous import CNF, ConcatMLP, ConcatSquashMLP, FourierMLP, VelocityField
from ctflows.core import Flow, StandardNormal
from ctflows.errors import ConfigurationError, InputError

F64 = torch.float64
TIGHT = dict(atol=1e-10, rtol=1e-10)


def make_cnf(field_cls=ConcatSquashMLP, d: int = 3, context: int | None = None, **kwargs) -> CNF:
    torch.manual_seed(0)
    field = field_cls(d, (16, 16), activation="tanh", context_features=context, init_scale=1.0)
    kwargs = {**TIGHT, "eval_atol": 1e-10, "eval_rtol": 1e-10, **kwargs}
    return CNF(field, **kwargs).to(F64)


def data(n: int = 5, d: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, dtype=F64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("field_cls", [ConcatMLP, ConcatSquashMLP, FourierMLP])
def test_round_trip_and_logdets_cancel(field_cls):
    cnf = make_cnf(field_cls).eval()
    x = data()
    z, logdet = cnf(x)
    x_back, logdet_inv = cnf.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-8, rtol=0)
    assert not torch.allclose(z, x), "the field should move the points"


@pytest.mark.parametrize("field_jvp", [True, False])
@pytest.mark.parametrize("context", [None, 2])
def test_logdet_matches_brute_force_jacobian_of_the_flow_map(context, field_jvp):
    cnf = make_cnf(context=context, field_jvp=field_jvp).eval()
    x = data(3)
    c = data(3, 2, seed=5) if context else None
    _, logdet = cnf(x, c)
    torch.testing.assert_close(logdet, brute_force_logdets(cnf, x, c), atol=1e-7, rtol=0)


def test_context_changes_the_map():
    cnf = make_cnf(context=2).eval()
    x = data(4)
    z1, _ = cnf(x, data(4, 2, seed=2))
    z2, _ = cnf(x, data(4, 2, seed=3))
    assert not torch.allclose(z1, z2)
    with pytest.raises(InputError):
        cnf(x)


def gradients(cnf: CNF, x: torch.Tensor, c: torch.Tensor | None = None) -> list[torch.Tensor]:
    cnf.zero_grad()
    z, logdet = cnf(x, c)
    loss = (0.5 * z.pow(2).sum(-1) - logdet).mean()
    params = [p for p in cnf.parameters()] + ([c] if c is not None else [])
    return list(torch.autograd.grad(loss, params))


@pytest.mark.parametrize("field_jvp", [True, False])
@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_adjoint_gradients_equal_direct_backpropagation(divergence, field_jvp):
    x = data(6)
    c = data(6, 2, seed=4).requires_grad_(True)
    kwargs = dict(context=2, divergence=divergence, learn_end_time=True, field_jvp=field_jvp)
    torch.manual_seed(11)  # same probes in both runs
    g_adj = gradients(make_cnf(adjoint=True, **kwargs).train(), x, c)
    torch.manual_seed(11)
    g_dir = gradients(make_cnf(adjoint=False, **kwargs).train(), x, c)
    for a, b in zip(g_adj, g_dir):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("adjoint", [True, False])
def test_nfe_is_counted_forward_and_backward(adjoint):
    cnf = make_cnf(adjoint=adjoint, atol=1e-6, rtol=1e-6, regularization="kinetic_energy").train()
    z, logdet = cnf(data())
    stats = cnf.stats
    assert stats["nfe_forward"] > 0 and stats["nfe_backward"] == 0
    ((z**2).sum() - logdet.sum() + stats["regularization"]["kinetic_energy"]).backward()
    assert stats["nfe_backward"] > 0
    assert cnf.stats is stats, "backward counts land in the stats of the call they belong to"


@pytest.mark.parametrize("field_jvp", [True, False])
def test_eval_under_no_grad_is_exact_and_keeps_no_graph(field_jvp):
    cnf = make_cnf(divergence="hutchinson", eval_divergence="exact", field_jvp=field_jvp)
    cnf.eval()
    with torch.no_grad():
        z, logdet = cnf(data())
    assert not z.requires_grad and not logdet.requires_grad
    assert cnf.stats["logdet_exact"] is True and cnf.stats["nfe_forward"] > 0
    cnf.train()
    cnf(data())
    assert cnf.stats["logdet_exact"] is False


def test_fixed_step_solver_and_float32_defaults():
    torch.manual_seed(0)
    field = ConcatSquashMLP(2, (16,))
    cnf = CNF(field, method="rk4", step_size=0.1)
    x = torch.randn(7, 2)
    z, logdet = cnf(x)
    assert z.dtype == torch.float32 and logdet.shape == (7,)
    assert cnf.stats["nfe_forward"] == 40  # 10 steps of 4 stages
    x_back, _ = cnf.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=0)


def test_untrained_field_is_near_identity():
    torch.manual_seed(0)
    cnf = CNF(ConcatSquashMLP(4, (32, 32)))
    x = torch.randn(10, 4)
    z, logdet = cnf(x)
    assert (z - x).abs().max() < 0.2 and logdet.abs().max() < 0.1


def test_learnable_end_time_gets_a_gradient_and_starts_at_t():
    cnf = make_cnf(learn_end_time=True, end_time=0.5)
    assert abs(float(cnf.end_time.detach()) - 0.5) < 1e-6
    z, logdet = cnf(data())
    (z.pow(2).sum() - logdet.sum()).backward()
    assert cnf.raw_end_time.grad is not None and cnf.raw_end_time.grad != 0


def test_in_a_flow_log_prob_and_sampling():
    flow = Flow(make_cnf(d=2), StandardNormal(2)).to(F64).eval()
    x = data(4, 2)
    with torch.no_grad():
        lp = flow.log_prob(x)
        samples, lp_s = flow.sample_and_log_prob(5)
        torch.testing.assert_close(flow.log_prob(samples), lp_s, atol=1e-7, rtol=0)
    assert lp.shape == (4,) and torch.isfinite(lp).all()


def test_configuration_errors():
    field = ConcatMLP(2, (8,))
    with pytest.raises(ConfigurationError):
        CNF(field, method="rk4")  # fixed-step needs a step size
    with pytest.raises(ConfigurationError):
        CNF(field, step_size=0.1)  # dopri5 is adaptive
    with pytest.raises(ConfigurationError):
        CNF(field, method="leapfrog")
    with pytest.raises(ConfigurationError, match=r"^CNF: features=3, but the field ConcatMLP is built for 2$"):
        CNF(field, features=3)
    with pytest.raises(ConfigurationError):
        CNF(field, divergence="brute")
    with pytest.raises(ConfigurationError):
        CNF(field, atol=0)
    with pytest.raises(ConfigurationError):
        ConcatMLP(2, activation="relu")
    for bad in (dict(method="rk4", step_size=0.0), dict(method="euler", step_size=-0.1), dict(eval_atol=-1.0),
                dict(eval_rtol=0.0), dict(exact_chunk_size=0), dict(exact_chunk_size=-1), dict(eval_atol=math.nan),
                dict(method="rk4", step_size=math.inf)):
        with pytest.raises(ConfigurationError, match=f"{[k for k in bad if k != 'method'][0]} must be finite and positive"):
            CNF(field, **bad)
    # NaN or infinite settings used to pass and fail later as a solve blamed on stiff dynamics.
    for bad in (dict(atol=math.nan), dict(rtol=math.inf), dict(end_time=math.nan), dict(end_time=math.inf)):
        with pytest.raises(ConfigurationError, match=f"{next(iter(bad))} must be finite and positive"):
            CNF(field, **bad)


class _Unsized(nn.Module):
    """A valid field that does not say its size: dx/dt = -x."""

    def forward(self, t, x, context=None):
        return -x


def test_the_state_size_comes_from_the_field_or_features_and_must_agree():
    with pytest.raises(ConfigurationError, match=r"field _Unsized does not say how many features .*; pass features=D"):
        CNF(_Unsized())
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigurationError, match="features must be an int >= 1"):
            CNF(_Unsized(), features=bad)
    cnf = CNF(_Unsized(), features=3, end_time=0.5, atol=1e-10, rtol=1e-10).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    z, logdet = cnf(x)  # z = x e^{-T}, log|det| = -3T
    torch.testing.assert_close(z, x * math.exp(-0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(logdet, torch.full((4,), -1.5, dtype=torch.float64), atol=1e-6, rtol=0)
    assert CNF(ConcatMLP(2, (8,)), features=2).features == 2


def test_tolerances_beyond_float32_precision_are_raised_not_fatal():
    torch.manual_seed(0)
    cnf = CNF(FourierMLP(3, (16,), init_scale=1.0), eval_atol=1e-12, eval_rtol=1e-12, max_num_steps=2000).eval()
    x = torch.randn(7, 3)
    with torch.no_grad():
        z, logdet = cnf(x)
        x_back, logdet_inv = cnf.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-4, rtol=0)


def test_inference_mode_is_refused_with_a_clear_error_only_where_autograd_is_needed():
    # Reverse-mode divergences differentiate the field inside the solve, which inference_mode cannot allow;
    # no_grad can, and forward-mode fields need no autograd at all.
    torch.manual_seed(0)
    x = torch.randn(3, 2)
    reverse = CNF(ConcatSquashMLP(2, (8,)), field_jvp=False).eval()
    forward = CNF(ConcatSquashMLP(2, (8,))).eval()
    with torch.no_grad():
        expected = forward(x)[1]
    with torch.inference_mode():
        with pytest.raises(InputError, match="use torch.no_grad"):
            reverse(x)
        torch.testing.assert_close(forward(x)[1].clone(), expected)


def test_a_user_field_with_the_wrong_signature_or_output_is_refused_in_plain_words():
    # Before: "forward() takes 3 positional arguments but 4 were given" at the first call, and an autograd
    # message about is_grads_batched for a field returning the wrong width.
    class NoContext(VelocityField):
        features = 2

        def __init__(self, out: int = 2) -> None:
            super().__init__()
            self.linear = nn.Linear(2, out)

        def forward(self, t, x):
            return self.linear(x)

    class Wide(NoContext):
        def forward(self, t, x, context=None):
            return self.linear(x)

    class WideWithJvp(Wide):
        """Wide, through forward-mode products too (the CNF's default path): the error was torchdiffeq's size mismatch."""

        def forward_with_jvp(self, t, x, context=None, tangents=None):
            if tangents is None:
                tangents = torch.eye(2).expand(x.shape[0], -1, -1)
            return self.linear(x), tangents @ self.linear.weight.T

    with pytest.raises(ConfigurationError, match=r"must accept field\(t, x, context=None\).*forward\(t, x\)"):
        CNF(NoContext())
    with pytest.raises(ConfigurationError, match=r"returned shape \[3, 3\] for x of shape \[3, 2\]"):
        CNF(Wide(out=3), field_jvp=False)(torch.randn(3, 2))
    for adjoint in (True, False):
        with pytest.raises(ConfigurationError, match=r"returned shape \[3, 3\] for x of shape \[3, 2\]"):
            CNF(WideWithJvp(out=3), adjoint=adjoint)(torch.randn(3, 2))


def test_a_learned_end_time_starts_where_asked_even_past_exp_overflow():
    # softplus⁻¹(T) = log(expm1(T)) overflowed (OverflowError) for T above about 709
    for end_time in (0.5, 40.0, 800.0):
        cnf = CNF(ConcatSquashMLP(2, (8,)), end_time=end_time, learn_end_time=True)
        assert float(torch.nn.functional.softplus(cnf.raw_end_time.detach().double())) == pytest.approx(end_time, rel=1e-6)


def test_evaluation_tolerances_default_to_a_tenth_of_the_training_ones():
    field = ConcatSquashMLP(2, (8,))
    cnf = CNF(field, atol=1e-4, rtol=2e-3)
    assert cnf.eval_atol == pytest.approx(1e-5, rel=1e-12) and cnf.eval_rtol == pytest.approx(2e-4, rel=1e-12)
    cnf = CNF(field, atol=1e-4, rtol=2e-3, eval_atol=3e-6)
    assert cnf.eval_atol == 3e-6 and cnf.eval_rtol == pytest.approx(2e-4, rel=1e-12)


def test_the_noise_setting_picks_the_hutchinson_probes(linear_field):
    # For a diagonal Jacobian A, a Rademacher probe gives εᵀAε = Σ a_ii ε_i² = tr A exactly, so the
    # estimated log-det is T tr A for every sample; Gaussian probes (ε_i² ≠ 1) scatter around it.
    a = torch.diag(torch.tensor([0.7, -0.3, 0.2], dtype=F64))
    x = data(n=64)
    logdets = {}
    for noise in ("rademacher", "gaussian"):
        cnf = CNF(linear_field(a), divergence="hutchinson", noise=noise, **TIGHT).to(F64).train()
        torch.manual_seed(0)
        _, logdets[noise] = cnf(x)
        assert cnf.stats["logdet_exact"] is False
    torch.testing.assert_close(logdets["rademacher"], torch.full((64,), 0.6, dtype=F64), atol=1e-8, rtol=0)
    assert float((logdets["gaussian"] - 0.6).abs().max()) > 0.1
