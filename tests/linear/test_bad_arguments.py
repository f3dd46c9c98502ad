"""Bad settings of the linear layers: a ctflows error naming the class, the argument and the value, instead of a
torch/Python error, a silent NaN or a permutation cast from floats or booleans into another one."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
import torch

from ctflows.errors import ConfigurationError, DataError
from ctflows.linear import ActNorm, LULinear, Permutation, RandomPermutation, Standardization

CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("permutation_fractions", lambda: Permutation([0.5, 1]), ConfigurationError, r"Permutation: permutation must be integer indices.* got \[0\.5, 1\]"),
    ("permutation_floats", lambda: Permutation(torch.tensor([1.0, 0.0])), ConfigurationError, r"must be integer indices"),
    ("permutation_booleans", lambda: Permutation(torch.tensor([True, False])), ConfigurationError, r"must be integer indices.* True"),
    # A complex tensor cast to long would drop the imaginary parts without a word.
    ("permutation_complex", lambda: Permutation(torch.tensor([1 + 2j, 0j])), ConfigurationError, r"must be integer indices"),
    ("permutation_string", lambda: Permutation("012"), ConfigurationError, r"must be integer indices.* got '012'"),
    ("permutation_none", lambda: Permutation(None), ConfigurationError, r"must be integer indices.* got None"),
    ("permutation_empty", lambda: Permutation([]), ConfigurationError, r"Permutation: \[\] is not a permutation"),
    ("permutation_repeated_index", lambda: Permutation([0, 2, 2]), ConfigurationError, r"Permutation: \[0, 2, 2\] is not a permutation of 0\.\.2"),
    ("permutation_out_of_range", lambda: Permutation([1, 2, 3]), ConfigurationError, r"Permutation: \[1, 2, 3\] is not a permutation of 0\.\.2"),
    ("random_permutation_seed", lambda: RandomPermutation(4, generator=0), ConfigurationError, r"RandomPermutation: generator must be a torch\.Generator or None, got int 0"),
    ("lu_linear_seed", lambda: LULinear(4, generator=3), ConfigurationError, r"LULinear: generator must be a torch\.Generator.* got int 3"),
    ("actnorm_eps_negative", lambda: ActNorm(4, eps=-1.0), ConfigurationError, r"ActNorm: eps must be a number >= 0.* got -1\.0"),
    ("actnorm_eps_nan", lambda: ActNorm(4, eps=math.nan), ConfigurationError, r"ActNorm: eps .* got nan"),
    ("actnorm_eps_string", lambda: ActNorm(4, eps="1e-6"), ConfigurationError, r"ActNorm: eps .* got '1e-6'"),
    ("standardization_strings", lambda: Standardization("a", "b"), DataError, r"Standardization: loc and scale must be \[D\] tensors of numbers, got 'a' and 'b'"),
    ("standardization_none", lambda: Standardization(None, None), DataError, r"loc and scale .* got None and None"),
    ("standardization_empty", lambda: Standardization(torch.zeros(0), torch.zeros(0)), DataError, r"Standardization: .*\[D\] with D >= 1, got \[0\]"),
    ("from_data_list", lambda: Standardization.from_data([[1.0, 2.0], [3.0, 5.0]]), DataError, r"Standardization\.from_data: x must be a torch\.Tensor, got list"),
    ("from_data_min_scale_string", lambda: Standardization.from_data(torch.randn(5, 2), min_scale="x"), ConfigurationError, r"Standardization\.from_data: min_scale must be a number >= 0.* got 'x'"),
]


@pytest.mark.parametrize("call, error, match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_argument_is_refused_clearly(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("given", [[2, 0, 1], torch.tensor([2, 0, 1]), np.array([2, 0, 1]), torch.tensor([2, 0, 1], dtype=torch.int32)])
def test_integer_permutations_in_any_container_still_work(given: Any) -> None:
    x = torch.arange(3.0).reshape(1, 3)
    assert Permutation(given)(x)[0].tolist() == [[2.0, 0.0, 1.0]]
