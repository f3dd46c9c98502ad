"""ResidualBlock: fixed-point inverse (accuracy, failure, implicit gradients), honest stats, configuration, checkpoints."""
from __future__ import annotations

import re

import pytest
import torch

import ctflows
from ctflows.core import Inverse
from ctflows.errors import ConfigurationError, SolverError
from ctflows.models.residual import resflow
from ctflows.residual import LipschitzMLP, ResidualBlock, fixed_point_inverse
from ctflows.residual.fixed_point import default_tolerance


def block(features: int = 3, coefficient: float = 0.97, seed: int = 0, **kwargs) -> ResidualBlock:
    """An eval-mode float64 block with every layer at its spectral-norm bound (raw weights scaled up)."""
    torch.manual_seed(seed)
    layer = ResidualBlock(features, (32, 32), coefficient=coefficient, **kwargs).double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("weight"):
                p.mul_(10.0)
    return layer.eval()


@pytest.mark.parametrize("coefficient", [0.5, 0.9, 0.99])
def test_fixed_point_inverse_round_trip_float64(aligned, coefficient):
    """Round trip to 1e-8 with ‖J_g‖₂ near its bound c² (measured over the 500 points: max ‖J_g‖₂ 0.23, 0.75,
    0.91; 20, 101, 308 iterations; round-trip error at most 9e-13)."""
    torch.manual_seed(0)
    layer = ResidualBlock(3, (16,), coefficient=coefficient, max_iterations=5000).double()
    aligned(layer.branch)
    x = 3 * torch.randn(500, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z, logdet = layer(x)
    x_back, logdet_inverse = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(logdet_inverse, -logdet, atol=1e-8, rtol=0)
    assert 1 < layer.stats["iterations"] < layer.max_iterations
    assert layer.stats["residual"] <= 1e-12


def _power_vectors(layer: ResidualBlock) -> list[torch.Tensor]:
    return [b.clone() for name, b in layer.named_buffers() if name.endswith((".u", ".v"))]


def test_train_mode_inverse_undoes_the_last_forward_call():
    """In train() mode each forward call advances the power iteration (u, v move, so σ̂ and W̃ do too); the
    inverse must invert the map that call used, not advance again. With one iteration per call on weights
    far from their stored singular vectors the old inverse missed by 0.04."""
    torch.manual_seed(0)
    layer = ResidualBlock(3, (32, 32), power_iterations=1).double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("weight"):
                p.add_(0.5 * torch.randn_like(p)).mul_(10.0)
    layer.train()
    x = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    stored = _power_vectors(layer)
    z, _ = layer(x)
    moved = _power_vectors(layer)
    assert any(not torch.equal(a, b) for a, b in zip(stored, moved))  # the forward call did advance
    x_back, _ = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-9, rtol=0)
    assert all(torch.equal(a, b) for a, b in zip(moved, _power_vectors(layer)))


def test_train_mode_inverse_then_forward_backpropagates():
    """A loss that samples (inverse) and scores (forward) in one step: the forward's in-place update of u, v
    must not invalidate what the inverse's graph saved."""
    torch.manual_seed(0)
    layer = ResidualBlock(2, (16,)).double().train()
    layer(torch.randn(8, 2, dtype=torch.float64))  # so that the inverse reuses this call's u, v (W unchanged)
    z = torch.randn(8, 2, dtype=torch.float64)
    x, _ = layer.inverse(z)
    _, logdet = layer(torch.randn(8, 2, dtype=torch.float64))
    (x.square().sum() + logdet.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_a_block_trained_through_its_inverse_still_tracks_the_spectral_norm():
    """Used only in the inverse direction, the power iteration must still advance once W has changed."""
    torch.manual_seed(0)
    layer = ResidualBlock(2, (16,), power_iterations=1).double().train()
    z = torch.randn(64, 2, dtype=torch.float64)
    layer.inverse(z)
    before = _power_vectors(layer)
    layer.inverse(z)  # W unchanged: the same normalisation, u and v untouched
    assert all(torch.equal(a, b) for a, b in zip(before, _power_vectors(layer)))
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("weight"):
                p.add_(0.3 * torch.randn_like(p))
    layer.inverse(z)
    assert any(not torch.equal(a, b) for a, b in zip(before, _power_vectors(layer)))


def test_fixed_point_inverse_float32():
    torch.manual_seed(0)
    layer = ResidualBlock(3, (32, 32)).eval()
    x = 3 * torch.randn(500, 3)
    x_back, _ = layer.inverse(layer(x)[0])
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=1e-5)


