"""Bad settings of MADE, MaskedLinear and the MAF layer: a ctflows error naming the class, the argument and the
value, instead of a torch/Python error, a silent NaN or an order truncated to another permutation."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
import torch

from ctflows.autoregressive import MADE, MaskedAutoregressive, MaskedLinear
from ctflows.errors import ConfigurationError

CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("order_fractions", lambda: MaskedAutoregressive(4, (8,), order=[0.5, 1, 2, 3]), ConfigurationError, r"MaskedAutoregressive: order must be a permutation of range\(4\).* got \[0\.5, 1, 2, 3\]"),
    ("order_floats", lambda: MaskedAutoregressive(4, (8,), order=[0.0, 1.0, 2.0, 3.0]), ConfigurationError, r"order must be a permutation"),
    ("order_string", lambda: MaskedAutoregressive(4, (8,), order="0123"), ConfigurationError, r"order must be a permutation.* got '0123'"),
    ("order_number", lambda: MADE(4, 2, (8,), order=5), ConfigurationError, r"MADE: order must be a permutation of range\(4\).* got 5"),
    # [True, False] would pass as the permutation [1, 0]; a complex order would fail inside torch's sort.
    ("order_bools", lambda: MADE(2, 2, (4,), order=[True, False]), ConfigurationError, r"MADE: order must be a permutation of range\(2\).* got \[True, False\]"),
    ("order_complex", lambda: MaskedAutoregressive(2, (4,), order=[0j, 1 + 0j]), ConfigurationError, r"MaskedAutoregressive: order must be a permutation"),
    # A negative entry would index from the end, leaving another feature's degree unset.
    ("order_negative", lambda: MADE(3, 2, (4,), order=[0, -1, 2]), ConfigurationError, r"MADE: order must be a permutation of range\(3\).* got \[0, -1, 2\]"),
    ("order_ragged", lambda: MADE(2, 2, (4,), order=[[0, 1], [2]]), ConfigurationError, r"MADE: order must be a permutation.* got \[\[0, 1\], \[2\]\]"),
    ("maf_features_fraction", lambda: MaskedAutoregressive(2.5), ConfigurationError, r"MaskedAutoregressive: features must be an int >= 1, got 2\.5"),
    ("maf_features_string", lambda: MaskedAutoregressive("4"), ConfigurationError, r"features .* got '4'"),
    ("maf_scale_bound_inf", lambda: MaskedAutoregressive(4, scale_bound=math.inf), ConfigurationError, r"MaskedAutoregressive: scale_bound must be a finite number > 0.* got inf"),
    ("maf_scale_bound_none", lambda: MaskedAutoregressive(4, scale_bound=None), ConfigurationError, r"scale_bound .* got None"),
    ("maf_context_zero", lambda: MaskedAutoregressive(3, context_features=0), ConfigurationError, r"MaskedAutoregressive: context_features must be an int >= 1, got 0"),
    ("made_context_zero", lambda: MADE(3, 2, context_features=0), ConfigurationError, r"MADE: context_features must be an int >= 1, got 0"),
    # under the layer's own name, not that of its MADE
    ("maf_hidden_zero", lambda: MaskedAutoregressive(3, hidden=(0,)), ConfigurationError, r"^MaskedAutoregressive: each hidden width must be an int >= 1, got 0"),
    ("maf_activation_unknown", lambda: MaskedAutoregressive(3, activation="bogus"), ConfigurationError, r"^MaskedAutoregressive: unknown activation 'bogus'"),
    ("made_activation_unknown", lambda: MADE(3, 2, activation="bogus"), ConfigurationError, r"^MADE: unknown activation 'bogus'"),
    ("made_hidden_string", lambda: MADE(3, 2, hidden="64"), ConfigurationError, r"MADE: hidden must be a sequence of widths .* got '64'"),
    ("made_hidden_zero", lambda: MADE(3, 2, hidden=(8, 0)), ConfigurationError, r"MADE: each hidden width must be an int >= 1, got 0"),
    ("made_features_zero", lambda: MADE(0, 2), ConfigurationError, r"MADE: features must be an int >= 1, got 0"),
    ("made_params_zero", lambda: MADE(4, 0), ConfigurationError, r"MADE: params_per_feature must be an int >= 1, got 0"),
    ("made_params_fraction", lambda: MADE(4, 2.5), ConfigurationError, r"params_per_feature .* got 2\.5"),
    ("masked_linear_1d", lambda: MaskedLinear(torch.ones(3)), ConfigurationError, r"MaskedLinear: mask must be a non-empty \[out, in\] tensor of 0s and 1s, got shape \[3\]"),
    ("masked_linear_list", lambda: MaskedLinear([[1, 0], [1, 1]]), ConfigurationError, r"MaskedLinear: mask .* got list"),
    ("masked_linear_fraction", lambda: MaskedLinear(torch.tensor([[0.5, 2.0]])), ConfigurationError, r"tensor of 0s and 1s"),
    ("masked_linear_two", lambda: MaskedLinear(torch.tensor([[1, 2]])), ConfigurationError, r"tensor of 0s and 1s, got shape \[1, 2\]"),
    ("masked_linear_empty", lambda: MaskedLinear(torch.ones(0, 3)), ConfigurationError, r"non-empty \[out, in\] tensor .* got shape \[0, 3\]"),
]


@pytest.mark.parametrize("call, error, match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_argument_is_refused_clearly(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "order",
    [[3, 2, 1, 0], torch.tensor([3, 2, 1, 0]), np.array([3, 2, 1, 0]), range(3, -1, -1),
     # other integer dtypes: torch reads a uint8 index as a mask and refuses an int16 one, unless cast to long
     torch.tensor([3, 2, 1, 0], dtype=torch.uint8), np.array([3, 2, 1, 0], dtype=np.int16)],
    ids=["list", "tensor", "array", "range", "uint8_tensor", "int16_array"],
)
def test_orders_as_lists_tensors_arrays_and_ranges_still_work(order: Any) -> None:
    """Any integer sequence that is a permutation gives the degrees it says: feature order[k] gets k + 1."""
    made = MADE(4, 2, (8,), order=order)
    assert made.degrees.tolist() == [4, 3, 2, 1]
