"""Bad arguments to the residual package's constructors and estimators: a ctflows error naming the class or
function, the argument and the value, instead of a torch/Python error, a misleading SolverError or a silent 0."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

from ctflows.errors import ConfigurationError, InputError
from ctflows.residual import (
    LipschitzMLP,
    LipSwish,
    ResidualBlock,
    SpectralLinear,
    Truncation,
    exact_logdet,
    fixed_point_inverse,
    power_series_logdet,
    russian_roulette_logdet,
)


def graph() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(5, 4, requires_grad=True)
    return 0.5 * torch.tanh(x), x


def contraction(v: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.tanh(v)


CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("coefficient_none", lambda: ResidualBlock(4, (8,), coefficient=None), ConfigurationError, r"LipschitzMLP: coefficient must be a number in \(0, 1\).* got None"),
    ("coefficient_string", lambda: LipschitzMLP(4, (8,), coefficient="0.9"), ConfigurationError, r"coefficient .* got '0\.9'"),
    ("hidden_zero", lambda: ResidualBlock(4, (8, 0)), ConfigurationError, r"^ResidualBlock: each hidden width must be an int >= 1, got 0"),  # not "MLP: ..."
    ("terms_string", lambda: ResidualBlock(4, (8,), terms="3"), ConfigurationError, r"ResidualBlock: terms must be an int >= 1, got '3'"),
    ("eval_terms_fraction", lambda: ResidualBlock(4, (8,), eval_terms=2.5), ConfigurationError, r"ResidualBlock: eval_terms must be an int >= 1, got 2\.5"),
    ("max_iterations_fraction", lambda: ResidualBlock(4, (8,), max_iterations=2.5), ConfigurationError, r"ResidualBlock: max_iterations .* got 2\.5"),
    ("max_iterations_none", lambda: ResidualBlock(4, (8,), max_iterations=None), ConfigurationError, r"max_iterations .* got None"),
    ("tolerance_negative", lambda: ResidualBlock(4, (8,), tolerance=-1.0), ConfigurationError, r"ResidualBlock: tolerance must be a number >= 0.* got -1\.0"),
    ("tolerance_nan", lambda: ResidualBlock(4, (8,), tolerance=math.nan), ConfigurationError, r"tolerance .* got nan"),
    ("truncation_name", lambda: ResidualBlock(4, (8,), truncation="geometric"), ConfigurationError, r"ResidualBlock: truncation must be a ctflows\.residual\.Truncation.* got 'geometric'"),
    ("activation_list", lambda: ResidualBlock(4, (8,), activation=["elu"]), ConfigurationError, r"activation \['elu'\] is not available"),
    ("truncation_infinite_mean", lambda: Truncation(mean_extra=math.inf), ConfigurationError, r"Truncation: mean_extra must be a finite number > 0.* got inf"),
    ("truncation_zero_mean", lambda: Truncation(mean_extra=0.0), ConfigurationError, r"Truncation: mean_extra must be a finite number > 0.* got 0\.0"),
    ("truncation_mean_string", lambda: Truncation(mean_extra="1"), ConfigurationError, r"mean_extra .* got '1'"),
    ("truncation_fractional_min", lambda: Truncation(min_terms=1.5), ConfigurationError, r"Truncation: min_terms must be a whole number >= 0.* got 1\.5"),
    ("truncation_min_string", lambda: Truncation(min_terms="2"), ConfigurationError, r"min_terms .* got '2'"),
    ("power_series_terms_fraction", lambda: power_series_logdet(*graph(), torch.ones(5, 4), 2.5), ConfigurationError, r"power_series_logdet: terms must be an int >= 1, got 2\.5"),
    ("power_series_noise_shape", lambda: power_series_logdet(*graph(), torch.ones(5, 3), 2), InputError, r"power_series_logdet: noise must be a tensor of x's shape \[5, 4\].* got \[5, 3\]"),
    ("roulette_negative_terms", lambda: russian_roulette_logdet(*graph(), torch.ones(5, 4), Truncation(), -1), ConfigurationError, r"russian_roulette_logdet: n must be a whole number >= 0.* got -1"),
    ("roulette_fractional_terms", lambda: russian_roulette_logdet(*graph(), torch.ones(5, 4), Truncation(), 2.5), ConfigurationError, r"n must be .* got 2\.5"),
    ("roulette_truncation_name", lambda: russian_roulette_logdet(*graph(), torch.ones(5, 4), "geometric", 2), ConfigurationError, r"russian_roulette_logdet: truncation must be a Truncation"),
    ("roulette_noise_shape", lambda: russian_roulette_logdet(*graph(), torch.ones(5, 3), Truncation(), 2), InputError, r"russian_roulette_logdet: noise .* got \[5, 3\]"),
    ("exact_logdet_mismatch", lambda: exact_logdet(graph()[0][:, :3], graph()[1]), InputError, r"v and x must both be \[batch, D\] tensors of one shape"),
    ("fixed_point_tolerance_negative", lambda: fixed_point_inverse(contraction, torch.ones(2, 3), tolerance=-1.0), ConfigurationError, r"ResidualBlock: tolerance must be a number >= 0"),
    ("fixed_point_max_iterations_1", lambda: fixed_point_inverse(contraction, torch.ones(2, 3), max_iterations=1), ConfigurationError, r"max_iterations must be >= 2, got 1"),
    ("fixed_point_max_iterations_string", lambda: fixed_point_inverse(contraction, torch.ones(2, 3), max_iterations="5"), ConfigurationError, r"max_iterations must be an int >= 1, got '5'"),
    ("spectral_linear_not_linear", lambda: SpectralLinear(nn.Conv1d(2, 2, 1)), ConfigurationError, r"SpectralLinear: linear must be an nn\.Linear, got Conv1d"),
    ("spectral_linear_rtol_nan", lambda: SpectralLinear(nn.Linear(3, 3), eval_rtol=math.nan), ConfigurationError, r"SpectralLinear: eval_rtol must be a number >= 0.* got nan"),
    ("lipswish_beta_zero", lambda: LipSwish(0.0), ConfigurationError, r"LipSwish: beta must be a number > 0.* got 0\.0"),
    ("lipswish_beta_nan", lambda: LipSwish(math.nan), ConfigurationError, r"LipSwish: beta .* got nan"),
]


@pytest.mark.parametrize("call, error, match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_argument_is_refused_clearly(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_a_large_lipswish_beta_starts_where_asked() -> None:
    # softplus⁻¹(β) computed as log(expm1(β)) overflowed for β > 709.
    assert float(LipSwish(1000.0).beta.detach()) == pytest.approx(1000.0)


def test_boundary_values_and_numpy_or_0d_tensor_numbers_are_accepted() -> None:
    """The edges of the valid ranges (eval_rtol = 0: run every eval iteration; min_terms = 0; tolerance = 0) and
    NumPy or 0-d tensor numbers are taken, as plain Python numbers."""
    assert SpectralLinear(nn.Linear(3, 3), eval_rtol=0.0).eval_rtol == 0.0
    truncation = Truncation(mean_extra=np.float64(2.0), min_terms=np.int64(0))
    assert (truncation.mean_extra, truncation.min_terms) == (2.0, 0) and type(truncation.min_terms) is int
    layer = ResidualBlock(2, (4,), coefficient=torch.tensor(0.5), terms=np.int64(3), tolerance=0.0)
    assert (layer.branch.coefficient, layer.terms, layer.tolerance) == (0.5, 3, 0.0)
    assert type(layer.branch.coefficient) is float and type(layer.terms) is int
