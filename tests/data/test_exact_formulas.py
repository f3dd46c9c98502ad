"""Each 2-D density's log_prob against an independent computation of the same definition."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy import integrate

from ctflows.data import get_density
from ctflows.data.curves import NoisyCurves
from ctflows.data.pinwheel import Pinwheel


def points(box: float, n: int = 400, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 0.5) * 2 * box


def test_eight_gaussians_matches_torch_distributions() -> None:
    d = get_density("eight_gaussians")
    angle = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centres = 2 * math.sqrt(2) * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.full((8,), 1 / 8, dtype=torch.float64)),
        torch.distributions.Independent(torch.distributions.Normal(centres, 0.5 / math.sqrt(2)), 1),
    )
    x = points(6.0)
    torch.testing.assert_close(d.log_prob(x), mix.log_prob(x), rtol=1e-12, atol=1e-12)


def test_checkerboard_values() -> None:
    d = get_density("checkerboard")
    x = torch.tensor([[-3.0, -3.0], [-1.0, -3.0], [1.0, 1.0], [3.0, 1.0], [-4.5, -3.0], [3.9, 3.9], [4.0, 3.0]])
    lp = d.log_prob(x)
    inside = math.log(1 / 32)
    expected = torch.tensor([inside, -math.inf, inside, -math.inf, -math.inf, inside, -math.inf])
    torch.testing.assert_close(lp, expected.float())


def test_checkerboard_squares_are_half_open_at_the_board_edge() -> None:
    # The board is [-4, 4)²: the left and bottom edges belong to it, the right and top edges do not, even
    # where the square they close is dark ((4, 0) and (0, 4) lie on dark squares' far edges).
    d = get_density("checkerboard")
    x = torch.tensor([[-4.0, -4.0], [-4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, -4.0], [-2.0, 4.0]], dtype=torch.float64)
    inside = math.log(1 / 32)
    expected = torch.tensor([inside, inside, -math.inf, -math.inf, -math.inf, -math.inf], dtype=torch.float64)
    torch.testing.assert_close(d.log_prob(x), expected)


def test_rings_match_a_direct_angular_integral() -> None:
    """(1/K) Σ_k (1/2π) ∫ N(x; r_k u(θ), σ²I) dθ by the periodic trapezoid rule (spectrally accurate)."""
    theta = torch.linspace(0, 2 * math.pi, 4097, dtype=torch.float64)[:-1]
    u = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    for name, radii, std in [("rings", (0.75, 1.5, 2.25, 3.0), 0.08), ("circles", (1.5, 3.0), 0.24)]:
        x = points(3.6, seed=1)
        dens = torch.zeros(len(x), dtype=torch.float64)
        for r in radii:
            sq = ((x[:, None, :] - r * u) ** 2).sum(-1)
            dens += torch.exp(-0.5 * sq / std**2).mean(1) / (2 * math.pi * std**2) / len(radii)
        keep = dens > 1e-200
        torch.testing.assert_close(get_density(name).log_prob(x)[keep], torch.log(dens[keep]), rtol=1e-9, atol=1e-9)


def midpoint_log_density(d: NoisyCurves, x: torch.Tensor, m: int) -> torch.Tensor:
    """log p(x) by the m-node midpoint rule in t, straight from the definition (1/A) Σ_arm ∫ w(t) N(x; c(t), σ²I) dt."""
    a, b = d.t_range
    t = a + (b - a) * (torch.arange(m, dtype=torch.float64) + 0.5) / m
    log_w = d.t_log_density(t) + math.log((b - a) / m)
    terms = [torch.logsumexp(log_w - 0.5 * ((x[:, None, :] - arm) ** 2).sum(-1) / d.std**2, dim=1) for arm in d.arms(t)]
    return torch.logsumexp(torch.stack(terms), 0) - math.log(len(terms)) - math.log(2 * math.pi * d.std**2)


def test_curve_densities_match_an_independent_fine_rule() -> None:
    """Against Richardson-extrapolated midpoint rules (10,000 and 20,000 nodes, error O(h⁴)) where log p > -30."""
    for name, box in [("two_moons", 4.0), ("swiss_roll", 4.0), ("two_spirals", 3.5)]:
        d = get_density(name)
        assert isinstance(d, NoisyCurves)
        x = torch.cat([points(box, 100, seed=2), d.sample(100, torch.Generator().manual_seed(3), torch.float64)])
        coarse, fine = midpoint_log_density(d, x, 10_000), midpoint_log_density(d, x, 20_000)
        ref = fine + torch.log((4 - torch.exp(coarse - fine)) / 3)  # p = (4 p_fine - p_coarse) / 3
        keep = ref > -30
        assert keep.sum() > 100
        torch.testing.assert_close(d.log_prob(x)[keep], ref[keep], rtol=0, atol=1e-7)


# The curves as docs/densities.md defines them, written out here independently of ctflows.data.curves:
# name -> (t range, noise std, arms(t) -> list of [2, *t.shape] points, parameter density w(t)); t a float or an array.
CurveSpec = tuple[tuple[float, float], float, Callable[..., list[np.ndarray]], Callable[[float], float]]
CURVE_SPECS: dict[str, CurveSpec] = {
    "two_moons": ((0.0, math.pi), 0.2,
                  lambda t: [np.array([2 * np.cos(t) - 1, 2 * np.sin(t) - 0.2]),
                             np.array([1 - 2 * np.cos(t), 0.8 - 2 * np.sin(t)])],
                  lambda t: 1 / math.pi),
    "swiss_roll": ((1.5 * math.pi, 4.5 * math.pi), 0.2,
                   lambda t: [np.array([t * np.cos(t), t * np.sin(t)]) / 5],
                   lambda t: 1 / (3 * math.pi)),
    "two_spirals": ((0.0, 3 * math.pi), 0.1,  # t = 3π√u, u ~ U[0, 1]: w(t) = 2t / (3π)²
                    lambda t: [sign * np.array([-t * np.cos(t), t * np.sin(t)]) / 3 for sign in (1, -1)],
                    lambda t: 2 * t / (3 * math.pi) ** 2),
}


def adaptive_log_density(spec: CurveSpec, x: np.ndarray) -> float:
    """log p(x) = log (1/A) Σ_arm ∫ w(t) N(x; c_arm(t), σ²I) dt by scipy's adaptive quadrature, relative error ~1e-13.

    The Gaussian is scaled by exp(m / 2σ²), m = the least squared distance on a grid, so nothing underflows.
    """
    (a, b), std, arms, w = spec
    s2 = std**2
    m = min(float(((x[:, None] - c) ** 2).sum(0).min()) for c in arms(np.linspace(a, b, 2001)))
    near_ends = [a + (b - a) * q for q in (1e-4, 1e-3, 1e-2, 0.99, 0.999, 0.9999)]
    total = sum(
        integrate.quad(lambda t: w(t) * math.exp(-(((x - arms(t)[k]) ** 2).sum() - m) / (2 * s2)), a, b,
                       epsabs=0, epsrel=1e-13, limit=2000, points=near_ends)[0]
        for k in range(len(arms(a)))
    )
    return math.log(total) - m / (2 * s2) - math.log(2 * math.pi * s2) - math.log(len(arms(a)))


def test_curve_densities_beyond_the_curve_ends() -> None:
    """Points 0.3, 1 and 2 past every arm's ends, along its tangent (log p down to -130): within 1e-8 of adaptive
    quadrature of the documented definition. There the integrand is a sharp half-peak at the end of [a, b]."""
    for name, spec in CURVE_SPECS.items():
        (a, b), _, arms, _ = spec
        points_ = []
        for end, inward in ((a, 1e-6), (b, -1e-6)):
            for centre, inside in zip(arms(end), arms(end + inward)):
                outward = (centre - inside) / np.linalg.norm(centre - inside)
                points_ += [centre + dist * outward for dist in (0.3, 1.0, 2.0)]
        x = np.stack(points_)
        ref = torch.tensor([adaptive_log_density(spec, p) for p in x], dtype=torch.float64)
        torch.testing.assert_close(get_density(name).log_prob(torch.from_numpy(x)), ref, rtol=0, atol=1e-8,
                                   msg=lambda m: f"{name}: {m}")


def test_pinwheel_map_is_volume_preserving_and_inverts() -> None:
    """The sampler's map f -> 2 R(-a(|f|)) f has |det J| = 4, and log_prob undoes it blob by blob."""
    d = Pinwheel()
    f = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.6 + torch.tensor([1.0, 0.0])

    def forward(v: torch.Tensor, k: int) -> torch.Tensor:
        a = 2 * math.pi * k / 5 + 0.25 * torch.exp(torch.linalg.vector_norm(v))
        c, s = torch.cos(a), torch.sin(a)
        return 2 * torch.stack([c * v[0] + s * v[1], -s * v[0] + c * v[1]])

    for k in range(5):
        for v in f[:10]:
            jac = torch.autograd.functional.jacobian(lambda u: forward(u, k), v)
            assert abs(torch.det(jac).item() - 4.0) < 1e-10
    x = torch.stack([forward(v, 0) for v in f])
    torch.testing.assert_close(d.log_prob(x), pinwheel_reference_log_prob(x, forward), rtol=1e-10, atol=1e-10)
    # Far out (|f| up to 8, log p down to -700) the angle 0.25 e^|f| is still resolved: no clamp may change it there.
    angle = torch.linspace(0, 2 * math.pi, 7, dtype=torch.float64)[:-1]
    far = torch.cat([r * torch.stack([torch.cos(0.1 * angle), torch.sin(0.1 * angle)], 1) for r in (4.0, 6.0, 8.0)])
    x = torch.stack([forward(v, int(k)) for k, v in enumerate(far)])
    expected = pinwheel_reference_log_prob(x, forward)
    assert expected.min() > -745 and expected.max() < -40  # representable, and far from the mass
    torch.testing.assert_close(d.log_prob(x), expected, rtol=1e-10, atol=0)


