"""MADE / MAF: the autoregressive structure (a triangular Jacobian in the chosen order), the sequential
inverse, context use, and the identity at initialisation."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest
import torch
from torch import nn

from ctflows.autoregressive import MADE, MaskedAutoregressive, MaskedLinear
from ctflows.errors import ConfigurationError


def perturbed(layer, scale=0.3):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(scale * torch.randn_like(p))
    return layer


@contextmanager
def counted_calls(module: nn.Module) -> Iterator[list[int]]:
    """Count ``module``'s forward calls inside the block: ``with counted_calls(m) as calls: ...; calls[0]``."""
    calls = [0]
    handle = module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


@pytest.mark.parametrize("order", [None, [3, 0, 4, 1, 2]])
@pytest.mark.parametrize("context_features", [None, 2])
@pytest.mark.parametrize("minimal", [False, True], ids=["wide", "minimal_width"])
def test_jacobian_is_triangular_in_the_order(order: list[int] | None, context_features: int | None, minimal: bool) -> None:
    """Strictly lower triangular in the order, fully so, and with the diagonal's log giving the log-det; also at
    the narrowest hidden width the docstring allows (D - 1, or D with a context), where every degree must appear once."""
    d = 5
    width = (d if context_features else d - 1) if minimal else 12
    layer = MaskedAutoregressive(d, (width, width), order=order, context_features=context_features, activation="tanh")
    layer = perturbed(layer.double())  # tanh: no dead units, so every allowed dependence shows
    ctx = None if context_features is None else torch.randn(1, context_features, dtype=torch.float64)
    x = torch.randn(d, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda r: layer(r[None], ctx)[0][0], x)
    perm = list(range(d)) if order is None else order
    permuted = jac[perm][:, perm]  # rows and columns in autoregressive order
    assert torch.equal(permuted.triu(1), torch.zeros_like(permuted)), permuted
    # ... and no more than triangular: every allowed dependence is present after perturbation
    assert (permuted.tril(-1)[torch.ones(d, d).tril(-1).bool()] != 0).all()
    torch.testing.assert_close(layer(x[None], ctx)[1][0], jac.diagonal().abs().log().sum(), atol=1e-12, rtol=0)


def test_made_output_depends_only_on_earlier_features():
    made = perturbed(MADE(4, 3, (8,), order=[1, 3, 0, 2]).double())
    x = torch.randn(4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda r: made(r[None])[0], x)  # [4, 3, 4]
    degrees = made.degrees
    for i in range(4):
        for j in range(4):
            if degrees[j] >= degrees[i]:
                assert (jac[i, :, j] == 0).all()


@pytest.mark.parametrize("features", [1, 2, 6])
@pytest.mark.parametrize("context_features", [None, 3])
def test_inverse_takes_features_sequential_passes(features: int, context_features: int | None) -> None:
    """The inverse is exact after exactly D MADE passes (as its stats say), the forward takes one pass and reports
    no iterations, and the first feature sees the context; one feature without a context works too."""
    layer = perturbed(MaskedAutoregressive(features, (16,), context_features=context_features).double())
    x = torch.randn(9, features, dtype=torch.float64)
    ctx = None if context_features is None else torch.randn(9, context_features, dtype=torch.float64)
    with counted_calls(layer.made) as forward_calls:
        z, logdet = layer(x, ctx)
    assert forward_calls[0] == 1 and layer.stats == {}
    with counted_calls(layer.made) as inverse_calls:
        x_back, logdet_inv = layer.inverse(z, ctx)
    torch.testing.assert_close(x_back, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-12, rtol=0)
    assert inverse_calls[0] == features and layer.stats == {"iterations": features}
    layer(x, ctx)
    assert layer.stats == {}, "stats are the last call's: a forward pass after an inverse has no iterations"
    if ctx is not None:
        z2, _ = layer(x, ctx + 1)
        assert not torch.allclose(z2[:, 0], z[:, 0]), "the first feature should see the context too"


def test_starts_as_the_identity_and_bounds_the_scale():
    layer = MaskedAutoregressive(3, (8,), scale_bound=2.0).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    z, logdet = layer(x)
    assert torch.equal(z, x) and (logdet == 0).all()
    perturbed(layer, scale=100.0)
    assert (layer(x)[1].abs() <= 3 * 2.0).all()


@pytest.mark.parametrize("kwargs", [{"order": [0, 0, 1]}, {"scale_bound": 0.0}])
def test_bad_configuration_is_refused(kwargs):
    with pytest.raises(ConfigurationError, match="MaskedAutoregressive"):
        MaskedAutoregressive(3, **kwargs)


