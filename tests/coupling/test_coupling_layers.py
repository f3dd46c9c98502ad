"""The coupling construction, for every coupling layer: a new layer is the identity, the layer computes the map its
docstring gives from the conditioner's output, the identity half passes through bit for bit, the checkerboard
masks alternate, and gradients with respect to the input (through the conditioner too) are right."""
from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import Tensor

from ctflows.coupling import AdditiveCoupling, AffineCoupling, Coupling, RQSplineCoupling, checkerboard_mask
from layer_cases import CASES, LayerCase
from test_layer_properties import build, inputs

# Five features, built with keyword arguments of Coupling (parity, context_features).
FACTORIES: dict[str, Callable[..., Coupling]] = {
    "additive": lambda **kwargs: AdditiveCoupling(5, hidden=(8,), **kwargs),
    "affine": lambda **kwargs: AffineCoupling(5, hidden=(8,), scale_bound=1.5, **kwargs),
    # A bound of 2.5 with inputs of scale 3 puts about 40% of them in the identity tails.
    "rq_spline": lambda **kwargs: RQSplineCoupling(5, bins=6, bound=2.5, hidden=(8,), **kwargs),
}


def fix_conditioner_output(layer: Coupling, theta: Tensor) -> None:
    """Make the conditioner output ``theta [transformed, params_per_feature]`` whatever its input and context."""
    last = layer.conditioner.net[-1]
    with torch.no_grad():  # a zero last layer with bias θ outputs θ
        last.weight.zero_()
        last.bias.copy_(theta.flatten())


@pytest.mark.parametrize("context_features", [None, 2])
@pytest.mark.parametrize("name", FACTORIES)
def test_new_coupling_layer_is_the_identity(name: str, context_features: int | None) -> None:
    """The conditioner's zero-initialised output gives z = x with log-det 0, both ways, whatever the context."""
    torch.manual_seed(0)
    layer = FACTORIES[name](context_features=context_features).double()
    x = torch.randn(10, 5, dtype=torch.float64) * 3
    context = None if context_features is None else torch.randn(10, context_features, dtype=torch.float64)
    for z, logdet in (layer(x, context), layer.inverse(x, context)):
        torch.testing.assert_close(z, x, atol=1e-14, rtol=0)
        torch.testing.assert_close(logdet, torch.zeros(10, dtype=torch.float64), atol=1e-14, rtol=0)


def additive(x_b: Tensor, theta: Tensor, layer: Coupling, inverse: bool) -> tuple[Tensor, Tensor]:
    """NICE's τ from its docstring: x_B + t (inverse x_B - t), log-det 0."""
    t = theta[:, 0]
    return (x_b - t if inverse else x_b + t), torch.zeros(x_b.shape[0], dtype=x_b.dtype)


def affine(x_b: Tensor, theta: Tensor, layer: Coupling, inverse: bool) -> tuple[Tensor, Tensor]:
    """RealNVP's τ from its docstring: x_B · exp(s) + t, s = b · tanh(ŝ / b), log-det Σ s (inverse: negated)."""
    s = layer.scale_bound * torch.tanh(theta[:, 0] / layer.scale_bound)
    logdet = s.sum().expand(x_b.shape[0])
    return ((x_b - theta[:, 1]) * torch.exp(-s), -logdet) if inverse else (x_b * torch.exp(s) + theta[:, 1], logdet)


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("name, expected", [("additive", additive), ("affine", affine)])
def test_coupling_computes_its_documented_map_of_the_conditioner_output(
    name: str, expected: Callable[..., tuple[Tensor, Tensor]], parity: int, inverse: bool
) -> None:
    """With the conditioner's output fixed to θ (ŝ beyond the scale bound, where the clamp bites), the transformed
    features go through τ_θ as documented and the others are passed through unchanged, to the bit."""
    layer = FACTORIES[name](parity=parity).double()
    g = torch.Generator().manual_seed(3)
    theta = torch.randn(len(layer.transformed), layer.params_per_feature, generator=g, dtype=torch.float64) * 3
    fix_conditioner_output(layer, theta)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    z, logdet = layer.inverse(x) if inverse else layer(x)
    want, want_logdet = expected(x[:, layer.transformed], theta, layer, inverse)
    assert torch.equal(z[:, layer.identity], x[:, layer.identity])
    torch.testing.assert_close(z[:, layer.transformed], want, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, want_logdet, atol=1e-12, rtol=0)


COUPLING_CASES = [pytest.param(c, id=c.name) for c in CASES if "coupling" in c.name]


@pytest.mark.parametrize("case", COUPLING_CASES)
def test_identity_half_is_passed_through_bit_for_bit(case: LayerCase) -> None:
    """z_A = x_A exactly (not merely to a tolerance), forwards and backwards, for a generic (perturbed) layer."""
    layer, context = build(case)
    x = inputs(case)
    inner = getattr(layer, "transform", layer)  # Inverse(coupling) has its coupling's identity half
    for z, _ in (layer(x, context), layer.inverse(x, context)):
        assert torch.equal(z[:, inner.identity], x[:, inner.identity])


@pytest.mark.parametrize("case", COUPLING_CASES)
def test_input_gradients_match_finite_differences(case: LayerCase) -> None:
    """Autograd's derivatives of z and log|det| with respect to x (and the context) are the numerical ones: the
    identity half reaches z_B through the conditioner, which a triangular log-det alone does not check."""
    layer, context = build(case)
    x = inputs(case).requires_grad_()
    args = (x,) if context is None else (x, context.requires_grad_())
    assert torch.autograd.gradcheck(lambda *a: layer(*a), args)


@pytest.mark.parametrize("features", [2, 3, 4, 7])
def test_checkerboard_masks_alternate_and_the_two_parities_complement_each_other(features: int) -> None:
    """Adjacent features fall in different halves, and parity 1 transforms exactly what parity 0 passes through;
    a layer's transformed and identity indices are that mask's True and False positions."""
    mask0, mask1 = checkerboard_mask(features, 0), checkerboard_mask(features, 1)
    assert torch.equal(mask0, ~mask1)
    assert (mask0[1:] != mask0[:-1]).all()
    for parity, mask in ((0, mask0), (1, mask1)):
        layer = AdditiveCoupling(features, parity=parity, hidden=(4,))
        assert layer.transformed.tolist() == mask.nonzero().flatten().tolist()  # the order of θ's rows
        assert sorted(layer.identity.tolist()) == (~mask).nonzero().flatten().tolist()


@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("name", FACTORIES)
def test_an_explicit_mask_decides_the_halves_whatever_the_parity(name: str, parity: int) -> None:
    """A given mask (here not a checkerboard: True at 1, 2, 4 of 5) transforms exactly its True features, as given as
    booleans or 0/1 numbers; ``parity`` only picks the default mask, so it changes nothing here. The False features
    pass through bit for bit and condition the rest."""
    mask = [False, True, True, False, True]
    layers = [FACTORIES[name](mask=m, parity=parity).double() for m in (mask, torch.tensor(mask), [int(v) for v in mask])]
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    for layer in layers:
        assert layer.transformed.tolist() == [1, 2, 4] and layer.identity.tolist() == [0, 3]
        fix_conditioner_output(layer, torch.randn(3, layer.params_per_feature, generator=torch.Generator().manual_seed(6)))
        z, _ = layer(x)
        assert torch.equal(z[:, [0, 3]], x[:, [0, 3]]) and (z[:, [1, 2, 4]] != x[:, [1, 2, 4]]).any()
