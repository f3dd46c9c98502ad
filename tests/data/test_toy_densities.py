"""Properties every 2-D toy density must have: normalised, sampler agrees with log_prob, reproducible, pointwise.

Bin probabilities come from 8×8 Gauss–Legendre nodes per histogram bin, so the same numbers serve the
normalisation check (sum ≈ 1) and the chi-square test of the sampler against the density.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pytest
import torch
from scipy import stats

from ctflows.data import ToyDensity, get_density, list_densities
from ctflows.data.density import check_dim
from ctflows.errors import InputError


@dataclass(frozen=True)
class Case:
    name: str
    box: tuple[float, float, float, float]  # x_lo, x_hi, y_lo, y_hi: holds all but a negligible mass
    kwargs: dict = field(default_factory=dict, hash=False)

    @property
    def id(self) -> str:
        return self.name + "".join(f"-{k}{v}" for k, v in self.kwargs.items())

    def density(self) -> ToyDensity:
        return get_density(self.name, **self.kwargs)


CASES = [
    Case("eight_gaussians", (-5.5, 5.5, -5.5, 5.5)),
    Case("checkerboard", (-4.0, 4.0, -4.0, 4.0)),  # 32 bins: edges at multiples of 1/4, aligned with the squares
    Case("rings", (-3.75, 3.75, -3.75, 3.75)),
    Case("circles", (-5.0, 5.0, -5.0, 5.0)),
    Case("two_moons", (-4.5, 4.5, -3.0, 3.5)),
    Case("swiss_roll", (-4.5, 4.5, -4.5, 4.5)),
    Case("two_spirals", (-4.0, 4.0, -4.0, 4.0)),
    Case("pinwheel", (-6.0, 6.0, -6.0, 6.0)),
    Case("gaussian_mixture", (-9.0, 9.0, -9.0, 9.0), {"dim": 2}),
    Case("twisted_gaussian", (-5.5, 5.5, -7.0, 30.0), {"dim": 2, "scale": 1.0, "twist": 1.0}),
    Case("twisted_gaussian", (-55.0, 55.0, -8.0, 85.0), {"dim": 2}),
    Case("many_well", (-3.5, 3.5, -6.0, 6.0), {"dim": 2}),
]
BINS = 32
ORDER = 8
N_SAMPLES = 200_000


def case_params():
    return [pytest.param(c, id=c.id) for c in CASES]


@lru_cache(maxsize=None)
def bin_probabilities(case: Case) -> np.ndarray:
    """∫ p over each of BINS × BINS cells of the box, by ORDER × ORDER Gauss–Legendre nodes per cell."""
    x_lo, x_hi, y_lo, y_hi = case.box
    gx, gw = np.polynomial.legendre.leggauss(ORDER)

    def axis(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        h = (hi - lo) / BINS
        nodes = lo + h * (np.arange(BINS)[:, None] + 0.5 * (gx[None, :] + 1))
        return nodes.ravel(), np.tile(0.5 * h * gw, BINS)

    (xs, xw), (ys, yw) = axis(x_lo, x_hi), axis(y_lo, y_hi)
    grid = torch.tensor(np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2))
    dens = torch.exp(case.density().log_prob(grid)).numpy().reshape(len(xs), len(ys))
    cell = dens * xw[:, None] * yw[None, :]
    return cell.reshape(BINS, ORDER, BINS, ORDER).sum(axis=(1, 3))


@pytest.mark.parametrize("case", case_params())
def test_density_integrates_to_one(case: Case) -> None:
    total = bin_probabilities(case).sum()
    assert abs(total - 1.0) < 2e-3, f"{case.id}: ∫ exp(log_prob) over the box = {total}"


@pytest.mark.parametrize("case", case_params())
def test_samples_follow_the_density(case: Case) -> None:
    """Chi-square test of sample counts per bin against the bins' probabilities under log_prob."""
    probs = bin_probabilities(case).ravel()
    x = case.density().sample(N_SAMPLES, generator=torch.Generator().manual_seed(123), dtype=torch.float64).numpy()
    x_lo, x_hi, y_lo, y_hi = case.box
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=BINS, range=[[x_lo, x_hi], [y_lo, y_hi]])
    counts = counts.ravel()
    expected = N_SAMPLES * probs
    big = expected >= 5
    # Pool sparse bins with the outside of the box so that every cell's chi-square term is well behaved.
    rest_observed = N_SAMPLES - counts[big].sum()
    rest_expected = N_SAMPLES * (probs[~big].sum() + max(0.0, 1.0 - probs.sum()))
    observed, expect = counts[big], expected[big]
    if rest_expected >= 1:
        observed, expect = np.append(observed, rest_observed), np.append(expect, rest_expected)
    else:  # nearly all mass is in well-filled bins (e.g. the checkerboard): few samples may land elsewhere
        assert rest_observed <= 5, f"{case.id}: {rest_observed} samples where the density expects {rest_expected:.2f}"
    stat = ((observed - expect) ** 2 / expect).sum()
    p_value = stats.chi2.sf(stat, len(observed) - 1)
    assert p_value > 1e-4, f"{case.id}: chi2 = {stat:.1f} on {len(observed) - 1} dof (p = {p_value:.2e})"


