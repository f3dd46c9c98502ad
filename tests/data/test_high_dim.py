"""The any-dimension densities: log_prob against independent formulas, normalisers, and Monte Carlo checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import ctflows.data.mixtures as mixtures
from ctflows.data import get_density
from ctflows.data.many_well import ManyWell
from ctflows.errors import ConfigurationError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_mean_log_prob(name: str, lp: torch.Tensor, expected: float) -> None:
    """E_p[log p] from samples within 5 standard errors of an exact value (= minus the entropy)."""
    se = lp.std().item() / math.sqrt(len(lp))
    assert abs(lp.mean().item() - expected) < 5 * se, f"{name}: E[log p] = {lp.mean():.4f} ± {se:.4f}, expected {expected:.4f}"


# --- Gaussian mixture -----------------------------------------------------------------------------

def test_gaussian_mixture_matches_torch_distributions() -> None:
    d = get_density("gaussian_mixture")
    assert d.dim == 16 and d.means.shape == (8, 16) and d.covariances.shape == (8, 16, 16)
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=d.weights),
        torch.distributions.MultivariateNormal(d.means, covariance_matrix=d.covariances),
    )
    x = torch.cat([d.sample(300, gen(), torch.float64), 6 * torch.randn(100, 16, generator=gen(1), dtype=torch.float64)])
    torch.testing.assert_close(d.log_prob(x), mix.log_prob(x), rtol=1e-10, atol=1e-10)


def test_gaussian_mixture_is_deterministic_and_has_full_covariances() -> None:
    a, b, c = (get_density("gaussian_mixture", dim=5, n_components=3, seed=s) for s in (4, 4, 5))
    assert torch.equal(a.means, b.means) and torch.equal(a.covariances, b.covariances)
    assert not torch.equal(a.means, c.means)
    off_diagonal = a.covariances - torch.diag_embed(torch.diagonal(a.covariances, dim1=-2, dim2=-1))
    assert off_diagonal.abs().max() > 0.05
    assert torch.linalg.eigvalsh(a.covariances).min() > 0.08


def test_gaussian_mixture_sample_moments() -> None:
    d = get_density("gaussian_mixture", dim=4, n_components=3)
    x = d.sample(100_000, gen(2), torch.float64)
    w = d.weights
    mean = (w[:, None] * d.means).sum(0)
    second = (w[:, None, None] * (d.covariances + d.means[:, :, None] * d.means[:, None, :])).sum(0)
    cov = second - mean[:, None] * mean[None, :]
    se = torch.sqrt(torch.diagonal(cov) / len(x))
    assert ((x.mean(0) - mean).abs() < 5 * se).all()
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0.03, atol=0.05)


def test_gaussian_mixture_follows_its_documented_random_recipe() -> None:
    """Over 200 seeds (dim 2, 8 components): means ~ U[-4, 4], the covariances' standard deviations (square roots of
    their eigenvalues) ~ U[0.3, 1], and log-weights 0.5 ε - logsumexp with ε ~ N(0, 1), so that
    Σ_k (2 log π_k - mean)² = Σ_k (ε_k - ε̄)² ~ χ²(K - 1) for each seed."""
    k, seeds = 8, 200
    mixtures = [get_density("gaussian_mixture", dim=2, n_components=k, seed=s) for s in range(seeds)]
    means = torch.cat([m.means.reshape(-1) for m in mixtures]).numpy()
    stds = torch.cat([torch.linalg.eigvalsh(m.covariances).sqrt().reshape(-1) for m in mixtures]).numpy()
    assert means.min() >= -4 and means.max() <= 4 and stds.min() >= 0.3 - 1e-12 and stds.max() <= 1 + 1e-12
    assert stats.kstest(means, stats.uniform(-4, 8).cdf).pvalue > 1e-4
    assert stats.kstest(stds, stats.uniform(0.3, 0.7).cdf).pvalue > 1e-4
    twice_log_w = torch.stack([2 * torch.log(m.weights) for m in mixtures])  # [seeds, k]
    spread = ((twice_log_w - twice_log_w.mean(1, keepdim=True)) ** 2).sum().item()
    assert stats.chi2(seeds * (k - 1)).sf(spread) > 1e-4 and stats.chi2(seeds * (k - 1)).cdf(spread) > 1e-4


def test_a_one_component_mixture_is_its_gaussian() -> None:
    """n_components=1 (the smallest allowed): log_prob is that Gaussian's, and the weight is exactly 1."""
    d = get_density("gaussian_mixture", dim=3, n_components=1, seed=2)
    assert d.weights.tolist() == [1.0]
    gauss = torch.distributions.MultivariateNormal(d.means[0], covariance_matrix=d.covariances[0])
    x = d.sample(200, gen(), torch.float64)
    torch.testing.assert_close(d.log_prob(x), gauss.log_prob(x), rtol=1e-10, atol=1e-10)


