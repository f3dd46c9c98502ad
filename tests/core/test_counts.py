"""The checks of numeric settings: counts are whole numbers of any integer type, real settings one finite real number,
and neither is ever a flag, a string or several numbers."""
import numpy as np
import pytest
import torch

from ctflows.core.counts import check_seed, non_negative_count, optional_count, positive_count, real_setting, widths
from ctflows.errors import ConfigurationError, InputError


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(2), torch.tensor(4), torch.tensor(5, dtype=torch.int32)])
def test_whole_numbers_of_any_integer_type_are_counts(value):
    assert positive_count("Layer", "blocks", value) == int(value) and type(positive_count("Layer", "blocks", value)) is int


@pytest.mark.parametrize("value", [0, -2, 2.0, 2.5, "3", None, True, np.True_, torch.tensor(True), torch.tensor([3]),
                                   torch.tensor(3.0), np.float64(2.0)])
def test_anything_else_is_refused_with_the_setting_named(value):
    with pytest.raises(ConfigurationError, match=r"Layer: blocks must be an int >= 1"):
        positive_count("Layer", "blocks", value)
    # a call's input: the error class asked for
    with pytest.raises(InputError, match=r"^Flow.sample: n must be an int >= 1, got"):
        positive_count("Flow.sample", "n", value, InputError)


def test_hidden_widths_are_a_sequence_of_counts_and_never_a_string():
    assert widths("MLP", (64, np.int64(32))) == (64, 32) and widths("MLP", []) == ()
    # A string or bytes would iterate character by character: b"@@" would read as widths (64, 64).
    for bad in ("64", b"@@", 64, None):
        with pytest.raises(ConfigurationError, match=r"MLP: hidden must be a sequence of widths"):
            widths("MLP", bad)
    with pytest.raises(ConfigurationError, match=r"MLP: each hidden width must be an int >= 1"):
        widths("MLP", (64, 0))


@pytest.mark.parametrize("value", [True, False, np.True_, torch.tensor(True), "2.0", float("nan"), float("inf"), torch.tensor([1.0, 2.0]), None,
                                   torch.tensor([2.5]), np.array([2.5])])
def test_a_real_setting_is_a_finite_number_and_not_a_flag_a_string_or_several_numbers(value):
    """One number: a tensor or array with dimensions is refused even with one element (float() would read it), as
    whole numbers refuse torch.tensor([3])."""
    with pytest.raises(ConfigurationError, match=r"Layer: bound must be a number > 0, got"):
        real_setting("Layer", "bound", value, "a number > 0", lambda v: v > 0)


@pytest.mark.parametrize("value", [2 + 3j, np.complex128(2 + 3j), np.complex64(2), np.array(2 + 0j), torch.tensor(1 + 2j),
                                   torch.tensor(2 + 0j)])
def test_a_complex_number_is_not_a_real_setting(value) -> None:
    """float() drops the imaginary part of a NumPy complex with only a warning (np.complex128(2 + 3j) read as 2.0), and
    torch's raises a RuntimeError: each is refused with the setting named, even with no imaginary part."""
    with pytest.raises(ConfigurationError, match=r"^Layer: bound must be a number > 0, got"):
        real_setting("Layer", "bound", value, "a number > 0", lambda v: v > 0)


def test_an_infinite_real_setting_passes_only_where_it_means_no_limit() -> None:
    """With ``infinite``, ±inf reaches ``ok`` (which decides) and NaN never does; without it both infinities are refused."""
    assert real_setting("fit", "clip_grad", float("inf"), "a positive number", lambda v: v > 0, infinite=True) == float("inf")
    for value, infinite in ((-float("inf"), True), (float("nan"), True), (float("inf"), False)):
        with pytest.raises(ConfigurationError, match=r"^fit: clip_grad must be a positive number, got"):
            real_setting("fit", "clip_grad", value, "a positive number", lambda v: v > 0, infinite=infinite)


@pytest.mark.parametrize("value", [2, 2.5, np.float32(2.5), torch.tensor(2.5), np.array(2.5)])
def test_numbers_of_any_real_type_are_real_settings(value):
    number = real_setting("Layer", "bound", value, "a number > 0", lambda v: v > 0)
    assert type(number) is float and number == float(value)
    with pytest.raises(ConfigurationError, match=r"must be a number > 3"):
        real_setting("Layer", "bound", value, "a number > 3", lambda v: v > 3)


@pytest.mark.parametrize("value", [np.array(True), np.array(False), np.array([True])])
def test_a_numpy_boolean_array_is_not_a_real_setting(value) -> None:
    """float(np.array(True)) is 1.0: a flag passed where a number belongs must be refused like np.True_ is."""
    with pytest.raises(ConfigurationError, match=r"Layer: bound must be a number >= 0, got"):
        real_setting("Layer", "bound", value, "a number >= 0", lambda v: v >= 0)


def test_an_optional_count_is_none_or_a_count_and_zero_or_false_is_not_none() -> None:
    """``None`` means "not set"; 0 and False are refused (a context width of 0 builds a layer that cannot run)."""
    assert optional_count("Layer", "context_features", None) is None
    assert optional_count("Layer", "context_features", np.int64(3)) == 3
    for bad in (0, False, -1):
        with pytest.raises(ConfigurationError, match=r"Layer: context_features must be an int >= 1"):
            optional_count("Layer", "context_features", bad)


@pytest.mark.parametrize("seed, expected", [(None, None), (0, 0), (np.int64(7), 7), (torch.tensor(5), 5), (2**63 - 1, 2**63 - 1)])
def test_a_seed_is_none_or_a_whole_number_below_two_to_the_63(seed, expected) -> None:
    """The range ends at 2^63 - 1 inclusive: callers derive seed + 1 and seed + 2, which torch must still take."""
    assert check_seed("Model", seed) == expected


@pytest.mark.parametrize("seed", [-1, 2**63, 3.0, True, np.True_, "1", torch.tensor([1])])
def test_a_seed_out_of_range_or_not_a_whole_number_is_refused(seed) -> None:
    with pytest.raises(ConfigurationError, match=r"^Model: seed must be a whole number from 0 to 2\^63 - 1, or None"):
        check_seed("Model", seed)


@pytest.mark.parametrize("value, expected", [(0, 0), (np.int64(3), 3), (torch.tensor(2), 2)])
def test_a_non_negative_count_takes_zero_and_whole_numbers_of_any_integer_type(value, expected) -> None:
    assert non_negative_count("fit_x", "max_steps", value) == expected


@pytest.mark.parametrize("value", [-1, 2.0, True, np.True_, "1", torch.tensor([1])])
def test_a_non_negative_count_refuses_the_rest_with_the_error_class_asked_for(value) -> None:
    with pytest.raises(ConfigurationError, match=r"^fit_x: max_steps must be a non-negative int, got"):
        non_negative_count("fit_x", "max_steps", value)
    with pytest.raises(InputError, match=r"^Moons: n must be a non-negative int, got"):
        non_negative_count("Moons", "n", value, InputError)


def test_the_refused_value_is_shown_as_its_repr() -> None:
    """A string "3" reads as '3' in the message, told apart from the number 3 that would have been taken."""
    with pytest.raises(ConfigurationError, match=r"^Layer: blocks must be an int >= 1, got '3'$"):
        positive_count("Layer", "blocks", "3")
    with pytest.raises(ConfigurationError, match=r"^Layer: bound must be a number > 0, got '2.5'$"):
        real_setting("Layer", "bound", "2.5", "a number > 0", lambda v: v > 0)