@pytest.mark.parametrize("case", case_params())
def test_samples_are_reproducible_and_use_only_the_generator(case: Case) -> None:
    d = case.density()
    torch.manual_seed(0)
    np.random.seed(0)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    a = d.sample(500, generator=torch.Generator().manual_seed(7))
    b = d.sample(500, generator=torch.Generator().manual_seed(7))
    c = d.sample(500, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), torch_state), "sample() touched torch's global generator"
    assert np.array_equal(np.random.get_state()[1], numpy_state), "sample() touched numpy's global generator"
    torch.manual_seed(3)
    first = d.sample(100)
    torch.manual_seed(3)
    assert torch.equal(first, d.sample(100)), "generator=None must use torch's default generator"


@pytest.mark.parametrize("case", case_params())
def test_dtype_and_device_follow_the_arguments(case: Case) -> None:
    d = case.density()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    x32 = d.sample(64, generator=g())
    x64 = d.sample(64, generator=g(), dtype=torch.float64, device="cpu")
    assert x32.shape == (64, 2) and x32.dtype == torch.float32 and x64.dtype == torch.float64
    assert x32.device.type == "cpu" and x64.device.type == "cpu"
    torch.testing.assert_close(x32, x64.float())  # same seed, same points, whatever the dtype
    assert d.log_prob(x32).dtype == torch.float32 and d.log_prob(x32).shape == (64,)
    assert d.log_prob(x64).dtype == torch.float64
    torch.testing.assert_close(d.log_prob(x64).float(), d.log_prob(x64.float()), rtol=1e-4, atol=1e-4)
    assert d.sample(0).shape == (0, 2) and d.log_prob(torch.empty(0, 2)).shape == (0,)
    # Drawn on the generator's device (the CPU), then moved to ``device``: "meta" checks the move without a GPU.
    assert d.sample(4, generator=g(), device="meta").device.type == "meta"


@pytest.mark.cuda
@pytest.mark.parametrize("case", case_params())
def test_cuda(case: Case) -> None:
    d = case.density()
    x = d.sample(256, generator=torch.Generator(device="cuda").manual_seed(0))
    assert x.device.type == "cuda"
    lp = d.log_prob(x)
    assert lp.device.type == "cuda"
    torch.testing.assert_close(lp.cpu(), d.log_prob(x.cpu()), rtol=1e-5, atol=1e-5)
    assert d.sample(8, device="cuda").device.type == "cuda"


