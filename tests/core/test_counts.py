"""positive_count: whole numbers >= 1 of any integer type, and nothing else."""
import numpy as np
import pytest
import torch

from ctflows.core.counts import positive_count
from ctflows.errors import ConfigurationError


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(2), torch.tensor(4), torch.tensor(5, dtype=torch.int32)])
def test_whole_numbers_of_any_integer_type_are_counts(value):
    assert positive_count("Layer", "blocks", value) == int(value) and type(positive_count("Layer", "blocks", value)) is int


@pytest.mark.parametrize("value", [0, -2, 2.0, 2.5, "3", None, True, np.True_, torch.tensor(True), torch.tensor([3]),
                                   torch.tensor(3.0), np.float64(2.0)])
def test_anything_else_is_refused_with_the_setting_named(value):
    with pytest.raises(ConfigurationError, match=r"Layer: blocks must be an int >= 1"):
        positive_count("Layer", "blocks", value)


def test_hidden_widths_are_a_sequence_of_counts_and_never_a_string():
    from ctflows.core.counts import widths

    assert widths("MLP", (64, np.int64(32))) == (64, 32) and widths("MLP", []) == ()
    # A string or bytes would iterate character by character: b"@@" would read as widths (64, 64).
    for bad in ("64", b"@@", 64, None):
        with pytest.raises(ConfigurationError, match=r"MLP: hidden must be a sequence of widths"):
            widths("MLP", bad)
    with pytest.raises(ConfigurationError, match=r"MLP: each hidden width must be an int >= 1"):
        widths("MLP", (64, 0))


@pytest.mark.parametrize("value", [True, False, np.True_, torch.tensor(True), "2.0", float("nan"), float("inf"), torch.tensor([1.0, 2.0]), None])
def test_a_real_setting_is_a_finite_number_and_not_a_flag_a_string_or_several_numbers(value):
    from ctflows.core.counts import real_setting

    with pytest.raises(ConfigurationError, match=r"Layer: bound must be a number > 0, got"):
        real_setting("Layer", "bound", value, "a number > 0", lambda v: v > 0)


@pytest.mark.parametrize("value", [2, 2.5, np.float32(2.5), torch.tensor(2.5), torch.tensor([2.5])])
def test_numbers_of_any_real_type_are_real_settings(value):
    from ctflows.core.counts import real_setting

    number = real_setting("Layer", "bound", value, "a number > 0", lambda v: v > 0)
    assert type(number) is float and number == float(value)
    with pytest.raises(ConfigurationError, match=r"must be a number > 3"):
        real_setting("Layer", "bound", value, "a number > 3", lambda v: v > 3)