@pytest.mark.parametrize("order", [[0, 0, 1], [0, 1], [1, 2, 3]])
def test_made_refuses_an_order_that_is_not_a_permutation(order):
    # Its degrees would otherwise be read from uninitialised memory.
    with pytest.raises(ConfigurationError, match=r"MADE: order must be a permutation of range\(3\)"):
        MADE(3, 2, (8,), order=order)


@pytest.mark.parametrize("context_features", [None, 2])
@pytest.mark.parametrize("features, width", [(2, 7), (4, 9), (5, 16)])
def test_every_hidden_unit_lies_on_a_path_from_an_input_to_an_output(
    features: int, width: int, context_features: int | None
) -> None:
    """Hidden degrees lie in [lo, D - 1] (lo = 0 with a context, else 1): a unit of degree 0 without a context would see
    no input and one of degree D would reach no output, a unit wasted either way. Checked on the composed 0/1 masks."""
    made = MADE(features, 2, (width, width), context_features=context_features)
    masks = [m.mask for m in made.net if isinstance(m, MaskedLinear)]
    for layer in range(len(masks) - 1):  # the hidden layer after masks[layer]
        from_inputs = torch.ones(masks[0].shape[1])
        for mask in masks[: layer + 1]:
            from_inputs = mask @ from_inputs
        to_outputs = torch.ones(masks[-1].shape[0])
        for mask in reversed(masks[layer + 1 :]):
            to_outputs = to_outputs @ mask
        assert (from_inputs > 0).all() and (to_outputs > 0).all(), (layer, from_inputs, to_outputs)


def test_made_output_layer_starts_at_zero_unless_asked_otherwise() -> None:
    """``zero_last`` (default True) zeroes the output layer, so a MAF starts as the identity; ``zero_last=False``
    keeps its random initialisation (a non-zero output)."""
    torch.manual_seed(0)
    x = torch.randn(5, 3)
    assert torch.equal(MADE(3, 2, (8,))(x), torch.zeros(5, 3, 2))
    assert MADE(3, 2, (8,), zero_last=False)(x).abs().max() > 0


def test_masks_are_buffers_that_follow_the_module() -> None:
    """The 0/1 masks are registered buffers: saved in the state dict and moved with ``.to`` (dtype here, device alike)."""
    made = MADE(3, 2, (8,)).double()
    masked = [m for m in made.modules() if isinstance(m, MaskedLinear)]
    assert all(m.mask.dtype == torch.float64 for m in masked)
    assert sum(name.endswith(".mask") for name in made.state_dict()) == len(masked) == 2


@pytest.mark.parametrize("scale_bound", [0.5, 2.0])
def test_log_scales_saturate_at_the_scale_bound(scale_bound: float) -> None:
    """With MADE's output fixed far beyond the bound each feature's log-scale is ±b (log-det ±D·b) both ways, and a
    small one passes through the soft clamp almost unchanged (slope 1 at 0)."""
    layer = MaskedAutoregressive(3, (8,), scale_bound=scale_bound).double()
    last = layer.made.net[-1]  # rows (ŝ_i, t_i) per feature i
    x = torch.randn(5, 3, dtype=torch.float64)
    for raw, expected in ((1e4, 3 * scale_bound), (-1e4, -3 * scale_bound), (1e-4, 3e-4)):
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.tensor([raw, 0.5] * 3, dtype=torch.float64))
        z, logdet = layer(x)
        torch.testing.assert_close(logdet, torch.full((5,), expected, dtype=torch.float64), atol=1e-9, rtol=1e-6)
        torch.testing.assert_close(layer.inverse(z)[1], -logdet, atol=1e-12, rtol=0)


@pytest.mark.parametrize("context_features", [None, 2])
@pytest.mark.parametrize("features", [1, 4])
def test_made_without_hidden_layers_is_autoregressive_and_sees_the_context(features: int, context_features: int | None) -> None:
    """With ``hidden=()`` the one masked layer still lets output i see exactly the inputs of lower degree (none for a
    single feature) and, when given, the whole context."""
    made = MADE(features, 2, (), order=list(range(features))[::-1], context_features=context_features, zero_last=False).double()
    x = torch.randn(features, dtype=torch.float64)
    context = None if context_features is None else torch.randn(1, context_features, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda r: made(r[None], context)[0], x)  # [D, 2, D]
    allowed = made.degrees[None, :] < made.degrees[:, None]  # [i, j]: j has a lower degree than i
    assert torch.equal(jac.abs().amax(dim=1) > 0, allowed)
    if context is not None:
        jac_c = torch.autograd.functional.jacobian(lambda c: made(x[None], c[None])[0], context[0])  # [D, 2, c]
        assert (jac_c != 0).all()
