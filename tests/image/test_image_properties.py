"""Every image layer: round trips, log-det against the brute-force Jacobian, inverse log-det = -forward.

The shared suite (tests/test_layer_properties.py) feeds vectors [B, D]; these checks do the same on
[B, C, H, W] in float64, including the logit whose inputs must lie in [0, 1].
"""
from __future__ import annotations

import pytest
import torch

from ctflows.core import Chain, Inverse
from ctflows.errors import InputError
from gradient_check import assert_parameter_gradients_match_finite_differences
from image.cases import BATCH, CASES, build, inputs


def _entry_layer(layer) -> str:
    """Name of the layer that checks a chain's input (its first), which the error message must name."""
    while isinstance(layer, Chain):
        layer = layer.layers[0]
    return type(layer).__name__


PARAMS = [pytest.param(c, id=c.name) for c in CASES]


def _out_shape(layer, case) -> tuple[int, ...]:
    return tuple(getattr(layer, "out_shape", case.shape))


@pytest.mark.parametrize("case", PARAMS)
def test_round_trip_and_inverse_logdet(case) -> None:
    layer = build(case)
    x = inputs(case)
    z, logdet = layer(x)
    assert z.shape == (BATCH, *_out_shape(layer, case)) and logdet.shape == (BATCH,)
    x_back, logdet_inverse = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=case.atol, rtol=0)
    torch.testing.assert_close(logdet_inverse, -logdet, atol=case.atol, rtol=0)


@pytest.mark.parametrize("case", PARAMS)
def test_logdet_matches_brute_force_jacobian(case) -> None:
    layer = build(case)
    x = inputs(case)
    _, logdet = layer(x)
    jac = torch.autograd.functional.jacobian(
        lambda row: layer(row.reshape(1, *case.shape))[0].reshape(-1), x[0].reshape(-1), vectorize=True
    )
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jac).logabsdet, atol=max(case.atol, 1e-8), rtol=0)


@pytest.mark.parametrize("case", PARAMS)
def test_float32_composition_and_bad_input(case) -> None:
    layer = build(case, dtype=torch.float32)
    x = inputs(case, dtype=torch.float32)
    y, logdet = Chain(layer, Inverse(layer))(x)
    torch.testing.assert_close(y, x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logdet, torch.zeros_like(logdet), atol=1e-4, rtol=0)
    owner = _entry_layer(layer)
    with pytest.raises(InputError, match=owner + r".*\[batch, " + ", ".join(map(str, case.shape)) + r"\]"):
        layer(x.reshape(BATCH, -1))
    bad = x.clone()
    bad.view(-1)[3] = float("nan")
    with pytest.raises(InputError, match=f"{owner}.*NaN"):
        layer(bad)


@pytest.mark.parametrize("case", PARAMS)
def test_batch_independence(case) -> None:
    layer = build(case)
    x = inputs(case)
    z, logdet = layer(x)
    for i in (0, BATCH - 1):
        z_i, logdet_i = layer(x[i : i + 1])
        torch.testing.assert_close(z_i[0], z[i], atol=case.atol, rtol=0)
        torch.testing.assert_close(logdet_i[0], logdet[i], atol=case.atol, rtol=0)


@pytest.mark.parametrize("case", PARAMS)
def test_parameter_gradients_match_finite_differences(case) -> None:
    assert_parameter_gradients_match_finite_differences(build(case), inputs(case), None, abs_tol=1e-6 + 100 * case.atol,
                                                        name=case.name)


@pytest.mark.parametrize("case", [p for p in PARAMS if p.values[0].name not in ("squeeze", "logit")])
def test_gradients_reach_every_parameter(case) -> None:
    layer = build(case)
    layer.train()
    z, logdet = layer(inputs(case))
    (z.square().sum() - logdet.sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{case.name}: no gradient reaches {name}"