def test_non_convergence_raises_a_solver_error_that_says_what_to_do(aligned):
    torch.manual_seed(0)
    layer = ResidualBlock(3, (16,), coefficient=0.99, max_iterations=3).double()
    aligned(layer.branch)
    z = 3 * torch.randn(20, 3, dtype=torch.float64)
    with pytest.raises(SolverError) as info:
        layer.inverse(z)
    message = str(info.value)
    bound = f"Lipschitz bound is {0.99**2:.4g}"  # c^L for the two layers of a (16,) branch
    for part in ("ResidualBlock", "3 of at most 3 iterations", "tolerance 1e-12", "largest relative step", "coefficient", bound):
        assert part in message, (part, message)


@pytest.mark.parametrize("dtype, bound", [(torch.float64, 1e-11), (torch.float32, 1e-5)])
def test_fixed_point_inverse_stops_on_each_samples_relative_step(dtype, bound):
    """The stopping test is relative to 1 + |x| per sample: inputs from 1 to 1e8 in one batch all converge (an
    absolute step cannot fall below the spacing of large floats) and each to its own relative accuracy (a
    step relative to the batch's largest |x| left the small ones 2e-6 off in float64, 0.04 in float32)."""
    def g(v):
        return 0.7 * torch.sin(v)  # Lip 0.7, and no exact floating-point fixed point at large |x|

    x = (10.0 ** torch.arange(0, 9, dtype=torch.float64)).unsqueeze(1) * torch.linspace(1, 2, 4, dtype=torch.float64)
    x = x.to(dtype)
    with torch.no_grad():
        x_back, iterations, residual = fixed_point_inverse(g, x + g(x))
    assert ((x_back - x).abs() / (1 + x.abs())).max().item() <= bound
    assert residual <= default_tolerance(dtype) and iterations < 100


def test_fixed_point_inverse_reports_non_finite_iterates_at_once():
    """An iteration that overflows stops at the first non-finite iterate and says so, rather than running to
    max_iterations and blaming convergence."""
    with pytest.raises(SolverError, match="became non-finite") as info:
        fixed_point_inverse(lambda v: 1e200 * v, torch.ones(2, 3, dtype=torch.float64))
    assert int(re.search(r"after (\d+) of at most 1000", str(info.value)).group(1)) <= 5  # overflows by the 3rd


def test_implicit_gradient_is_the_inverse_jacobian_product(aligned):
    """The gradient through x = f⁻¹(z) is vᵀ (I + J_g(x))⁻¹ to near float64 precision (the backward solve runs
    to the same tolerance as the forward one; gradcheck below would accept an error of 1e-6)."""
    torch.manual_seed(0)
    layer = ResidualBlock(3, (16,), coefficient=0.9).double()
    aligned(layer.branch)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(6, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    v = torch.randn(6, 3, dtype=torch.float64, generator=gen)
    x, _ = layer.inverse(z)
    (grad,) = torch.autograd.grad(x, z, v)
    jac = torch.func.vmap(torch.func.jacrev(lambda p: layer.branch(p.unsqueeze(0)).squeeze(0)))(x.detach())
    expected = torch.linalg.solve((torch.eye(3, dtype=torch.float64) + jac).mT, v)  # a (I + J) = v, per sample
    assert torch.linalg.matrix_norm(jac, ord=2).max() > 0.6  # the Neumann solve needs many terms
    torch.testing.assert_close(grad, expected, atol=1e-10, rtol=0)


def test_inverse_gradients_match_finite_differences(aligned):
    """x = f⁻¹(z) is differentiated implicitly ((I + J_g)⁻¹, solved by fixed-point iteration), never through the
    iterations; gradcheck compares it, and the inverse log-det's gradient, with central differences. With
    ‖J_g‖₂ ≈ 0.75 here, a one-step gradient (I - J_g instead of (I + J_g)⁻¹) would be far off."""
    torch.manual_seed(0)
    layer = ResidualBlock(3, (16,), coefficient=0.9).double()
    aligned(layer.branch)
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: layer.inverse(v), (z,))
    name = "branch.mlp.net.2.weight"  # [3, 16]
    weight = dict(layer.named_parameters())[name].detach().clone().requires_grad_()
    wrapped = Inverse(layer)
    assert torch.autograd.gradcheck(lambda w: torch.func.functional_call(wrapped, {"transform." + name: w}, (z.detach(),)), (weight,))