def test_mixture_counts_and_seeds_may_be_numpy_or_0d_torch_integers() -> None:
    """n_components, seed and dim are whole numbers as check_dim reads them: np.int64(3) and torch.tensor(3) build
    the mixture 3 builds (n_components and seed were refused), and a bool is still refused."""
    same = get_density("gaussian_mixture", dim=2, n_components=3, seed=5)
    for cast in (np.int64, torch.tensor):
        other = get_density("gaussian_mixture", dim=cast(2), n_components=cast(3), seed=cast(5))
        assert other.dim == 2 and torch.equal(other.means, same.means) and torch.equal(other.covariances, same.covariances)
    for seed in (-(2**63), 2**64 - 1):  # the ends of the seeds torch takes
        assert get_density("gaussian_mixture", dim=2, n_components=2, seed=seed).dim == 2
    for bad in ({"n_components": np.bool_(True)}, {"seed": torch.tensor(True)}, {"n_components": torch.tensor([3])}):
        with pytest.raises(ConfigurationError, match="gaussian_mixture"):
            get_density("gaussian_mixture", **bad)


def test_mixture_sampler_keeps_the_largest_uniform_draw_in_the_last_component(monkeypatch: pytest.MonkeyPatch) -> None:
    """With seed 7 the cumulative weights end at 1 - 2^-52, below torch's largest uniform draw 1 - 2^-53: that draw
    must pick the last component, not an index past the end."""
    d = get_density("gaussian_mixture", dim=2, seed=7)
    assert torch.cumsum(d.weights, 0)[-1].item() < 1 - 2**-53  # the premise
    monkeypatch.setattr(mixtures, "rand", lambda shape, g, device: torch.full(shape, 1 - 2**-53, dtype=torch.float64))
    x = d.sample(4, gen(1), torch.float64)
    eps = torch.randn(4, 2, 1, generator=gen(1), dtype=torch.float64)  # the sampler's only other draw
    torch.testing.assert_close(x, d.means[-1] + (d._chol[-1] @ eps).squeeze(-1), rtol=1e-12, atol=1e-12)


def test_funnel_sampler_standardises_exactly() -> None:
    """v / 3 and x_i e^{-v/2} are independent N(0, 1): Kolmogorov–Smirnov, the latter on each side of the neck."""
    x = get_density("funnel", dim=5).sample(40_000, gen(7), torch.float64)
    v, u = x[:, 0], x[:, 1:] * torch.exp(-x[:, :1] / 2)
    assert stats.kstest((v / 3).numpy(), "norm").pvalue > 1e-4
    for part in (v < -3, v > 3):  # the neck and the mouth: the conditional scale must be e^{v/2} throughout
        assert stats.kstest(u[part].reshape(-1).numpy(), "norm").pvalue > 1e-4


# --- Funnel -----------------------------------------------------------------------------------------

def test_funnel_matches_the_direct_formula() -> None:
    d = get_density("funnel", dim=6)
    x = d.sample(500, gen(), torch.float64)
    v, rest = x[:, 0], x[:, 1:]
    expected = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 3.0).log_prob(v) + torch.distributions.Normal(
        torch.zeros_like(rest), torch.exp(v / 2)[:, None]
    ).log_prob(rest).sum(1)
    torch.testing.assert_close(d.log_prob(x), expected, rtol=1e-10, atol=1e-10)
    assert get_density("funnel").dim == 10


