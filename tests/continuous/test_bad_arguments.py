"""Bad arguments to the continuous package's functions and constructors (not the layers' forward/inverse, which
tests/test_bad_input.py covers): each is refused with a ctflows error naming the function or class, the
argument and what was given, instead of an error from deep inside torch, a silent NaN or a silently wrong model."""
from __future__ import annotations

import math
from typing import Any, Callable

import pytest
import torch
from torch import Tensor, nn

import ctflows
from ctflows.continuous import (
    CNF,
    ConcatLinear,
    ConcatSquashLinear,
    FourierMLP,
    FourierTime,
    TimeMLP,
    estimate_log_prob,
    exact_divergence,
    exact_divergence_forward_mode,
    hutchinson_divergence,
    hutchinson_divergence_forward_mode,
    sample_noise,
)
from ctflows.continuous.matching import FlowMatching
from ctflows.errors import ConfigurationError, InputError

T = torch.tensor(0.3)


def field() -> TimeMLP:
    return TimeMLP(3, (8,))


def graph(width: int = 3) -> tuple[Tensor, Tensor]:
    """``(v, x)`` with ``v = sin(x[:, :width])`` connected to ``x [4, 3]`` by autograd."""
    x = torch.randn(4, 3, requires_grad=True)
    return x[:, :width].sin() if width <= 3 else torch.cat([x, x], 1)[:, :width].sin(), x


CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    # divergence estimators: shapes, autograd connection, chunk sizes, probes
    ("exact_v_narrower", lambda: exact_divergence(*graph(2)), InputError, r"exact_divergence: v and x .* got v \[4, 2\] and x \[4, 3\]"),
    ("exact_x_1d", lambda: exact_divergence(torch.ones(3).requires_grad_(), torch.ones(3)), InputError, r"exact_divergence: .*\[batch, D\]"),
    ("exact_x_without_grad", lambda: exact_divergence(torch.ones(4, 3), torch.ones(4, 3)), InputError, r"exact_divergence: x does not require grad"),
    ("exact_v_without_graph", lambda: exact_divergence(torch.ones(4, 3), torch.ones(4, 3, requires_grad=True)), InputError, r"exact_divergence: v has no autograd graph"),
    ("exact_chunk_0", lambda: exact_divergence(*graph(), chunk_size=0), ConfigurationError, r"exact_divergence: chunk_size must be an int >= 1, got 0"),
    ("exact_chunk_fraction", lambda: exact_divergence(*graph(), chunk_size=1.5), ConfigurationError, r"chunk_size .* got 1\.5"),
    ("hutchinson_v_wider", lambda: hutchinson_divergence(*graph(6), torch.ones(4, 6)), InputError, r"hutchinson_divergence: v and x .* got v \[4, 6\]"),
    ("hutchinson_noise_shape", lambda: hutchinson_divergence(*graph(), torch.ones(4, 2)), InputError, r"hutchinson_divergence: noise must be .* shape \[4, 3\].* got \[4, 2\]"),
    ("hutchinson_noise_one_row", lambda: hutchinson_divergence(*graph(), torch.ones(1, 3)), InputError, r"noise .* got \[1, 3\]"),
    ("hutchinson_noise_dtype", lambda: hutchinson_divergence(*graph(), torch.ones(4, 3, dtype=torch.float64)), InputError, r"noise .* dtype torch\.float32.* torch\.float64; draw it with sample_noise"),
    ("forward_exact_chunk_0", lambda: exact_divergence_forward_mode(field(), T, torch.ones(4, 3), None, chunk_size=0), ConfigurationError, r"exact_divergence_forward_mode: chunk_size must be an int >= 1, got 0"),
    ("forward_exact_chunk_negative", lambda: exact_divergence_forward_mode(field(), T, torch.ones(4, 3), None, chunk_size=-1), ConfigurationError, r"chunk_size .* got -1"),
    ("forward_exact_x_width", lambda: exact_divergence_forward_mode(field(), T, torch.ones(4, 2), None), InputError, r"exact_divergence_forward_mode: x must have shape \[batch, 3\], got \[4, 2\]"),
    ("forward_exact_no_jvp", lambda: exact_divergence_forward_mode(lambda t, x, c: x, T, torch.ones(4, 3), None), ConfigurationError, r"the field function has no forward_with_jvp"),
    ("forward_hutchinson_noise_shape", lambda: hutchinson_divergence_forward_mode(field(), T, torch.ones(4, 3), None, torch.ones(4, 2)), InputError, r"hutchinson_divergence_forward_mode: noise .* got \[4, 2\]"),
    ("forward_hutchinson_noise_dtype", lambda: hutchinson_divergence_forward_mode(field(), T, torch.ones(4, 3), None, torch.ones(4, 3, dtype=torch.float64)), InputError, r"noise .* torch\.float64"),
    ("forward_hutchinson_noise_none", lambda: hutchinson_divergence_forward_mode(field(), T, torch.ones(4, 3), None, None), InputError, r"noise must be a tensor .* got NoneType"),
    ("sample_noise_seed_as_generator", lambda: sample_noise(torch.ones(2, 3), "gaussian", generator=3), ConfigurationError, r"sample_noise: generator must be a torch\.Generator"),
    ("sample_noise_integer_like", lambda: sample_noise(torch.ones(2, 3, dtype=torch.long), "gaussian"), InputError, r"sample_noise: like must be a floating-point tensor.* torch\.int64"),
    # log-likelihood estimate
    ("probes_fraction", lambda: estimate_log_prob(ctflows.cnf(2, hidden=(4,)), torch.randn(3, 2), num_probes=2.5), ConfigurationError, r"estimate_log_prob: num_probes must be an int >= 1, got 2\.5"),
    ("probes_string", lambda: estimate_log_prob(ctflows.cnf(2, hidden=(4,)), torch.randn(3, 2), num_probes="3"), ConfigurationError, r"num_probes .* got '3'"),
    ("probes_none", lambda: estimate_log_prob(ctflows.cnf(2, hidden=(4,)), torch.randn(3, 2), num_probes=None), ConfigurationError, r"num_probes .* got None"),
    ("flow_without_log_prob", lambda: estimate_log_prob(field(), torch.randn(3, 3)), ConfigurationError, r"estimate_log_prob: flow must be a model with a log_prob method.* TimeMLP"),
    # velocity fields
    ("field_activation_list", lambda: TimeMLP(2, (8,), activation=["tanh"]), ConfigurationError, r"TimeMLP: activation \['tanh'\] is not one of"),
    ("field_init_scale_nan", lambda: TimeMLP(2, (8,), init_scale=math.nan), ConfigurationError, r"TimeMLP: init_scale must be a finite number.* got nan"),
    ("field_init_scale_string", lambda: TimeMLP(2, (8,), init_scale="0.1"), ConfigurationError, r"init_scale .* got '0\.1'"),
    ("field_embedding_without_width", lambda: TimeMLP(2, (8,), time_embedding=nn.Identity()), ConfigurationError, r"TimeMLP: time_embedding\.out_features must be an int >= 1, got None"),
    ("fourier_negative", lambda: FourierTime(-1), ConfigurationError, r"FourierTime: num_frequencies must be an int >= 1, got -1"),
    ("fourier_zero", lambda: FourierMLP(2, (8,), num_frequencies=0), ConfigurationError, r"num_frequencies must be an int >= 1, got 0"),
    ("fourier_fraction", lambda: FourierTime(2.5), ConfigurationError, r"num_frequencies .* got 2\.5"),
    ("fourier_string", lambda: FourierTime("4"), ConfigurationError, r"num_frequencies .* got '4'"),
    ("fourier_none", lambda: FourierMLP(2, (8,), num_frequencies=None), ConfigurationError, r"num_frequencies .* got None"),
    ("concat_linear_zero_width", lambda: ConcatLinear(0, 3, 1), ConfigurationError, r"ConcatLinear: in_features must be an int >= 1, got 0"),
    ("concatsquash_negative_width", lambda: ConcatSquashLinear(2, -1, 1), ConfigurationError, r"ConcatSquashLinear: out_features .* got -1"),
    # flow matching
    ("flow_matching_sigma_nan", lambda: FlowMatching(sigma=math.nan), ConfigurationError, r"FlowMatching: sigma must be >= 0, got nan"),
    ("flow_matching_sigma_negative", lambda: FlowMatching(sigma=-0.1), ConfigurationError, r"FlowMatching: sigma must be >= 0, got -0\.1"),
    # CNF settings not checked before
    ("cnf_chunk_fraction", lambda: CNF(field(), exact_chunk_size=1.5), ConfigurationError, r"CNF: exact_chunk_size must be an int >= 1, got 1\.5"),
    ("cnf_max_steps_string", lambda: CNF(field(), max_num_steps="10"), ConfigurationError, r"CNF: max_num_steps must be an int >= 1, got '10'"),
    ("cnf_max_steps_fraction", lambda: CNF(field(), max_num_steps=2.5), ConfigurationError, r"max_num_steps .* got 2\.5"),
    ("cnf_jitter_string", lambda: CNF(field(), end_time_jitter="0.1"), ConfigurationError, r"CNF: end_time_jitter must be in \[0, 1\).* got '0\.1'"),
    ("cnf_jitter_none", lambda: CNF(field(), end_time_jitter=None), ConfigurationError, r"end_time_jitter .* got None"),
    ("cnf_regularization_number", lambda: CNF(field(), regularization=3), ConfigurationError, r"regularization must be a name or a list of names.* got 3"),
    ("cnf_regularization_nested", lambda: CNF(field(), regularization=[["kinetic_energy"]]), ConfigurationError, r"unknown regularization \[\['kinetic_energy'\]\]"),
    ("cnf_field_function", lambda: CNF(lambda t, x, context=None: x, features=2), ConfigurationError, r"CNF: the field must be an nn\.Module.* function"),
    ("cnf_field_none", lambda: CNF(None, features=2), ConfigurationError, r"CNF: the field must be an nn\.Module.* NoneType"),
]


@pytest.mark.parametrize("call, error, match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_argument_is_refused_clearly(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


class Translation(nn.Module):
    """``v = b``: depends on its parameter but not on x, so its divergence is 0 (it used to fail in autograd)."""

    features = 2

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.b.expand_as(x)


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_a_field_that_ignores_x_has_zero_divergence(divergence: str) -> None:
    flow = CNF(Translation(), divergence=divergence, eval_divergence=divergence, end_time=0.5)
    x = torch.randn(5, 2, dtype=torch.float64)
    for mode in (flow.train(), flow.eval()):
        z, logdet = mode(x)
        torch.testing.assert_close(z, x + 0.5 * flow.field.b.detach())
        assert torch.equal(logdet, torch.zeros(5, dtype=torch.float64))