def test_stats_say_which_estimator_ran_and_whether_it_was_exact():
    x = torch.randn(8, 2, dtype=torch.float64)
    small = block(features=2)
    small.train()
    small(x)
    assert small.stats == {"logdet": "exact", "logdet_exact": True, "logdet_terms": 0}
    wide = block(features=10)  # auto: unbiased roulette with eval_terms = 20 terms always computed
    wide(torch.randn(8, 10, dtype=torch.float64))
    assert wide.stats["logdet"] == "russian_roulette" and wide.stats["logdet_exact"] is False
    assert wide.stats["logdet_terms"] >= 20
    series = block(features=2, logdet="power_series", terms=7)
    series.train()
    series(x)
    assert series.stats == {"logdet": "power_series", "logdet_exact": False, "logdet_terms": 7}
    series.eval()
    series.inverse(x)
    assert series.stats["logdet_exact"] is True and series.stats["iterations"] > 1


def test_wide_block_eval_estimate_is_close_to_exact():
    """In 10-D the eval default is the roulette with 20 terms always computed: its mean over probes is the exact log-det."""
    torch.manual_seed(0)
    layer = ResidualBlock(10, (32,), coefficient=0.9).double().eval()
    exact = ResidualBlock(10, (32,), coefficient=0.9, eval_logdet="exact").double().eval()
    exact.load_state_dict(layer.state_dict())
    x = torch.randn(4, 10, dtype=torch.float64).repeat(200, 1)
    estimates = layer(x)[1].view(200, 4)
    reference = exact(x[:4])[1]
    se = estimates.std(0) / 200**0.5
    assert ((estimates.mean(0) - reference).abs() <= 4 * se + 1e-12).all()


def test_train_mode_roulette_is_unbiased_for_the_exact_log_det(aligned):
    # Training draws the number of series terms afresh each call (one draw per call, shared by the batch): the
    # mean over calls must be the exact log-det. Lip(g) = c² = 0.49 keeps the variance finite (0.24 < q = 0.5);
    # the aligned branch makes the terms past the first two matter (always stopping at two is 8-12 s.e. off).
    torch.manual_seed(0)
    layer = ResidualBlock(3, (32,), coefficient=0.7, logdet="exact").double()
    aligned(layer.branch)
    layer.train()
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for _ in range(100):
            layer(x)  # the training power iteration catches up with the aligned weights
    reference = layer(x)[1].detach()
    layer.logdet = "russian_roulette"
    torch.manual_seed(2)
    per_call = torch.stack([layer(x.repeat(32, 1))[1].detach().view(32, 4).mean(0) for _ in range(400)])
    assert layer.stats["logdet"] == "russian_roulette" and layer.stats["logdet_exact"] is False
    se = per_call.std(0) / 400**0.5
    assert ((per_call.mean(0) - reference).abs() <= 4 * se).all(), (per_call.mean(0) - reference) / se


def test_bad_configuration_is_refused():
    with pytest.raises(ConfigurationError, match="estimator"):
        ResidualBlock(2, logdet="series")
    with pytest.raises(ConfigurationError, match="terms"):
        ResidualBlock(2, terms=0)
    with pytest.raises(ConfigurationError, match="noise"):
        ResidualBlock(2, noise="uniform")
    with pytest.raises(ConfigurationError, match="activation"):
        ResidualBlock(2, activation="relu")
    with pytest.raises(ConfigurationError, match="max_iterations must be >= 2"):
        ResidualBlock(2, max_iterations=1)  # one iterate gives no step to judge convergence by


def test_checkpoint_round_trip_keeps_the_power_iteration_state(tmp_path):
    flow = resflow(2, blocks=2, hidden=(16,), seed=0).double()
    flow.train()
    with torch.no_grad():
        flow.log_prob(torch.randn(64, 2, dtype=torch.float64))  # ActNorm init, u and v updated
    flow.eval()
    ctflows.save(flow, tmp_path / "resflow.pt")
    loaded = ctflows.load(tmp_path / "resflow.pt").eval()
    x = torch.randn(100, 2, dtype=torch.float64)
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))