def test_funnel_log_prob_far_out_in_the_neck_and_mouth() -> None:
    # x_1² or e^{-v} overflows float64 alone where their product does not: the value is finite, or -inf, not NaN.
    def direct(v: float, xs: list[float]) -> float:  # in log space, where nothing overflows
        log_scaled = max(2 * math.log(abs(x)) - v for x in xs if x)  # one nonzero coordinate per case here
        return (-0.5 * (v / 3) ** 2 - math.log(3) - 0.5 * math.log(2 * math.pi) - 0.5 * math.exp(log_scaled)
                - len(xs) * (0.5 * v + 0.5 * math.log(2 * math.pi)))

    d = get_density("funnel", dim=3)
    x = torch.tensor([[800.0, 1e155, 0.0], [-800.0, 0.0, 1e-170], [800.0, 0.0, 0.0], [-800.0, 0.0, 0.0],
                      [0.0, 1e200, 1e200], [0.0, math.inf, 1.0], [0.0, math.nan, 1.0]], dtype=torch.float64)
    lp = d.log_prob(x)
    torch.testing.assert_close(lp[:2], torch.tensor([direct(800.0, [1e155, 0.0]), direct(-800.0, [0.0, 1e-170])],
                                                    dtype=torch.float64), rtol=1e-12, atol=0)
    assert torch.isfinite(lp[2:4]).all() and lp[4] == lp[5] == -math.inf and torch.isnan(lp[6])


def test_funnel_2d_integrates_to_one() -> None:
    """Nested quadrature: for each v, x over [-12, 12] standard deviations e^{v/2}."""
    d = get_density("funnel", dim=2)
    v = torch.linspace(-30, 30, 1201, dtype=torch.float64)
    u = torch.linspace(-12, 12, 481, dtype=torch.float64)
    x = u[None, :] * torch.exp(v / 2)[:, None]
    grid = torch.stack([v[:, None].expand_as(x), x], -1).reshape(-1, 2)
    dens = torch.exp(d.log_prob(grid)).reshape(len(v), len(u))
    inner = torch.trapezoid(dens, x, dim=1)
    assert abs(torch.trapezoid(inner, v).item() - 1.0) < 1e-6


def test_funnel_mean_log_prob_is_minus_entropy() -> None:
    dim = 10
    lp = get_density("funnel", dim=dim).log_prob(get_density("funnel", dim=dim).sample(50_000, gen(3), torch.float64))
    # H = H[v] + E_v H[x | v] = ½ log(2πe·9) + (dim-1)/2 · (log 2πe + E[v]),  E[v] = 0.
    entropy = 0.5 * math.log(2 * math.pi * math.e * 9) + 0.5 * (dim - 1) * math.log(2 * math.pi * math.e)
    assert_mean_log_prob("funnel", lp, -entropy)


# --- Twisted Gaussian ----------------------------------------------------------------------------------

def test_twisted_gaussian_matches_the_direct_formula() -> None:
    d = get_density("twisted_gaussian", dim=5, twist=0.1)
    y = d.sample(500, gen(), torch.float64)
    z = y.clone()
    z[:, 1] = y[:, 1] - 0.1 * (y[:, 0] ** 2 - 100.0)
    base = torch.distributions.MultivariateNormal(torch.zeros(5, dtype=torch.float64), torch.diag(torch.tensor([100.0, 1, 1, 1, 1], dtype=torch.float64)))
    torch.testing.assert_close(d.log_prob(y), base.log_prob(z), rtol=1e-10, atol=1e-10)


def test_twisted_gaussian_mean_log_prob_is_minus_entropy() -> None:
    d = get_density("twisted_gaussian", dim=8)
    lp = d.log_prob(d.sample(50_000, gen(4), torch.float64))
    entropy = 0.5 * 8 * math.log(2 * math.pi * math.e) + math.log(10.0)  # the shear keeps the entropy
    assert_mean_log_prob("twisted_gaussian", lp, -entropy)


# --- Many well -----------------------------------------------------------------------------------------

