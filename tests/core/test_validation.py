"""The shared input checks of ctflows.core.validation, called directly: the cases no layer reaches through its own
entry point (an event shape of ``None``, a meta model, a callable without a readable signature)."""
from __future__ import annotations

import pytest
import torch

import ctflows
from ctflows.core.validation import check_call_signature, check_placement, check_tensor
from ctflows.errors import ConfigurationError, InputError

F64 = torch.float64


def test_a_scalar_is_refused_with_a_batch_dimension_hint_even_when_any_shape_goes() -> None:
    """``event_shape=None`` (data, an evaluation context) still needs a batch dimension, said in ctflows terms."""
    with pytest.raises(InputError, match=r"^fit: data is a scalar; it needs a batch dimension first, e\.g\. data\.reshape\(1, -1\)"):
        check_tensor("fit", torch.tensor(1.0), None, name="data")
    check_tensor("fit", torch.zeros(3, 4, 5), None, name="data")  # any non-empty batch passes


def test_each_refusal_names_the_conversion_to_the_owners_dtype() -> None:
    """The advice is the owner's dtype, not a generic one: as_tensor with dtype=..., and .to(dtype)."""
    with pytest.raises(InputError, match=r"convert it with torch\.as_tensor\(x, dtype=torch\.float64\)"):
        check_tensor("Layer", [[1.0, 2.0]], (2,), name="x", dtype=F64)
    with pytest.raises(InputError, match=r"got dtype torch\.int64; convert it with \.to\(torch\.float64\)$"):
        check_tensor("Layer", torch.zeros(1, 2, dtype=torch.long), (2,), name="x", dtype=F64)
    with pytest.raises(InputError, match=r"convert it with \.float\(\) or \.double\(\)$"):
        check_tensor("Layer", torch.zeros(1, 2, dtype=torch.long), (2,), name="x")  # an owner without a dtype
    with pytest.raises(InputError, match=r"got list; convert it with torch\.as_tensor\(x\)$"):
        check_tensor("Layer", [[1.0, 2.0]], (2,), name="x")  # no dtype to name: no "dtype=None" in the advice


def test_check_placement_leaves_the_dtype_of_a_non_floating_tensor_alone() -> None:
    """Documented: only a floating tensor must have the owner's dtype (an index or a mask keeps its own)."""
    check_placement("Layer", torch.zeros(3, dtype=torch.long), torch.device("cpu"), F64)
    with pytest.raises(InputError, match="has dtype torch.float32 but the layer's parameters are torch.float64"):
        check_placement("Layer", torch.zeros(3), torch.device("cpu"), F64)


def test_a_model_on_the_meta_device_runs_to_shapes() -> None:
    """A model loaded with map_location='meta' (structure only) accepts meta input, and samples land on meta:
    a meta tensor has no values, so the finiteness check must not read any."""
    flow = ctflows.realnvp(2, blocks=2, hidden=(8,), seed=0).eval().to("meta")
    log_p = flow.log_prob(torch.zeros(3, 2, device="meta"))
    assert log_p.shape == (3,) and log_p.device.type == "meta"
    x = flow.sample(4)
    assert x.shape == (4, 2) and x.device.type == "meta"


def _three(a, b, c):
    """A user's callback with one parameter too many (left unannotated, so its signature reads plainly)."""
    return a


@pytest.mark.parametrize("callable_", [lambda a, b: a, lambda *args: 0, lambda a, b, c=1: a, max], ids=["exact", "varargs", "default", "builtin"])
def test_a_callable_that_takes_the_arguments_passes(callable_) -> None:
    """Two positional arguments fit; so does a builtin whose signature cannot be read (it will say so itself)."""
    check_call_signature(callable_, 2, "called as f(a, b)")


@pytest.mark.parametrize("callable_, shown", [(lambda a: a, r"<lambda>\(a\)"), (_three, r"_three\(a, b, c\)")], ids=["too few", "too many"])
def test_a_callable_with_too_few_or_too_many_required_arguments_is_refused(callable_, shown: str) -> None:
    """Too many required parameters fail at the first call just as too few do; the message shows the signature found."""
    with pytest.raises(ConfigurationError, match=rf"^called as f\(a, b\); its signature is {shown}$"):
        check_call_signature(callable_, 2, "called as f(a, b)")


def test_the_non_finite_count_is_the_number_of_nan_and_inf_values() -> None:
    """The message counts every NaN, +Inf and -Inf (three here), not just says that there is one."""
    x = torch.zeros(4, 2, dtype=F64)
    x[0, 0], x[2, 1], x[3, 0] = float("nan"), float("inf"), float("-inf")
    with pytest.raises(InputError, match=r"^Layer: x contains 3 NaN or Inf value\(s\); clean the data"):
        check_tensor("Layer", x, (2,), name="x", dtype=F64)


def test_a_context_that_is_not_a_tensor_is_named_by_its_type_when_none_is_taken() -> None:
    """A list handed to a layer without context is refused as a context, its type named (it has no shape to show)."""
    layer = ctflows.ActNorm(2).double()
    with pytest.raises(InputError, match=r"^ActNorm: takes no context but got one \(list\); pass context=None"):
        layer(torch.zeros(3, 2, dtype=F64), [[1.0, 2.0]] * 3)
