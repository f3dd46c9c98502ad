"""Bits per dimension against hand calculations, and dequantization's contract."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ctflows.continuous import CNF
from ctflows.core import Chain, Flow, StandardNormal
from ctflows.core.distributions import Distribution
from ctflows.core.transform import Transform, sum_except_batch, zeros_logdet
from ctflows.errors import ConfigurationError, DataError, InputError
from ctflows.image import ConvTimeField, DequantizedImages, ImageView, Logit, bits_per_dim, dequantize, multiscale_glow
from ctflows.image.fields import ConcatSquashConv2d
from ctflows.image.glow import ConvAffineCoupling
from ctflows.training import evaluate

SHAPE = (1, 4, 4)


class StandardLogistic(Distribution):
    """log p(z) = Σ log σ(z) + log σ(-z): the density of logit(U) for U uniform on (0, 1)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = shape
        self.register_buffer("_anchor", torch.zeros(()))  # so that .double() makes the model float64

    def log_prob(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return sum_except_batch(F.logsigmoid(z) + F.logsigmoid(-z))


class RampOnCube(Distribution):
    """The base whose pull-back through ``Logit(alpha=0)`` is ``q(x) = Π 2 x_i`` on the unit cube.

    ``p(z) = q(σ(z)) σ(z) σ(-z) = 2 σ(z)² σ(-z)``, so ``log p(z) = log 2 + 2 log σ(z) + log σ(-z)``.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = shape
        self.register_buffer("_anchor", torch.zeros(()))

    def log_prob(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return sum_except_batch(math.log(2) + 2 * F.logsigmoid(z) + F.logsigmoid(-z))


def random_images(levels: int, n: int = 50, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    return torch.randint(0, levels, (n, *shape), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_bits_per_dim_is_the_dequantization_bound_above_the_discrete_bits() -> None:
    """With q(x) = Π 2 x_i, P(k) = Π (2k_i + 1) / L² in closed form, and the dequantized estimate has mean
    -(log 2 + E_u log(k + u) - 2 log L) / ln 2 per pixel, E_u log(k + u) = (k+1) log(k+1) - k log k - 1:
    bits_per_dim must estimate that mean without bias, and it lies above the exact discrete bits (Jensen)."""
    levels = 4
    flow = Flow(Logit(SHAPE, alpha=0.0), RampOnCube(SHAPE)).double()
    images = random_images(levels, n=4000)
    result = bits_per_dim(flow, images, levels, seed=5)
    k = images.double()
    mean_log_k_plus_u = torch.xlogy(k + 1, k + 1) - torch.xlogy(k, k) - 1
    bound_bpd = float(-(math.log(2) + mean_log_k_plus_u - 2 * math.log(levels)).mean() / math.log(2))
    exact_bpd = float(-torch.log((2 * k + 1) / levels**2).mean() / math.log(2))
    assert abs(result["bpd"] - bound_bpd) < 4 * result["bpd_se"], (result, bound_bpd)
    assert result["bpd"] > exact_bpd + 10 * result["bpd_se"]  # an upper bound, and a loose one at L = 4


def test_dequantization_noise_fills_each_cell_uniformly() -> None:
    """u = L x - k is uniform on [0, 1): each of 1000 equal bins (the top one included) holds ~1/1000 of the draws."""
    levels, bins = 5, 1000
    images = torch.randint(0, levels, (1000, 1, 25, 40), generator=torch.Generator().manual_seed(0))
    x = dequantize(images, levels, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u = x * levels - images
    counts = torch.histc(u, bins=bins, min=0.0, max=1.0)
    expected = u.numel() / bins
    assert float((counts - expected).abs().max()) < 7 * math.sqrt(expected), counts


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([[0.0, 2.5], [1.0, 3.0]]), r"integers in \[0, 3\]"),  # inside the range but not an integer
    (torch.tensor([[0.0, -1.0], [1.0, 3.0]]), r"integers in \[0, 3\]"),  # an integer below 0
    (torch.zeros(0, 1, 2, 2), r"non-empty Tensor"),
    (torch.zeros(4), r"non-empty Tensor \[N, C, H, W\]"),
])
def test_dequantize_refuses_pixels_that_are_no_level(bad: torch.Tensor, message: str) -> None:
    """Only integer k in {0, …, L-1} have a cell [k, k+1)/L in the unit cube."""
    with pytest.raises(DataError, match=message):
        dequantize(bad, 4)
    with pytest.raises(DataError, match=message):
        DequantizedImages(bad, 4)


def test_loader_yields_every_image_once_per_pass_in_a_fresh_order() -> None:
    """Image i is constant at level i, so floor(L x) tells which image each dequantized batch row came from."""
    n = 10
    images = torch.arange(n).reshape(n, 1, 1, 1).expand(n, 1, 2, 2)
    loader = DequantizedImages(images, n, batch_size=4, seed=0)
    orders = []
    for _ in range(2):
        x = torch.cat(list(loader))
        cells = torch.floor(x * n).long()
        assert torch.equal(cells, cells[:, :1, :1, :1].expand_as(cells))  # each row is one whole image
        orders.append(cells[:, 0, 0, 0].tolist())
    assert all(sorted(order) == list(range(n)) for order in orders)
    assert orders[0] != list(range(n)) and orders[0] != orders[1]  # shuffled, and anew each pass


def test_bits_per_dim_passes_its_probes_to_a_hutchinson_log_det() -> None:
    """bits_per_dim(probes=K) is evaluate's K-probe estimate (not a one-probe one) for a CNF with an estimated trace."""
    shape, levels = (1, 2, 2), 4
    torch.manual_seed(0)
    cnf = CNF(ConvTimeField(shape, (4,), activation="tanh"), eval_divergence="hutchinson", eval_atol=1e-6, eval_rtol=1e-6)
    with torch.no_grad():
        for p in cnf.parameters():
            p.add_(0.5 * torch.randn_like(p))
    flow = Flow(Chain(Logit(shape), ImageView(cnf, shape)), StandardNormal(shape)).double()
    images = torch.randint(0, levels, (8, *shape), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)  # the probes' noise comes from torch's global generator: the same for each call
    many = bits_per_dim(flow, images, levels, probes=3)
    torch.manual_seed(1)
    assert many["bpd"] == pytest.approx(evaluate(flow, images, levels=levels, seed=0, probes=3)["bpd"], rel=1e-12)
    torch.manual_seed(1)
    assert many["bpd"] != pytest.approx(bits_per_dim(flow, images, levels, probes=1)["bpd"], rel=1e-9)
    assert not many["exact"]


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_uniform_model_gives_log2_levels(levels: int) -> None:
    # logit with α = 0 and a logistic base: q = 1 on the unit cube, so P(k) = L^-D exactly.
    flow = Flow(Logit(SHAPE, alpha=0.0), StandardLogistic(SHAPE)).double()
    result = bits_per_dim(flow, random_images(levels), levels)
    assert result["bpd"] == pytest.approx(math.log2(levels), abs=1e-9)
    assert result["bpd_se"] == pytest.approx(0.0, abs=1e-9) and result["exact"]
    assert result["dims"] == math.prod(SHAPE) and result["n"] == 50  # D is per image (C·H·W), not the whole batch


@pytest.mark.parametrize("shape", [SHAPE, (3, 2, 2)])
def test_logit_margin_enters_bits_per_dim(shape: tuple[int, ...]) -> None:
    # With α > 0 the same model has q(x) = (1 - 2α)^D on the cube: bpd = log2 L - log2(1 - 2α), whatever the
    # shape, if D counts every channel.
    alpha, levels = 0.05, 17
    flow = Flow(Logit(shape, alpha=alpha), StandardLogistic(shape)).double()
    result = bits_per_dim(flow, random_images(levels, shape=shape), levels)
    assert result["bpd"] == pytest.approx(math.log2(levels) - math.log2(1 - 2 * alpha), abs=1e-9)
    assert result["dims"] == math.prod(shape)  # C·H·W: every channel counts


def test_bits_per_dim_hands_its_batch_size_to_evaluate() -> None:
    """A batch size evaluate cannot use is refused, not replaced by a default."""
    flow = Flow(Logit(SHAPE, alpha=0.0), StandardLogistic(SHAPE)).double()
    with pytest.raises(ConfigurationError, match="batch_size must be an int >= 1, got 0"):
        bits_per_dim(flow, random_images(4), 4, batch_size=0)


def test_logit_domain_is_open_at_both_ends_when_alpha_is_positive() -> None:
    """With α = 1/4 the domain ends are exact binary numbers: x = -1/2 gives s = 0 and x = 3/2 gives s = 1, where the
    logit is infinite; both are refused, and points just inside map to finite values and log-dets."""
    layer = Logit((1, 1, 2), alpha=0.25).double()
    for end in (-0.5, 1.5):
        with pytest.raises(InputError, match=r"Logit: input must lie in \(-0.5, 1.5\)"):
            layer(torch.tensor([end, 0.5], dtype=torch.float64).reshape(1, 1, 1, 2))
    inside = torch.tensor([-0.5 + 1e-9, 1.5 - 1e-9], dtype=torch.float64).reshape(1, 1, 1, 2)
    z, logdet = layer(inside)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()


def test_bits_per_dim_is_the_nll_of_the_dequantized_points_in_bits() -> None:
    torch.manual_seed(0)
    flow = multiscale_glow(SHAPE, levels=2, steps=1, hidden=8).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    images, levels = random_images(17), 17
    result = bits_per_dim(flow, images, levels, seed=4)
    x = dequantize(images, levels, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        log_q = flow.eval().log_prob(x)
    d = x[0].numel()
    by_hand = -(log_q - d * math.log(levels)) / (d * math.log(2))
    assert result["bpd"] == pytest.approx(float(by_hand.mean()), abs=1e-9)
    assert result["bpd_se"] == pytest.approx(float(by_hand.std() / math.sqrt(len(images))), rel=1e-6)


def test_dequantize_stays_in_the_cell_of_each_level() -> None:
    images = random_images(17)
    x = dequantize(images, 17, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert x.shape == images.shape and float(x.min()) >= 0 and float(x.max()) < 1
    assert torch.equal(torch.floor(x * 17).to(torch.uint8), images)
    with pytest.raises(DataError, match=r"integers in \[0, 16\]"):
        dequantize(images.float() + 0.5, 17)
    with pytest.raises(DataError, match=r"integers in \[0, 15\]"):
        dequantize(images, 16)  # the digits have 17 levels, not 16


def test_loader_draws_fresh_noise_every_pass_and_logit_rejects_raw_pixels() -> None:
    loader = DequantizedImages(random_images(17, n=10), 17, batch_size=4, seed=0)
    first, second = [torch.cat(list(loader)) for _ in range(2)]
    assert first.shape == (10, *SHAPE) and len(loader) == 3
    assert not torch.allclose(torch.sort(first.flatten()).values, torch.sort(second.flatten()).values)
    with pytest.raises(InputError, match=r"Logit: input must lie in \(-0.05556, 1.056\).*dequantize"):
        Logit(SHAPE)(random_images(17).float())


def test_a_restarted_loader_gives_the_batches_of_a_fresh_one() -> None:
    # ctflows compare trains its models one after another on one data set: each must start the stream afresh.
    loader = DequantizedImages(random_images(17, n=10), 17, batch_size=4, seed=3)
    fresh = torch.cat(list(DequantizedImages(random_images(17, n=10), 17, batch_size=4, seed=3)))
    used = torch.cat(list(loader))
    assert torch.equal(used, fresh)
    assert not torch.equal(torch.cat(list(loader)), fresh)  # a second pass draws anew
    assert torch.equal(torch.cat(list(loader.restarted())), fresh)
    assert [len(batch) for batch in loader.restarted()] == [4, 4, 2]  # with the batch size it was given


@pytest.mark.parametrize("n, batch_size", [(8, 4), (9, 4), (3, 4), (1, 1)])
def test_loader_length_is_the_number_of_batches_it_yields(n: int, batch_size: int) -> None:
    """len() is ⌈N / batch⌉, also when the batch size divides N; every batch but the last is full."""
    loader = DequantizedImages(random_images(17, n=n), 17, batch_size=batch_size)
    sizes = [len(batch) for batch in loader]
    assert len(loader) == len(sizes) and sum(sizes) == n and all(size == batch_size for size in sizes[:-1])


def test_float32_dequantization_stays_in_its_cell_and_below_one_and_alpha_zero_refuses_the_ends() -> None:
    # k + u rounds to k + 1 in float32 for u close to 1 (3 of these 10^6 draws at k = 200): without care those points
    # land on the next cell's edge, and at the top level on exactly 1.
    for level in (200, 255):
        images = torch.full((1000, 1, 32, 32), level, dtype=torch.uint8)
        x = dequantize(images, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
        assert float(x.max()) < 1.0 and torch.equal(torch.floor(x.double() * 256).to(torch.uint8), images), level
    ends = torch.tensor([0.0, 0.5, 0.5, 1.0]).reshape(1, 1, 2, 2)
    with pytest.raises(InputError, match=r"must lie in \(0, 1\)"):
        Logit((1, 2, 2), alpha=0.0)(ends)
    for end in (0.0, 1.0):  # each end alone: the domain is open on both sides
        with pytest.raises(InputError, match=r"must lie in \(0, 1\)"):
            Logit((1, 2, 2), alpha=0.0)(torch.tensor([end, 0.5, 0.5, 0.5]).reshape(1, 1, 2, 2))
    z, logdet = Logit((1, 2, 2), alpha=0.05)(ends)  # with a margin the ends are fine
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()


class ContextShift(Transform):
    """z = x + c on [1, 2, 2] images, c one number per image: a minimal conditional image layer."""

    event_shape = (1, 2, 2)
    context_features = 1

    def _forward(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return x + context.view(-1, 1, 1, 1), zeros_logdet(x)

    def _inverse(self, z: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return z - context.view(-1, 1, 1, 1), zeros_logdet(z)


def test_bits_per_dim_of_conditional_images_with_one_context_per_image() -> None:
    # The images are dequantized first and then paired with their context rows.
    shape, levels = (1, 2, 2), 4
    flow = Flow([Logit(shape, alpha=0.05), ContextShift()], StandardLogistic(shape)).double()
    images = torch.randint(0, levels, (50, *shape), generator=torch.Generator().manual_seed(0))
    context = torch.randn(50, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    result = evaluate(flow, images, levels=levels, context=context, seed=3)
    x = dequantize(images, levels, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        log_q = flow.log_prob(x, context)
    assert result["nll"] == pytest.approx(float(-log_q.mean()), rel=1e-12)
    assert result["bpd"] == pytest.approx(float(-(log_q - 4 * math.log(levels)).mean()) / (4 * math.log(2)), rel=1e-12)


def test_an_image_models_own_samples_are_in_its_log_prob_domain() -> None:
    # The logit's inverse reaches a little beyond [0, 1] when alpha > 0; log_prob must take those points.
    torch.manual_seed(0)
    flow = multiscale_glow((1, 8, 8), levels=2, steps=2, hidden=8).eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
        samples, log_q = flow.sample_and_log_prob(100, generator=torch.Generator().manual_seed(0))
        assert ((samples < 0) | (samples > 1)).any()  # the case that used to be refused
        torch.testing.assert_close(flow.log_prob(samples), log_q, atol=1e-3, rtol=1e-4)


def test_image_layers_refuse_settings_they_would_silently_misread() -> None:
    for parity in (2, -1):
        with pytest.raises(ConfigurationError, match="parity must be 0"):
            ConvAffineCoupling((3, 2, 2), 4, parity=parity)
    with pytest.raises(ConfigurationError, match="kernel_size must be odd"):
        ConcatSquashConv2d(1, 1, 1, kernel_size=2)  # "same" padding would grow 4x4 to 5x5
    assert ConcatSquashConv2d(1, 1, 1, kernel_size=5)(torch.randn(1, 1, 4, 4), torch.zeros(1, 1)).shape == (1, 1, 4, 4)


@pytest.mark.parametrize("alpha", [0.05, 1e-6, 0.0])
def test_a_saturated_inverse_stays_in_the_domain_and_is_scored_as_sampled(alpha: float) -> None:
    """In float32 sigmoid(z) rounds to 1 above z ≈ 17 and to 0 below about -88, which put x on an end of the open
    domain: the model's own sample was refused by log_prob. It now lands an ulp inside, with the inverse log-det of
    that x, so the forward accepts it and gives minus that log-det; unsaturated values are untouched."""
    layer = Logit((1, 1, 4), alpha=alpha)
    z = torch.tensor([[[[20.0, -100.0, 3.0, -2.0]]]])
    x, logdet = layer.inverse(z)
    x64, logdet64 = Logit((1, 1, 4), alpha=alpha).double().inverse(z.double())
    torch.testing.assert_close(x[..., 2:], x64[..., 2:].float(), atol=0, rtol=1e-6)  # unsaturated: as before
    _, forward_logdet = layer(x)  # accepted: inside the domain
    torch.testing.assert_close(forward_logdet, -logdet, atol=1e-4, rtol=1e-6)
    assert torch.isfinite(logdet).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("alpha", [0.0, 0.04, 0.09, 0.15, 0.17, 0.2, 0.3, 0.4, 0.46])
def test_a_saturated_inverse_is_finite_and_scored_as_sampled_for_any_alpha(dtype: torch.dtype, alpha: float) -> None:
    """An ulp inside the domain is not always enough: for α = 0.3 in float32, x there still gives α + (1 - 2α) x = 0
    (an infinite log-det both ways), and where sigmoid(z) = 1 but x rounds just inside the end (α = 0.17) the log-det
    at z (-1e4) was kept for an x whose own is about +67. The inverse's log-det is now minus the forward's at the x it
    returns, up to √ε a value (the switch between the two formulas) and the rounding of sums of about 1e4."""
    layer = Logit((1, 2, 4), alpha=alpha).to(dtype)
    z = torch.tensor([1e4, -1e4, 40.0, -40.0, 20.0, -100.0, 3.0, -2.0], dtype=dtype).reshape(1, 1, 2, 4)
    x, logdet = layer.inverse(z)
    _, forward_logdet = layer(x)  # accepted: inside the domain
    assert torch.isfinite(logdet).all() and torch.isfinite(forward_logdet).all()
    eps = torch.finfo(dtype).eps
    assert float((forward_logdet + logdet).abs()) <= 8 * eps**0.5 + 4 * eps * float(logdet.abs())


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.3])
def test_an_unsaturated_inverse_keeps_the_exact_log_det_at_z(alpha: float) -> None:
    """Away from saturation the float32 inverse's log-det is computed from z (log σ(z) + log σ(-z)), not from the
    rounded x: within 2 ulps a value of the float64 one (8 values of at most 7 in size: 2e-5), where the formula
    through x, whose α + (1 - 2α) x carries an absolute rounding of 1e-7, errs by about 1e-7 · e^|z| (8e-5 here)."""
    z = torch.tensor([4.0, 5.0, 6.0, 7.0, -4.0, -5.0, -6.0, -7.0]).reshape(1, 1, 2, 4)
    _, logdet = Logit((1, 2, 4), alpha=alpha).inverse(z)
    _, exact = Logit((1, 2, 4), alpha=alpha).double().inverse(z.double())
    assert abs(float(logdet) - float(exact)) <= 2e-5


@pytest.mark.parametrize("alpha", [0.3, 0.04])
def test_a_forward_input_an_ulp_inside_the_domain_where_s_rounds_to_0_or_1_is_refused_not_infinite(alpha: float) -> None:
    """In float32 with these α, the floats next to the domain's ends still give α + (1 - 2α) x = 0 or 1: the forward
    returned z = ±inf and an infinite log-det. The check takes the ends as the inverse does, rounded in x's dtype."""
    layer = Logit((1, 1, 2), alpha=alpha)
    ends = torch.tensor(layer.domain)
    x = ends.nextafter(ends.flip(0)).reshape(1, 1, 1, 2)
    with pytest.raises(InputError, match=r"^Logit: input must lie in .*, where alpha \+ \(1 - 2 alpha\) x rounds to 0 or 1 in torch.float32\)"):
        layer(x)
    inside, _ = layer.inverse(torch.tensor([-200.0, 200.0]).reshape(1, 1, 1, 2))  # the inverse's saturated samples
    z, logdet = layer(inside)  # are taken, finitely
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