def pinwheel_reference_log_prob(x: torch.Tensor, forward: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
    """Change of variables: log Σ_k (1/5) N(f_k; (1, 0), diag(0.3², 0.1²)) - log |det J|, |det J| = 4, with f_k found
    by rotating x/2 back (checked: ``forward(f_k, k)`` gives x again); summed in log space, so far points keep a value."""
    y = x / 2
    rho = torch.linalg.vector_norm(y, dim=1)
    base = torch.distributions.Normal(torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.3, 0.1], dtype=torch.float64))
    terms = []
    for k in range(5):
        a = 2 * math.pi * k / 5 + 0.25 * torch.exp(rho)
        fk = torch.stack([torch.cos(a) * y[:, 0] - torch.sin(a) * y[:, 1], torch.sin(a) * y[:, 0] + torch.cos(a) * y[:, 1]], 1)
        # (far out the angle, hundreds of radians, carries an error of ~1e-13 rad per unit of radius: 1e-11 here)
        torch.testing.assert_close(torch.stack([forward(v, k) for v in fk]), x, rtol=1e-9, atol=1e-9)
        terms.append(base.log_prob(fk).sum(1))
    return torch.logsumexp(torch.stack(terms), 0) - math.log(5) - math.log(4)


def test_far_points_get_finite_log_densities() -> None:
    far = torch.tensor([[30.0, -20.0], [0.0, 50.0]], dtype=torch.float64)
    for name in ["eight_gaussians", "rings", "circles", "two_moons", "swiss_roll", "two_spirals", "pinwheel"]:
        lp = get_density(name).log_prob(far)
        assert torch.isfinite(lp).all() and (lp < -100).all(), name
    assert np.isneginf(get_density("checkerboard").log_prob(far).numpy()).all()


def test_infinite_points_get_minus_infinity_and_nan_stays_nan() -> None:
    """An infinite coordinate gives -inf, but a row with a NaN gives NaN even when it also holds an infinity."""
    x = torch.tensor([[math.inf, 0.0], [0.0, -math.inf], [-math.inf, math.inf], [math.nan, 1.0], [math.inf, math.nan]],
                     dtype=torch.float64)
    for name in ["eight_gaussians", "checkerboard", "rings", "circles", "two_moons", "swiss_roll", "two_spirals", "pinwheel"]:
        lp = get_density(name).log_prob(x)
        assert torch.isneginf(lp[:3]).all() and torch.isnan(lp[3:]).all(), name