def test_eval_power_series_runs_eval_terms_and_is_unbiased_for_the_exact_log_det(aligned):
    # In eval() the power series takes eval_terms terms, not the training count: with terms=1 (a biased series,
    # its error is tr(J²)/2 ≈ 0.2 here) and eval_terms=25 (truncation error ~0.49²⁶), the Hutchinson mean over
    # 400 probes per point must sit within 4 standard errors of the exact log-det.
    torch.manual_seed(0)
    layer = ResidualBlock(3, (32,), coefficient=0.7, logdet="power_series", eval_logdet="power_series",
                          terms=1, eval_terms=25).double()
    aligned(layer.branch)
    layer.eval()
    exact = ResidualBlock(3, (32,), coefficient=0.7, eval_logdet="exact").double().eval()
    exact.load_state_dict(layer.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    reference = exact(x)[1]
    torch.manual_seed(2)
    estimates = layer(x.repeat(400, 1))[1].view(400, 4)
    assert layer.stats["logdet_terms"] == 25
    se = estimates.std(0) / 400**0.5
    assert ((estimates.mean(0) - reference).abs() <= 4 * se + 1e-12).all(), (estimates.mean(0) - reference) / se


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_implicit_gradient_accuracy_does_not_depend_on_the_gradients_scale(aligned, dtype, rtol):
    """vᵀ(I + J)⁻¹ is linear in v, so s·v must give s times the gradient to the same relative accuracy: the
    per-sample gradients of a loss averaged over a batch of 10⁴ are ~1e-4. A stopping test relative to
    1 + |a| accepted such gradients after a few steps (measured relative errors: float32 4e-3 at s = 1e-4,
    0.8 at s = 1e-8; float64 4e-5 at s = 1e-8)."""
    torch.manual_seed(0)
    layer = ResidualBlock(3, (16,), coefficient=0.97).double()
    aligned(layer.branch)
    layer = layer.to(dtype)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(6, 3, dtype=torch.float64, generator=gen).to(dtype).requires_grad_()
    v = torch.randn(6, 3, dtype=torch.float64, generator=gen)
    x, _ = layer.inverse(z)
    jac = torch.func.vmap(torch.func.jacrev(lambda p: layer.branch(p.unsqueeze(0)).squeeze(0)))(x.detach()).double()
    expected = torch.linalg.solve((torch.eye(3, dtype=torch.float64) + jac).mT, v)
    assert torch.linalg.matrix_norm(jac, ord=2).max() > 0.8  # a slowly contracting backward solve
    for scale in (1.0, 1e-4, 1e-8):
        x, _ = layer.inverse(z)
        (grad,) = torch.autograd.grad(x, z, (scale * v).to(dtype))
        torch.testing.assert_close(grad.double() / scale, expected, rtol=0, atol=rtol * expected.abs().max().item())


def test_backward_solve_that_does_not_converge_raises_a_solver_error():
    """At z = 0 the inverse of x + 0.9 sin(x) is exactly 0 (the second iterate repeats the first), but the
    backward solve contracts only at the rate 0.9: with 5 iterations it must raise, not return a wrong
    gradient; with the default it gives d x/d z = 1 / (1 + 0.9 cos 0) = 1/1.9."""
    def g(v: torch.Tensor) -> torch.Tensor:
        return 0.9 * torch.sin(v)

    z = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    x, iterations, residual = fixed_point_inverse(g, z, max_iterations=5)
    assert iterations == 2 and residual == 0.0 and torch.equal(x, torch.zeros_like(x))
    with pytest.raises(SolverError, match="implicit backward solve did not converge after 5 of at most 5"):
        x.sum().backward()
    x, _, _ = fixed_point_inverse(g, z)
    (grad,) = torch.autograd.grad(x.sum(), z)
    torch.testing.assert_close(grad, torch.full_like(z, 1 / 1.9), atol=1e-11, rtol=0)


def test_inverse_of_a_parameter_free_map_of_a_constant_needs_no_gradient():
    """With autograd on but nothing to differentiate (no parameters, z a constant), the inverse is a plain tensor."""
    z = torch.ones(2, 3, dtype=torch.float64)
    x, _, _ = fixed_point_inverse(lambda v: 0.5 * torch.tanh(v), z)
    assert not x.requires_grad
    torch.testing.assert_close(x + 0.5 * torch.tanh(x), z, atol=1e-11, rtol=0)


def test_fixed_point_inverse_stops_on_the_largest_coordinate_step():
    """The step is the largest over a sample's coordinates: one slowly moving coordinate among 1000 fixed ones
    must still converge to the tolerance (a mean over coordinates would stop 1000 times too early)."""
    mask = torch.zeros(1000, dtype=torch.float64)
    mask[0] = 1.0

    def g(v: torch.Tensor) -> torch.Tensor:
        return 0.9 * torch.sin(v) * mask

    x = torch.full((2, 1000), 0.5, dtype=torch.float64)
    x[:, 0] = torch.tensor([1.0, 2.0], dtype=torch.float64)
    with torch.no_grad():
        x_back, _, _ = fixed_point_inverse(g, x + g(x))
    assert (x_back - x).abs().max().item() <= 1e-10


def test_bfloat16_inverse_converges_at_the_default_tolerance():
    """bfloat16 has 8 significant bits (ulp of 1: 0.0078): a default tolerance of 1e-3 could never be met, and
    every bfloat16 inverse ran to max_iterations and failed."""
    def g(v: torch.Tensor) -> torch.Tensor:
        return 0.7 * torch.sin(v)

    x = torch.linspace(-3, 3, 30, dtype=torch.float64).view(10, 3)
    with torch.no_grad():
        x_back, _, residual = fixed_point_inverse(g, (x + g(x)).bfloat16())
    assert x_back.dtype == torch.bfloat16 and residual <= default_tolerance(torch.bfloat16) < 0.05
    assert ((x_back.double() - x).abs() / (1 + x.abs())).max().item() <= 0.05


@pytest.mark.parametrize("estimator", ["exact", "power_series", "russian_roulette"])
def test_no_grad_calls_keep_no_graph(estimator):
    """Under no_grad (evaluation, sampling) the outputs must not carry the graph the estimators build inside."""
    layer = block(features=3, eval_logdet=estimator)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        z, logdet = layer(x)
        x_back, logdet_inverse = layer.inverse(z)
    assert not any(t.requires_grad for t in (z, logdet, x_back, logdet_inverse))
    torch.testing.assert_close(x_back, x.detach(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("estimator", ["power_series", "russian_roulette"])
def test_log_det_gradient_of_the_estimators_is_unbiased_for_the_exact_one(aligned, estimator):
    """With autograd on, the gradient of the block's log-det (the power series differentiated through, or the
    roulette's Neumann-series gradient) in x and in g's parameters has the exact log-det's gradient as its
    mean: 100 calls of 20 probes per point, every entry within 5 standard errors, the mean within 5%.
    eval_terms = 25 terms at Lip(g) ≤ 0.49 leaves a truncation bias of order 0.49²⁶."""
    torch.manual_seed(0)
    layer = ResidualBlock(3, (32,), coefficient=0.7, eval_logdet=estimator, eval_terms=25).double().eval()
    aligned(layer.branch)
    exact = ResidualBlock(3, (32,), coefficient=0.7, eval_logdet="exact").double().eval()
    exact.load_state_dict(layer.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def gradient(b: ResidualBlock, reps: int) -> torch.Tensor:
        xr = x.repeat(reps, 1).requires_grad_()
        grads = torch.autograd.grad(b(xr)[1].sum() / reps, [xr, *b.branch.parameters()], materialize_grads=True)
        return torch.cat([grads[0].view(reps, *x.shape).sum(0).flatten(), *(g.flatten() for g in grads[1:])])

    reference = gradient(exact, 1)
    torch.manual_seed(2)
    draws = torch.stack([gradient(layer, 20) for _ in range(100)])
    mean, se = draws.mean(0), draws.std(0) / 100**0.5
    assert ((mean - reference).abs() <= 5 * se + 1e-10).all(), ((mean - reference) / se).abs().max()
    assert ((mean - reference).norm() / reference.norm()).item() < 0.05
    assert layer.stats["logdet"] == estimator


def _diagonal_block(noise: str) -> ResidualBlock:
    """A D = 3 block whose branch g(x) = W̃₂ φ(W̃₁ x + b₁) + b₂ has diagonal weights, hence a diagonal Jacobian."""
    torch.manual_seed(0)
    layer = ResidualBlock(3, (3,), coefficient=0.7, eval_logdet="power_series", eval_terms=40, noise=noise).double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("weight"):
                p.copy_(torch.diag(torch.tensor([2.0, -1.0, 0.3], dtype=torch.float64)))
    return layer.eval()


def test_noise_kind_is_the_one_asked_for():
    """For a diagonal J, a Rademacher probe gives εᵀJᵏε = tr(Jᵏ) exactly (ε_i² = 1), so the 40-term series is the
    exact log-det with no variance; a Gaussian probe's εᵀJε has variance 2 tr(J²) > 0."""
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).repeat(100, 1)
    exact = _diagonal_block("rademacher")
    exact.eval_logdet = "exact"
    reference = exact(x[:4])[1]
    rademacher = _diagonal_block("rademacher")(x)[1].view(100, 4)
    torch.testing.assert_close(rademacher, reference.expand(100, 4), atol=1e-12, rtol=0)
    gaussian = _diagonal_block("gaussian")(x)[1].view(100, 4)
    assert (gaussian.std(0) > 1e-2).all()
