"""The log-det estimators of I + J_g against the exact log-det: exact, power series, Russian roulette, Neumann gradient."""
from __future__ import annotations

import math

import pytest
import torch

from ctflows.continuous.divergence import sample_noise
from ctflows.errors import ConfigurationError
from ctflows.residual import (
    LipschitzMLP,
    Truncation,
    exact_logdet,
    power_series_logdet,
    resolve_logdet,
    russian_roulette_logdet,
)

D = 3


def branch(align, coefficient: float) -> LipschitzMLP:
    """An eval-mode branch D -> 16 -> D with ‖J_g‖₂ close to its bound c² (see conftest.align)."""
    torch.manual_seed(0)
    return align(LipschitzMLP(D, (16,), coefficient=coefficient).double())


def points(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def jacobians(g: LipschitzMLP, x: torch.Tensor) -> torch.Tensor:
    return torch.func.vmap(torch.func.jacrev(lambda p: g(p.unsqueeze(0)).squeeze(0)))(x).detach()


def brute_force_logdet(g: LipschitzMLP, x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.slogdet(torch.eye(D, dtype=x.dtype) + jacobians(g, x)).logabsdet


def graph(g: LipschitzMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_()
    return g(x), x


def test_exact_logdet_matches_brute_force_jacobian(aligned):
    g, x = branch(aligned, 0.95), points()
    gx, xg = graph(g, x)
    torch.testing.assert_close(exact_logdet(gx, xg), brute_force_logdet(g, x), atol=1e-12, rtol=0)


def test_auto_is_exact_for_small_dimensions_only():
    assert resolve_logdet("auto", 8) == "exact"
    assert resolve_logdet("auto", 9) == "russian_roulette"
    with pytest.raises(ConfigurationError, match="estimator"):
        resolve_logdet("hutchinson", 2)


def truncated_series(g, x, terms: int) -> torch.Tensor:
    """Σ_{k≤n} (-1)^{k+1} tr(J^k)/k through power_series_logdet itself: probes e_1..e_D summed give the traces."""
    gx, xg = graph(g, x)
    eye = torch.eye(D, dtype=x.dtype)
    return sum(power_series_logdet(gx, xg, eye[i].expand_as(x), terms) for i in range(D))


def linear_map(seed: int = 7) -> torch.Tensor:
    """A [D, D] matrix A with ‖A‖₂ = 0.6 and no symmetry: g(x) = A x has the Jacobian A everywhere."""
    a = torch.randn(D, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return 0.6 * a / torch.linalg.matrix_norm(a, ord=2)


@pytest.mark.parametrize("terms", [1, 2, 3, 6])
def test_power_series_of_a_linear_map_is_the_truncated_trace_series_and_differentiable(terms):
    """For g(x) = A x the basis probes give Σ_{k≤n} (-1)^{k+1} tr(A^k)/k exactly, with n = ``terms`` (not one
    term fewer), and with ``create_graph`` its gradient in A is that of the closed form (i-ResNet trains it)."""
    a = linear_map().requires_grad_()
    x = points(2).requires_grad_()
    gx = x @ a.T
    eye = torch.eye(D, dtype=torch.float64)
    series = sum(power_series_logdet(gx, x, eye[i].expand_as(x), terms, create_graph=True) for i in range(D))
    closed = sum((-1) ** (k + 1) / k * torch.trace(torch.linalg.matrix_power(a, k)) for k in range(1, terms + 1))
    torch.testing.assert_close(series, closed.expand(2), atol=1e-14, rtol=0)
    (grad,) = torch.autograd.grad(series.sum(), a)
    (expected,) = torch.autograd.grad(2 * closed, a)
    torch.testing.assert_close(grad, expected, atol=1e-14, rtol=0)


def test_power_series_error_decays_geometrically_at_the_theoretical_rate(aligned):
    """|error after n terms| ≤ D·L^{n+1}/((n+1)(1-L)) with L = ‖J‖₂ (Behrmann et al. 2019, Thm 3), and the
    error's measured decay rate is the spectral radius ρ(J) ≤ L. Measured here: L = 0.77–0.84, fitted rates
    within 0.07% of ρ = 0.77–0.84, errors from 0.23–0.27 (n = 1) down to 3e-7–9e-6 (n = 40)."""
    g, x = branch(aligned, 0.95), points()
    exact = brute_force_logdet(g, x)
    jac = jacobians(g, x)
    lip = torch.linalg.matrix_norm(jac, ord=2)
    rho = torch.linalg.eigvals(jac).abs().max(dim=1).values
    assert (lip < 0.95**2 + 1e-9).all() and lip.max() > 0.6  # a slowly converging series
    ns = list(range(1, 41))
    errors = torch.stack([(truncated_series(g, x, n) - exact).abs() for n in ns])  # [n, B]
    for n, err in zip(ns, errors):
        bound = D * lip ** (n + 1) / ((n + 1) * (1 - lip))
        assert (err <= bound).all(), (n, err, bound)
    # The tail Σ_{k>n} (-1)^{k+1} tr(J^k)/k behaves like ρ^n/n: fit log((n+1)·|err|) = a + n log r over n = 15..40.
    n = torch.tensor(ns[14:], dtype=torch.float64)
    design = torch.stack([torch.ones_like(n), n], dim=1)
    for b in range(x.shape[0]):
        target = torch.log((n + 1) * errors[14:, b])
        slope = torch.linalg.lstsq(design, target.unsqueeze(1)).solution[1, 0]
        assert math.exp(slope) == pytest.approx(rho[b].item(), rel=0.01)
        assert math.exp(slope) <= lip[b].item()


def test_power_series_with_hutchinson_is_unbiased_for_the_truncated_series(aligned):
    g, x = branch(aligned, 0.9), points()
    target = truncated_series(g, x, 5)
    reps = 50
    xr = x.repeat(reps, 1)
    draws = []
    torch.manual_seed(2)
    for _ in range(100):
        gx, xg = graph(g, xr)
        draws.append(power_series_logdet(gx, xg, sample_noise(xr), 5).detach().view(reps, -1).mean(0))
    draws = torch.stack(draws)
    se = draws.std(0) / math.sqrt(draws.shape[0])
    assert ((draws.mean(0) - target).abs() <= 4 * se).all()


def roulette_draws(g, x, truncation: Truncation, draws: int, reps: int, generator: torch.Generator) -> torch.Tensor:
    """``[draws, B]``: each row one call (one N shared by the batch), averaged over ``reps`` probes per point."""
    xr = x.repeat(reps, 1)
    out = []
    for _ in range(draws):
        gx, xg = graph(g, xr)
        n = truncation.sample(generator)
        noise = sample_noise(xr, generator=generator)
        out.append(russian_roulette_logdet(gx, xg, noise, truncation, n).detach().view(reps, -1).mean(0))
    return torch.stack(out)


@pytest.mark.parametrize(
    "truncation",
    [Truncation(), Truncation("geometric", mean_extra=2.0, min_terms=0), Truncation("poisson", mean_extra=2.0, min_terms=1)],
    ids=["geometric_default", "geometric_no_min", "poisson"],
)
def test_russian_roulette_is_unbiased(aligned, truncation):
    """Mean of 400 calls within 4 standard errors of the exact log-det at every point. Lip(g) ≤ 0.8² = 0.64 < √0.5,
    where the default geometric tail has finite variance (measured |z| ≤ 1.4). The same test flags the
    series truncated after min_terms terms (its bias is 5.4–26 standard errors here): it can see a bias."""
    g, x = branch(aligned, 0.8), points()
    exact = brute_force_logdet(g, x)
    draws = roulette_draws(g, x, truncation, 400, 20, torch.Generator().manual_seed(3))
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])
    assert ((mean - exact).abs() <= 4 * se).all(), ((mean - exact) / se)
    biased = truncated_series(g, x, truncation.min_terms or 1)
    assert ((biased - exact).abs() > 5 * se).all()


def test_truncation_survival_and_sampling_agree():
    for truncation in (Truncation(), Truncation("poisson", mean_extra=1.5, min_terms=1)):
        gen = torch.Generator().manual_seed(4)
        ns = torch.tensor([truncation.sample(gen) for _ in range(20000)])
        assert (ns >= truncation.min_terms).all()
        assert ns.double().mean().item() == pytest.approx(truncation.mean_terms, abs=0.05)
        for k in range(truncation.min_terms, truncation.min_terms + 5):
            assert (ns >= k).double().mean().item() == pytest.approx(truncation.survival(k), abs=0.015)
    with pytest.raises(ConfigurationError):
        Truncation("uniform")


@pytest.mark.parametrize("mean_extra", [0.5, 3.0, 300.0, 600.0])
def test_poisson_survival_is_the_poisson_tail_for_any_mean(mean_extra):
    # P(N >= k) = P(M >= k - min_terms) for M ~ Poisson(λ): scipy's tail as the reference, from the bulk to
    # tails far below float64's 1 - CDF resolution (a fixed window of terms lost the mass of a large λ).
    from scipy.stats import poisson

    truncation = Truncation("poisson", mean_extra=mean_extra, min_terms=2)
    for m in sorted({1, 2, int(mean_extra), int(mean_extra + 10 * math.sqrt(mean_extra)) + 1, int(3 * mean_extra) + 30}):
        assert truncation.survival(2 + m) == pytest.approx(poisson.sf(m - 1, mean_extra), rel=1e-9), m


def test_neumann_gradient_is_unbiased_for_the_exact_gradient(aligned):
    """E[∇_θ and ∇_x of the estimator with the Neumann-series gradient] = ∇ log det(I + J_g), elementwise within
    5 standard errors (over 400 calls; measured max |z| 2.4 over 134 entries, 3 of them exactly 0 with no
    variance: the output bias does not enter J), and the mean gradient within 3% of the exact one."""
    g, x = branch(aligned, 0.8), points()
    params = [p for p in g.parameters()]
    xg = x.clone().requires_grad_()
    exact = torch.autograd.grad(exact_logdet(g(xg), xg, create_graph=True).sum(), [xg, *params], materialize_grads=True)
    exact = torch.cat([e.flatten() for e in exact])
    reps, truncation, gen = 20, Truncation(), torch.Generator().manual_seed(5)
    draws = []
    for _ in range(400):
        xr = xg.detach().repeat(reps, 1).requires_grad_()
        gx = g(xr)
        n = truncation.sample(gen)
        estimate = russian_roulette_logdet(gx, xr, sample_noise(xr, generator=gen), truncation, n, neumann_gradient=True)
        grads = torch.autograd.grad(estimate.sum() / reps, [xr, *params], materialize_grads=True)
        x_grad = grads[0].view(reps, *x.shape).sum(0)
        draws.append(torch.cat([x_grad.flatten(), *(p.flatten() for p in grads[1:])]))
    draws = torch.stack(draws)
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])
    assert ((mean - exact).abs() <= 5 * se + 1e-12).all()
    assert ((mean - exact).norm() / exact.norm()).item() < 0.05


def test_neumann_gradient_leaves_the_estimate_unchanged(aligned):
    g, x = branch(aligned, 0.8), points()
    noise = sample_noise(x, generator=torch.Generator().manual_seed(6))
    values = []
    for neumann in (False, True):
        gx, xg = graph(g, x)
        values.append(russian_roulette_logdet(gx, xg, noise, Truncation(), 5, neumann_gradient=neumann))
    torch.testing.assert_close(values[0], values[1].detach(), atol=1e-14, rtol=0)
