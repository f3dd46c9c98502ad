"""Bad settings of the coupling layers and the spline function: a ctflows error naming the class or function,
the argument and the value, instead of a torch/Python error, a silent NaN or a silently different mask/spline."""
from __future__ import annotations

import math
from typing import Any, Callable

import pytest
import torch

from ctflows.coupling import AdditiveCoupling, AffineCoupling, RQSplineCoupling, checkerboard_mask, rational_quadratic_spline
from ctflows.errors import ConfigurationError, InputError

K = 4


def spline(widths=(5, K), heights=(5, K), derivatives=(5, K - 1), x=(5,), **kwargs: Any):
    kwargs.setdefault("bound", 3.0)
    return rational_quadratic_spline(torch.randn(x), torch.zeros(widths), torch.zeros(heights), torch.zeros(derivatives), **kwargs)


CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("features_string", lambda: AdditiveCoupling("4"), ConfigurationError, r"AdditiveCoupling: features must be an int >= 1, got '4'"),
    ("features_none", lambda: AffineCoupling(None), ConfigurationError, r"AffineCoupling: features .* got None"),
    # an activation given as a list failed as "unhashable type: 'list'"
    ("activation_list", lambda: AffineCoupling(4, activation=["relu"]), ConfigurationError, r"^AffineCoupling: unknown activation \['relu'\]"),
    # under the layer's own name, not that of its conditioner ("MLP: ...")
    ("hidden_zero", lambda: RQSplineCoupling(4, hidden=(8, 0)), ConfigurationError, r"^RQSplineCoupling: each hidden width must be an int >= 1, got 0"),
    ("activation_unknown", lambda: AdditiveCoupling(4, activation="bogus"), ConfigurationError, r"^AdditiveCoupling: unknown activation 'bogus'; choose one of"),
    ("parity_2", lambda: AffineCoupling(4, parity=2), ConfigurationError, r"AffineCoupling: parity must be 0 or 1.* got 2"),
    ("parity_negative", lambda: RQSplineCoupling(4, parity=-1), ConfigurationError, r"RQSplineCoupling: parity .* got -1"),
    ("parity_fraction", lambda: AdditiveCoupling(4, parity=1.5), ConfigurationError, r"parity must be 0 or 1.* got 1\.5"),
    ("parity_string", lambda: AdditiveCoupling(4, parity="1"), ConfigurationError, r"parity .* got '1'"),
    ("mask_value_2", lambda: AffineCoupling(4, mask=[1, 0, 2, 0]), ConfigurationError, r"AffineCoupling: mask must hold only True/False \(or 1/0\), got \[1, 0, 2, 0\]"),
    ("mask_fraction", lambda: AffineCoupling(4, mask=torch.tensor([0.5, 0.0, 1.0, 0.0])), ConfigurationError, r"mask must hold only True/False"),
    ("mask_string", lambda: AdditiveCoupling(4, mask="1010"), ConfigurationError, r"mask must hold only True/False.* got '1010'"),
    # A mask with no True (or no False) entry leaves one half empty: the conditioner failed naming MLP, not the layer.
    ("mask_all_true", lambda: AffineCoupling(4, mask=[True] * 4), ConfigurationError, r"AffineCoupling: mask must be a \[4\] boolean tensor with both True and False entries, got \[True, True, True, True\]"),
    ("mask_all_false", lambda: AdditiveCoupling(4, mask=torch.zeros(4, dtype=torch.bool)), ConfigurationError, r"AdditiveCoupling: mask must be a \[4\] boolean tensor with both True and False"),
    ("features_one", lambda: RQSplineCoupling(1), ConfigurationError, r"RQSplineCoupling: a coupling layer needs at least 2 features, got 1"),
    ("context_features_zero", lambda: AffineCoupling(4, context_features=0), ConfigurationError, r"AffineCoupling: context_features must be an int >= 1, got 0"),
    ("mask_short_shows_value", lambda: AdditiveCoupling(4, mask=[True, False, True]), ConfigurationError, r"mask must be a \[4\] boolean tensor.* got \[True, False, True\]"),
    ("scale_bound_inf", lambda: AffineCoupling(4, scale_bound=math.inf), ConfigurationError, r"AffineCoupling: scale_bound must be a finite number > 0.* got inf"),
    # b = 0 makes the soft clamp 0 · tanh(ŝ / 0) = NaN for every point.
    ("scale_bound_zero", lambda: AffineCoupling(4, scale_bound=0.0), ConfigurationError, r"AffineCoupling: scale_bound must be a finite number > 0.* got 0\.0"),
    ("scale_bound_negative", lambda: AffineCoupling(4, scale_bound=-1.0), ConfigurationError, r"scale_bound must be a finite number > 0.* got -1\.0"),
    ("scale_bound_string", lambda: AffineCoupling(4, scale_bound="3"), ConfigurationError, r"scale_bound .* got '3'"),
    ("bins_none", lambda: RQSplineCoupling(4, bins=None), ConfigurationError, r"RQSplineCoupling: bins must be an int >= 1, got None"),
    ("bound_inf", lambda: RQSplineCoupling(4, bound=math.inf), ConfigurationError, r"RQSplineCoupling: bound must be a finite number > 0.* got inf"),
    ("bound_string", lambda: RQSplineCoupling(4, bound="3"), ConfigurationError, r"bound .* got '3'"),
    ("min_width_string", lambda: RQSplineCoupling(4, min_width="0.01"), ConfigurationError, r"RQSplineCoupling: min_width must be .* got '0\.01'"),
    ("min_derivative_none", lambda: RQSplineCoupling(4, min_derivative=None), ConfigurationError, r"min_derivative must be in \(0, 1\).* got None"),
    ("spline_bound_zero", lambda: spline(bound=0.0), ConfigurationError, r"rational_quadratic_spline: bound must be a finite number > 0.* got 0\.0"),
    ("spline_bound_negative", lambda: spline(bound=-1.0), ConfigurationError, r"bound .* got -1\.0"),
    ("spline_too_many_derivatives", lambda: spline(derivatives=(5, K)), InputError, r"rational_quadratic_spline: for x \[5\] and K bins.* got \[5, 4\], \[5, 4\], \[5, 4\]"),
    ("spline_heights_other_bins", lambda: spline(heights=(5, K + 1)), InputError, r"widths and heights must be \[\.\.\., K\]"),
    ("spline_x_other_shape", lambda: spline(x=(6,)), InputError, r"for x \[6\]"),
    ("spline_widths_other_batch", lambda: spline(x=(6,), derivatives=(6, K - 1)), InputError, r"for x \[6\].* got \[5, 4\], \[5, 4\], \[6, 3\]"),
    ("spline_min_width_too_large", lambda: spline(min_width=0.5), ConfigurationError, r"min_width must be a number > 0 with bins × min_width < 1 \(4 bins\).* got 0\.5"),
    ("spline_min_derivative_above_1", lambda: spline(min_derivative=1.5), ConfigurationError, r"min_derivative must be in \(0, 1\).* got 1\.5"),
    # 1 itself has no shifted softplus (log(e^0 - 1)) and failed as "math domain error"
    ("spline_min_derivative_1", lambda: spline(min_derivative=1.0), ConfigurationError, r"min_derivative must be in \(0, 1\).* got 1\.0"),
    ("checkerboard_zero", lambda: checkerboard_mask(0), ConfigurationError, r"checkerboard_mask: features must be an int >= 1, got 0"),
    ("checkerboard_negative", lambda: checkerboard_mask(-1), ConfigurationError, r"features .* got -1"),
    ("checkerboard_parity_2", lambda: checkerboard_mask(4, 2), ConfigurationError, r"checkerboard_mask: parity must be 0 or 1.* got 2"),
]


@pytest.mark.parametrize("call, error, match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_argument_is_refused_clearly(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_masks_given_as_numbers_and_boolean_parity_still_work() -> None:
    x = torch.randn(3, 4)
    numbers = AffineCoupling(4, mask=[1, 0, 1, 0], hidden=(8,))
    assert numbers.transformed.tolist() == [0, 2]
    assert AffineCoupling(4, parity=True, hidden=(8,)).transformed.tolist() == [0, 2]
    assert torch.isfinite(numbers(x)[0]).all()
