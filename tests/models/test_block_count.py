"""Every builder refuses a block count that would build no flow layers (only ActNorm, or nothing)."""
import pytest

import ctflows
from ctflows.errors import ConfigurationError

BUILDERS = ["realnvp", "nice", "spline", "maf", "resflow", "cnf"]


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("blocks", [0, -1, 2.0, True])
def test_builders_refuse_block_counts_that_are_not_positive_ints(builder, blocks):
    with pytest.raises(ConfigurationError, match=f"{builder}: blocks must be an int >= 1"):
        getattr(ctflows.models, builder)(2, blocks=blocks)


@pytest.mark.parametrize("builder", BUILDERS)
def test_one_block_is_enough(builder):
    flow = getattr(ctflows.models, builder)(2, blocks=1)
    assert any(not isinstance(layer, ctflows.ActNorm) for layer in flow.transform.layers)