def test_many_well_normaliser_matches_adaptive_quadrature() -> None:
    z1, _ = integrate.quad(lambda t: math.exp(-(t**4) + 6 * t**2 + 0.5 * t), -np.inf, np.inf, epsabs=0, epsrel=1e-13)
    d = get_density("many_well")
    assert d.dim == 8
    assert abs(d.log_z1 - math.log(z1)) < 1e-12
    x = d.sample(200, gen(), torch.float64)
    expected = sum(
        -(x[:, i] ** 4) + 6 * x[:, i] ** 2 + 0.5 * x[:, i] - math.log(z1) - 0.5 * x[:, i + 1] ** 2 - 0.5 * math.log(2 * math.pi)
        for i in range(0, 8, 2)
    )
    torch.testing.assert_close(d.log_prob(x), expected, rtol=1e-10, atol=1e-10)


def test_many_well_rejection_sampler_is_exact() -> None:
    """Histogram of the double-well coordinate against bin probabilities from adaptive quadrature."""
    d = ManyWell(dim=4)
    x = d.sample(100_000, gen(5), torch.float64)
    wells = x[:, 0::2].reshape(-1).numpy()
    edges = np.linspace(-3.0, 3.0, 61)
    z1 = math.exp(d.log_z1)
    probs = np.array([integrate.quad(lambda t: math.exp(-(t**4) + 6 * t**2 + 0.5 * t) / z1, a, b)[0] for a, b in zip(edges[:-1], edges[1:])])
    counts = np.histogram(wells, edges)[0]
    expected = len(wells) * probs
    keep = expected > 5
    stat = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert stats.chi2.sf(stat, keep.sum() - 1) > 1e-4
    assert 0.4 < math.exp(-d._log_envelope) < 0.7  # acceptance rate of the rejection sampler


def test_many_well_mean_log_prob_matches_quadrature_entropy() -> None:
    d = get_density("many_well", dim=6)
    t = np.linspace(-6, 6, 200_001)
    log_p1 = -(t**4) + 6 * t**2 + 0.5 * t - d.log_z1
    entropy_1 = -np.trapezoid(np.exp(log_p1) * log_p1, t)
    entropy = 3 * (entropy_1 + 0.5 * math.log(2 * math.pi * math.e))
    assert_mean_log_prob("many_well", d.log_prob(d.sample(50_000, gen(6), torch.float64)), -entropy)


@pytest.mark.parametrize(
    "name, kwargs",
    [("many_well", {"dim": 3}), ("many_well", {"dim": 0}), ("funnel", {"dim": 1}), ("gaussian_mixture", {"dim": 2.5}),
     ("gaussian_mixture", {"n_components": 0}), ("gaussian_mixture", {"seed": 1.5}), ("gaussian_mixture", {"seed": True}),
     ("gaussian_mixture", {"seed": 2**64}), ("gaussian_mixture", {"seed": -(2**63) - 1}),  # beyond torch's seeds
     ("twisted_gaussian", {"scale": -1.0}), ("twisted_gaussian", {"scale": 0.0}), ("twisted_gaussian", {"scale": math.inf}),
     ("twisted_gaussian", {"twist": math.nan}), ("twisted_gaussian", {"twist": -math.inf}), ("twisted_gaussian", {"dim": 1}),
     # a flag is not a number (float(True) is 1.0), nor is a string
     ("twisted_gaussian", {"scale": True}), ("twisted_gaussian", {"twist": True}), ("twisted_gaussian", {"scale": "10"})],
)
def test_bad_settings_raise_configuration_error(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigurationError, match=name):
        get_density(name, **kwargs)


@pytest.mark.parametrize("name, dim, need", [("many_well", 3, "an even int >= 2"), ("many_well", 0, "an even int >= 2"),
                                             ("funnel", 1, "an int >= 2"), ("gaussian_mixture", 0, "an int >= 1")])
def test_a_bad_dimension_is_refused_saying_what_it_must_be(name: str, dim: int, need: str) -> None:
    """The message states the rule the density has: many_well's pairs need an even dim, the funnel a v and an x."""
    with pytest.raises(ConfigurationError, match=rf"^{name}: dim must be {need}, got {dim}$"):
        get_density(name, dim=dim)
