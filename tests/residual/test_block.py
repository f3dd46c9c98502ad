"""ResidualBlock: fixed-point inverse (accuracy, failure, implicit gradients), honest stats, configuration, checkpoints."""
from __future__ import annotations

import re

import pytest
import torch

import ctflows
from ctflows.core import Inverse
from ctflows.errors import ConfigurationError, SolverError
from ctflows.models.residual import resflow
from ctflows.residual import ResidualBlock, fixed_point_inverse
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
    for part in ("ResidualBlock", "3 of at most 3 iterations", "tolerance 1e-12", "largest relative step", "coefficient"):
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