@pytest.mark.parametrize("case", case_params())
def test_log_prob_is_pointwise(case: Case) -> None:
    # Nothing may depend on the rest of the batch (a shared normaliser, a batch-wide clamp); its speed on
    # 10,000 points is measured by benchmarks/toy_densities.py, not asserted here.
    d = case.density()
    x = d.sample(32, generator=torch.Generator().manual_seed(0))
    x[0] = torch.tensor([60.0, -60.0])  # a far point in the batch must not change the others' values
    one_by_one = torch.cat([d.log_prob(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(d.log_prob(x), one_by_one, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", case_params())
@pytest.mark.parametrize(
    "bad",
    [torch.zeros(5), torch.zeros(5, 3), torch.zeros(2, 5, 2), torch.zeros(5, 2, dtype=torch.long),
     torch.zeros(5, 2, dtype=torch.int32), torch.zeros(5, 2, dtype=torch.bool)],
    ids=["1d", "dim3", "3d", "int", "int32", "bool"],
)
def test_bad_input_raises_input_error(case: Case, bad: torch.Tensor) -> None:
    with pytest.raises(InputError, match=rf"{case.name}.*\[n, 2\]|{case.name}.*floating"):
        case.density().log_prob(bad)


def test_non_tensor_input_raises_input_error() -> None:
    with pytest.raises(InputError, match=r"two_moons.*\[n, 2\]"):
        get_density("two_moons").log_prob(np.zeros((3, 2)))  # type: ignore[arg-type]


def test_float32_checkerboard_samples_stay_on_the_dark_squares() -> None:
    # In float64 a sample may lie within 2^-24 of a square's upper edge; cast to float32 it used to land on
    # the edge itself (a light square or off the board: log p = -inf, KL = -inf), about once in 10^7 points.
    density = get_density("checkerboard")
    for seed in (0, 8):
        x = density.sample(2_000_000, generator=torch.Generator().manual_seed(seed))
        assert x.dtype == torch.float32 and torch.isfinite(density.log_prob(x)).all()
    x64 = density.sample(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x32 = density.sample(1000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x32, x64.float())  # everywhere else the cast is the ordinary one


@pytest.mark.parametrize("name", sorted(list_densities()))
def test_far_away_finite_points_get_a_number_or_minus_inf_never_nan(name: str) -> None:
    # NaN is for NaN input only; far out in the tails overflow must not turn into inf - inf or 0 * inf.
    density = get_density(name, **({"dim": 2} if name in ("funnel", "gaussian_mixture", "twisted_gaussian", "many_well") else {}))
    far = torch.tensor([[1e3, 0.0], [1.5e3, 0.0], [-750.0, 0.0], [-750.0, 1.0], [0.0, -1e5], [1e30, 5.0], [-1e300, 1e300]],
                       dtype=torch.float64)
    log_p = density.log_prob(far)
    assert not torch.isnan(log_p).any(), log_p
    assert (log_p < 0).all()  # far from every density's mass


@pytest.mark.parametrize("case", case_params())
@pytest.mark.parametrize(
    "n, dtype, match",
    [(-1, torch.float32, "non-negative int, got -1"), (True, torch.float32, "non-negative int, got True"),
     (2.0, torch.float32, "non-negative int, got 2.0"), (3, torch.int64, "floating-point dtype, got torch.int64"),
     (3, torch.bool, "floating-point dtype, got torch.bool"), (3, torch.int32, "floating-point dtype, got torch.int32"),
     (3, "float32", "floating-point dtype, got 'float32'"), (3, np.float32, "floating-point dtype, got <class 'numpy.float32'>")],
    ids=["negative", "bool", "float", "int-dtype", "bool-dtype", "int32-dtype", "str-dtype", "numpy-dtype"],
)
def test_sample_refuses_bad_counts_and_dtypes(case: Case, n: object, dtype: torch.dtype, match: str) -> None:
    """A count that is not a non-negative int, or a non-float dtype, is an InputError naming the density."""
    with pytest.raises(InputError, match=rf"{case.name}: .*{match}"):
        case.density().sample(n, generator=torch.Generator().manual_seed(0), dtype=dtype)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", case_params())
def test_log_prob_is_detached_from_its_input(case: Case) -> None:
    """log_prob is documented as not differentiable: x is detached, so no graph reaches back to x."""
    d = case.density()
    x = d.sample(8, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_()
    assert not d.log_prob(x).requires_grad


def test_sizes_of_numpy_or_torch_integers_are_taken_as_the_ints_they_equal() -> None:
    """A sample size or a dimension is a count like any other: np.int64(5) and torch.tensor(5) draw what 5 draws
    (both were refused as "must be a non-negative int"), and a bool still is refused."""
    density = get_density("two_moons")
    same = density.sample(5, generator=torch.Generator().manual_seed(0))
    for n in (np.int64(5), torch.tensor(5)):
        assert torch.equal(density.sample(n, generator=torch.Generator().manual_seed(0)), same)
    with pytest.raises(InputError, match="non-negative int, got True"):
        density.sample(True)
    assert check_dim("Funnel", np.int64(4), minimum=2) == 4 and type(check_dim("Funnel", torch.tensor(4))) is int
