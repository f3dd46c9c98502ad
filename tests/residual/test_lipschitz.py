"""The residual branch g stays Lipschitz below its coefficient: activations, spectral normalisation, training."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ctflows.errors import ConfigurationError
from ctflows.residual import (
    LipSwish,
    LipschitzMLP,
    ResidualBlock,
    SpectralLinear,
    cached_weights,
    lipschitz_activation,
    spectral_norms,
)


@pytest.mark.parametrize("name", ["lipswish", "elu", "tanh", "softplus"])
@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0])
def test_activations_are_1_lipschitz(name, beta):
    act = lipschitz_activation(name).double()
    if isinstance(act, LipSwish):
        act.raw_beta.data.fill_(torch.log(torch.expm1(torch.tensor(beta))).item())
    x = torch.linspace(-60, 60, 200001, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(act(x).sum(), x)
    assert slope.abs().max() <= 1.0
    if isinstance(act, LipSwish):
        # max of d/dx x·sigmoid(βx) is 1.0998 whatever β: LipSwish uses 99.98% of its Lipschitz budget
        assert slope.max().item() == pytest.approx(1.09984 / 1.1, abs=1e-4)


def test_non_lipschitz_or_non_smooth_activations_are_refused():
    with pytest.raises(ConfigurationError, match="relu"):
        lipschitz_activation("relu")
    with pytest.raises(ConfigurationError, match="silu"):
        LipschitzMLP(2, activation="silu")  # silu (swish with β=1) has slope up to 1.0998


@pytest.mark.parametrize("c", [0.0, 1.0, 1.5, -0.5])
def test_coefficient_must_lie_in_the_open_unit_interval(c):
    with pytest.raises(ConfigurationError, match="coefficient"):
        ResidualBlock(2, coefficient=c)


@pytest.mark.parametrize("setting", [{"iterations": 0}, {"iterations": 1.5}, {"eval_iterations": 0}])
def test_power_iteration_counts_must_be_positive_ints(setting):
    # With no iteration, σ̂ came from the u, v buffers themselves: using a block twice before backward()
    # failed with autograd's "modified by an inplace operation", and σ̂ never followed W.
    with pytest.raises(ConfigurationError, match=next(iter(setting))):
        SpectralLinear(torch.nn.Linear(3, 3), **setting)


def test_eval_weights_have_spectral_norm_min_of_sigma_and_c():
    torch.manual_seed(0)
    big = torch.nn.Linear(20, 30).double()
    big.weight.data.mul_(5.0)  # σ ≈ 5.6 > c: scaled down to c
    small = torch.nn.Linear(20, 30).double()
    small.weight.data.mul_(0.3)  # σ ≈ 0.3 < c: left as it is
    for linear in (big, small):
        sigma = torch.linalg.matrix_norm(linear.weight.detach(), ord=2).item()
        layer = SpectralLinear(linear, 0.9).eval()
        assert spectral_norms(layer)[0].item() == pytest.approx(min(sigma, 0.9), rel=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_fresh_layer_is_at_its_bound_from_the_first_training_call(seed):
    """The power-iteration vectors start converged: the first training call, with one iteration, scales a
    64 × 64 weight to ‖W̃‖₂ = c (vectors one iteration from random gave ‖W̃‖₂ up to 1.16 for c = 0.9)."""
    torch.manual_seed(seed)
    linear = torch.nn.Linear(64, 64).double()
    linear.weight.data.mul_(10.0)
    layer = SpectralLinear(linear, 0.9, iterations=1).train()
    assert torch.linalg.matrix_norm(layer.normalized_weight().detach(), ord=2).item() == pytest.approx(0.9, rel=1e-9)


def test_zero_weight_does_not_kill_the_power_iteration():
    linear = torch.nn.Linear(5, 4).double()
    linear.weight.data.zero_()
    layer = SpectralLinear(linear, 0.5).train()
    layer.normalized_weight()  # W = 0: σ̂ = 0, no scaling; u, v must stay unit vectors
    assert torch.isfinite(layer.u).all() and layer.u.norm().item() == pytest.approx(1.0)
    with torch.no_grad():
        layer.weight.copy_(3 * torch.randn(4, 5, dtype=torch.float64))
    layer.eval()
    assert spectral_norms(layer)[0].item() == pytest.approx(0.5, rel=1e-7)


def _jacobian_norms(g: LipschitzMLP, points: torch.Tensor) -> torch.Tensor:
    jac = torch.func.vmap(torch.func.jacrev(lambda p: g(p.unsqueeze(0)).squeeze(0)))(points)
    return torch.linalg.matrix_norm(jac, ord=2)


@pytest.mark.parametrize("activation", ["lipswish", "elu"])
def test_lipschitz_constant_stays_below_coefficient_after_training(activation):
    """Adam steps on a loss that rewards stretching push the weights' norms far past c (raw ‖W‖₂ reaches
    1.9–8.1 here); the eval-mode branch must still have Lip(g) ≤ c^L, checked two independent ways."""
    torch.manual_seed(0)
    c = 0.9
    g = LipschitzMLP(2, (32, 32), coefficient=c, activation=activation).double().train()
    opt = torch.optim.Adam(g.parameters(), lr=0.05)
    x = torch.randn(256, 2, dtype=torch.float64)
    y = x.flip(0)
    for _ in range(40):
        stretch = (g(x) - g(y)).square().sum(1) / (x - y).square().sum(1)
        opt.zero_grad()
        (-stretch.mean()).backward()
        opt.step()
    raw = [torch.linalg.matrix_norm(m.weight.detach(), ord=2).item() for m in g.modules() if isinstance(m, SpectralLinear)]
    assert max(raw) > 3 * c  # the constraint is binding, not idle
    g.eval()
    norms = torch.stack(spectral_norms(g))  # exact ‖W̃‖₂ by SVD; measured within 1e-7 of c
    assert (norms <= c * (1 + 1e-6)).all(), norms
    points = 3 * torch.randn(2000, 2, dtype=torch.float64)
    lip = _jacobian_norms(g, points).max().item()  # measured 0.7144 (lipswish), 0.7289 (elu); c³ = 0.729
    assert lip <= g.lipschitz_bound * (1 + 1e-6)
    assert g.lipschitz_bound == pytest.approx(c**3)


def _perturbed_layer() -> SpectralLinear:
    torch.manual_seed(0)
    layer = SpectralLinear(torch.nn.Linear(6, 5).double(), 0.9, iterations=1).train()
    with torch.no_grad():  # new singular vectors: an advancing call would move the stored u, v
        layer.weight.add_(torch.randn_like(layer.weight))
    return layer


def test_reading_the_norms_in_train_mode_does_not_move_the_power_iteration():
    layer = _perturbed_layer()
    used = layer.normalized_weight()  # what a training forward uses
    u, v = layer.u.clone(), layer.v.clone()
    first, second = spectral_norms(layer)[0], spectral_norms(layer)[0]
    assert torch.equal(layer.u, u) and torch.equal(layer.v, v)
    assert first.item() == second.item() == pytest.approx(torch.linalg.matrix_norm(used.detach(), ord=2).item(), rel=1e-12)


def _stepped_pair() -> tuple[SpectralLinear, SpectralLinear]:
    """Two equal layers after a training call and then an optimizer-like change of W."""
    pair = _perturbed_layer(), _perturbed_layer()
    for layer in pair:
        layer.normalized_weight()
        with torch.no_grad():  # as an optimizer step: W changes after the last training call
            layer.weight.add_(0.3 * torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(1)))
    return pair


def test_a_look_at_the_norms_does_not_stand_in_for_the_advance_a_changed_weight_needs():
    """After W changed, an inverse-direction call (advance=False) advances the power iteration; a look in between
    (which stores nothing) must not make it reuse the stale u, v."""
    logged, plain = _stepped_pair()
    spectral_norms(logged)
    assert torch.equal(logged.normalized_weight(advance=False).detach(), plain.normalized_weight(advance=False).detach())


def test_reading_the_norms_after_an_optimizer_step_leaves_training_as_it_would_be():
    logged, plain = _stepped_pair()
    u = logged.u.clone()
    looked = spectral_norms(logged)[0]
    assert torch.equal(logged.u, u), "looking stored a power iteration"
    unlogged_next = plain.normalized_weight().detach()
    assert torch.equal(logged.normalized_weight().detach(), unlogged_next)  # the next step sees the same W̃
    assert torch.allclose(looked, torch.linalg.matrix_norm(unlogged_next, ord=2), rtol=1e-12)  # and so did the look


@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0, 50.0])
def test_lipswish_starts_at_the_beta_it_is_given(beta):
    # raw β = softplus⁻¹(β), so that softplus(raw β) is the β passed in (1 by default, Chen et al.).
    act = LipSwish(beta).double()
    assert act.beta.item() == pytest.approx(beta, rel=1e-6)
    x = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)
    torch.testing.assert_close(act(x), x * torch.sigmoid(beta * x) / 1.1, atol=1e-6 * (1 + beta), rtol=1e-6)
    assert LipSwish().beta.item() == pytest.approx(1.0, rel=1e-6)


def test_nested_cached_weights_keep_the_outer_cache():
    """Inside a cache every call uses the one W̃ computed on entry: an inner cache must neither advance the power
    iteration again nor drop the outer cache when it exits."""
    layer = _perturbed_layer()
    x = torch.randn(4, 6, dtype=torch.float64)
    with cached_weights(layer):
        before, u = layer(x), layer.u.clone()
        with cached_weights(layer):
            inner = layer(x)
        after = layer(x)
    assert torch.equal(layer.u, u) and torch.equal(inner, before) and torch.equal(after, before)


@pytest.mark.parametrize("name", ["lipswish", "elu", "tanh", "softplus"])
def test_branch_is_the_spectrally_normalised_mlp_with_the_chosen_activation(name):
    """g(x) = W̃₃ φ(W̃₂ φ(W̃₁ x + b₁) + b₂) + b₃ with φ the named activation (not the plain MLP's ELU), and every
    layer runs the eval power iteration count it was given."""
    torch.manual_seed(0)
    g = LipschitzMLP(3, (5, 4), activation=name, eval_iterations=37).double().eval()
    layers = [m for m in g.modules() if isinstance(m, SpectralLinear)]
    assert [m.eval_iterations for m in layers] == [37, 37, 37]
    act = lipschitz_activation(name).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    h = x
    for i, m in enumerate(layers):
        h = F.linear(h, m.normalized_weight(), m.bias)
        h = act(h) if i < len(layers) - 1 else h
    torch.testing.assert_close(g(x), h, atol=1e-14, rtol=0)
