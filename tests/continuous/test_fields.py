"""Velocity fields: shapes, context, dtypes, near-zero start."""
from __future__ import annotations

import math
import pickle

import pytest
import torch

from ctflows.continuous import ConcatMLP, ConcatSquashMLP, FourierMLP, FourierTime, TimeMLP
from ctflows.errors import ConfigurationError
from ctflows.image import ConvTimeField

FIELDS = [ConcatMLP, ConcatSquashMLP, FourierMLP]


@pytest.mark.parametrize("cls", FIELDS)
@pytest.mark.parametrize("activation", ["softplus", "tanh", "silu"])
def test_shapes_dtypes_and_time_dependence(cls, activation):
    field = cls(3, (8, 8), activation=activation, init_scale=1.0).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    v0 = field(torch.tensor(0.0, dtype=torch.float64), x)
    v1 = field(torch.tensor(0.9, dtype=torch.float64), x)
    assert v0.shape == (5, 3) and v0.dtype == torch.float64
    assert not torch.allclose(v0, v1)
    # A float time works too, and float32 time with float64 states is cast to the state's dtype.
    torch.testing.assert_close(field(0.9, x), v1)
    torch.testing.assert_close(field(torch.tensor(0.9), x), v1, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cls", FIELDS)
def test_context_is_used_per_row(cls):
    field = cls(2, (8,), context_features=3, init_scale=1.0)
    x = torch.randn(4, 2)
    c = torch.randn(4, 3)
    v = field(torch.tensor(0.5), x, c)
    c2 = c.clone()
    c2[0] += 1.0
    v2 = field(torch.tensor(0.5), x, c2)
    assert not torch.allclose(v[0], v2[0]) and torch.allclose(v[1:], v2[1:])


@pytest.mark.parametrize("cls", FIELDS)
def test_initial_field_is_small_and_zero_scale_is_zero(cls):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    small = cls(4, (32, 32))(torch.tensor(0.3), x)
    big = cls(4, (32, 32), init_scale=1.0)(torch.tensor(0.3), x)
    assert small.abs().mean() < 0.2 * big.abs().mean()
    assert torch.all(cls(4, (32,), init_scale=0.0)(torch.tensor(0.3), x) == 0)


def test_fourier_time_features():
    # [t, sin(π 2^k t) for k < K, cos(π 2^k t) for k < K], written out term by term, for a scalar and per-sample times
    emb = FourierTime(3).double()
    for t in (torch.tensor(0.25, dtype=torch.float64), torch.tensor([0.0, 0.3, 0.71, 2.5], dtype=torch.float64)):
        rows = []
        for value in t.reshape(-1).tolist():
            angles = [math.pi * 2**k * value for k in range(3)]
            rows.append([value, *map(math.sin, angles), *map(math.cos, angles)])
        torch.testing.assert_close(emb(t), torch.tensor(rows, dtype=torch.float64), rtol=0, atol=1e-14)
    # A field saved while the frequencies were a buffer still loads.
    field = FourierMLP(2, (4,))
    old = {**field.state_dict(), "time_embedding.omega": math.pi * 2.0 ** torch.arange(4.0)}
    FourierMLP(2, (4,)).load_state_dict(old)


@pytest.mark.parametrize("cls", FIELDS)
@pytest.mark.parametrize("activation", ["softplus", "tanh", "silu"])
@pytest.mark.parametrize("context", [None, 2])
def test_forward_with_jvp_gives_the_jacobian(cls, activation, context):
    torch.manual_seed(0)
    field = cls(3, (8, 8), activation=activation, context_features=context, init_scale=1.0).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    c = torch.randn(4, 2, dtype=torch.float64) if context else None
    t = torch.tensor(0.4, dtype=torch.float64)
    v, jt = field.forward_with_jvp(t, x, c)
    torch.testing.assert_close(v, field(t, x, c))
    for b in range(4):
        cb = None if c is None else c[b : b + 1]
        jac = torch.autograd.functional.jacobian(lambda r: field(t, r.unsqueeze(0), cb)[0], x[b])
        torch.testing.assert_close(jt[b], jac.T, atol=1e-12, rtol=1e-10)


def test_forward_with_jvp_without_hidden_layers():
    field = ConcatMLP(3, (), init_scale=1.0)
    v, jt = field.forward_with_jvp(torch.tensor(0.1), torch.randn(5, 3))
    assert jt.shape == (5, 3, 3)
    torch.testing.assert_close(jt[0], field.layers[0].linear.weight.T)


@pytest.mark.parametrize("build, owner", [
    (lambda a: TimeMLP(2, (8,), activation=a), "TimeMLP"),
    (lambda a: ConvTimeField((1, 4, 4), (4,), activation=a), "ConvTimeField"),
])
def test_an_unknown_activation_is_refused_with_the_choices(build, owner):
    with pytest.raises(ConfigurationError, match=rf"{owner}: activation 'relu' is not one of \['silu', 'softplus', 'tanh'\]"):
        build("relu")


def test_a_fourier_field_pickled_with_its_frequencies_as_a_buffer_still_runs():
    field = FourierMLP(2, (4,)).double()
    t, x = torch.tensor(0.3, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    expected = field(t, x)
    old = field.time_embedding  # as it was saved before: a buffer of frequencies, no count
    old.register_buffer("omega", math.pi * 2.0 ** torch.arange(4, dtype=torch.float64))
    del old.num_frequencies
    restored = pickle.loads(pickle.dumps(field))
    torch.testing.assert_close(restored(t, x), expected, rtol=0, atol=0)
    assert not any(name.endswith("omega") for name, _ in restored.named_buffers()) and restored.time_embedding.num_frequencies == 4


@pytest.mark.parametrize("cls, gated", [(ConcatMLP, False), (FourierMLP, False), (ConcatSquashMLP, True)])
def test_concat_fields_add_the_time_features_and_concatsquash_fields_gate_by_them(cls, gated):
    """Without hidden layers a concat field is ``W x + U c(t) + b``, so ∂v/∂x is the same at every time; a
    concat-squash layer scales ``W x`` by ``σ(G c(t) + g)``, so its Jacobian changes with t."""
    torch.manual_seed(0)
    field = cls(3, (), init_scale=1.0).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    early, late = (field.forward_with_jvp(torch.tensor(t, dtype=torch.float64), x)[1] for t in (0.1, 0.8))
    assert torch.allclose(early, late, rtol=0, atol=1e-14) != gated


@pytest.mark.parametrize("cls", FIELDS)
def test_a_float64_field_resolves_time_in_float64(cls):
    """∂v/∂t by autograd equals a central difference with h = 1e-6: only a field that keeps t in the state's
    float64 can resolve it (float32 rounds t = 0.4 ± h by up to 3e-8, an error of about 1% at this h)."""
    torch.manual_seed(0)
    field = cls(3, (8, 8), init_scale=1.0).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    t, h = torch.tensor(0.4, dtype=torch.float64), 1e-6
    dv_dt = torch.autograd.functional.jacobian(lambda s: field(s, x), t)
    central = (field(t + h, x) - field(t - h, x)) / (2 * h)
    torch.testing.assert_close(central, dv_dt, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls", FIELDS)
def test_a_context_of_another_dtype_is_cast_to_the_states(cls):
    """A float64 context for a float32 field gives the field's value at that context rounded to float32."""
    field = cls(2, (8,), context_features=3, init_scale=1.0)
    x, c = torch.randn(4, 2), torch.randn(4, 3, dtype=torch.float64)
    v = field(torch.tensor(0.5), x, c)
    assert v.dtype == torch.float32
    torch.testing.assert_close(v, field(torch.tensor(0.5), x, c.float()), rtol=0, atol=0)
