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
