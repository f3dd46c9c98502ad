"""The shared property suite: every layer in layer_cases.CASES must pass every check here."""
from __future__ import annotations

import pytest
import torch

from ctflows.core import Chain, Inverse, Transform
from ctflows.errors import InputError
from brute_force import brute_force_logdets
from gradient_check import assert_parameter_gradients_match_finite_differences
from layer_cases import CASES, LayerCase

CONTEXT = 2
BATCH = 7


def build(case: LayerCase, device: str = "cpu", dtype: torch.dtype = torch.float64) -> tuple[Transform, torch.Tensor | None]:
    """A layer in a generic state: initialised on a batch, parameters perturbed away from their start."""
    torch.manual_seed(0)
    layer = case.factory(case.features, CONTEXT if case.conditional else None).to(device, dtype)
    context = torch.randn(BATCH, CONTEXT, device=device, dtype=dtype) if case.conditional else None
    layer.train()
    with torch.no_grad():
        layer(torch.randn(BATCH, case.features, device=device, dtype=dtype) * 2 + 1, context)  # data-dependent init
        # Many layers start as the identity (zero-initialised outputs); perturb so every check sees a real map.
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    layer.eval()
    return layer, context


def inputs(case: LayerCase, device: str = "cpu", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(BATCH, case.features, device=device, dtype=dtype)


PARAMS = [pytest.param(c, id=c.name, marks=c.marks) for c in CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_round_trip_both_ways(case: LayerCase) -> None:
    layer, context = build(case)
    x = inputs(case)
    z, logdet = layer(x, context)
    x_back, logdet_inv = layer.inverse(z, context)
    torch.testing.assert_close(x_back, x, atol=case.atol, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=case.atol, rtol=0)
    x2, _ = layer.inverse(x, context)
    torch.testing.assert_close(layer(x2, context)[0], x, atol=case.atol, rtol=0)


@pytest.mark.parametrize("case", PARAMS)
def test_logdet_matches_brute_force_jacobian(case: LayerCase) -> None:
    layer, context = build(case)
    x = inputs(case)
    _, logdet = layer(x, context)
    torch.testing.assert_close(logdet, brute_force_logdets(layer, x, context), atol=max(case.atol, 1e-8), rtol=0)


@pytest.mark.parametrize("case", PARAMS)
def test_batch_independence(case: LayerCase) -> None:
    layer, context = build(case)
    x = inputs(case)
    z, logdet = layer(x, context)
    for i in (0, BATCH - 1):
        ctx = None if context is None else context[i : i + 1]
        z_i, logdet_i = layer(x[i : i + 1], ctx)
        torch.testing.assert_close(z_i[0], z[i], atol=case.atol, rtol=0)
        torch.testing.assert_close(logdet_i[0], logdet[i], atol=case.atol, rtol=0)


@pytest.mark.parametrize("case", PARAMS)
def test_gradients_reach_every_parameter(case: LayerCase) -> None:
    layer, context = build(case)
    if not list(layer.parameters()):
        return  # nothing to train (fixed permutations)
    layer.train()
    x = inputs(case)
    z, logdet = layer(x, context)
    (z.square().sum() - logdet.sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{case.name}: no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), f"{case.name}: non-finite gradient in {name}"
        assert p.grad.abs().sum() > 0, f"{case.name}: gradient of {name} is identically zero"


@pytest.mark.parametrize("case", PARAMS)
def test_parameter_gradients_match_finite_differences(case: LayerCase) -> None:
    layer, context = build(case)
    assert_parameter_gradients_match_finite_differences(layer, inputs(case), context, abs_tol=1e-6 + 100 * case.atol,
                                                        name=case.name)


@pytest.mark.parametrize("case", PARAMS)
def test_float32_and_composition(case: LayerCase) -> None:
    layer, context = build(case, dtype=torch.float32)
    x = inputs(case, dtype=torch.float32)
    chain = Chain(layer, Inverse(layer))  # f⁻¹ ∘ f is the identity with zero log-det
    y, logdet = chain(x, context)
    assert y.dtype == torch.float32 and logdet.shape == (BATCH,)
    torch.testing.assert_close(y, x, atol=max(case.atol, 1e-4), rtol=1e-4)
    torch.testing.assert_close(logdet, torch.zeros_like(logdet), atol=max(case.atol, 1e-4), rtol=0)


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_names_the_layer(case: LayerCase) -> None:
    layer, context = build(case)
    x = inputs(case)
    owner = type(layer).__name__
    with pytest.raises(InputError, match=rf"{owner}.*\[batch, {case.features}\]"):
        layer(torch.randn(BATCH, case.features + 1, dtype=torch.float64), context)
    bad = x.clone()
    bad[2, 0] = float("nan")
    with pytest.raises(InputError, match=f"{owner}.*NaN"):
        layer(bad, context)
    bad[2, 0] = float("inf")
    with pytest.raises(InputError, match=f"{owner}.*NaN or Inf"):
        layer.inverse(bad, context)
    with pytest.raises(InputError, match="empty batch"):
        layer(x[:0], context)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if c.conditional])
def test_context_is_used_and_checked(case: LayerCase) -> None:
    layer, context = build(case)
    x = inputs(case)
    z1, _ = layer(x, context)
    z2, _ = layer(x, context + 1.0)
    assert not torch.allclose(z1, z2), "output does not depend on the context"
    with pytest.raises(InputError, match="context"):
        layer(x, None)
    with pytest.raises(InputError, match="context"):
        layer(x, context[:, :1])
    with pytest.raises(InputError, match="context"):
        layer(x, context[:3])


@pytest.mark.cuda
@pytest.mark.parametrize("case", PARAMS)
def test_cuda_round_trip(case: LayerCase) -> None:
    layer, context = build(case, device="cuda")
    x = inputs(case, device="cuda")
    z, logdet = layer(x, context)
    assert z.device.type == "cuda" and logdet.device.type == "cuda"
    x_back, _ = layer.inverse(z, context)
    torch.testing.assert_close(x_back, x, atol=max(case.atol, 1e-6), rtol=0)
