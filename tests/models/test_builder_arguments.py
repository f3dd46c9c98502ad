"""Every builder refuses, under its own name, a feature count it cannot build for and a block count that would build
no flow layers (only ActNorm, or nothing)."""
import pytest
import torch

import ctflows
from ctflows.errors import ConfigurationError

BUILDERS = ["realnvp", "nice", "spline", "maf", "resflow", "cnf"]


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("blocks", [0, -1, 2.0, True])
def test_builders_refuse_block_counts_that_are_not_positive_ints(builder, blocks):
    with pytest.raises(ConfigurationError, match=f"{builder}: blocks must be an int >= 1"):
        getattr(ctflows.models, builder)(2, blocks=blocks)


@pytest.mark.parametrize("builder", BUILDERS)
def test_numpy_and_torch_integers_are_counts_too(builder):
    import numpy as np

    for blocks in (np.int64(1), torch.tensor(1)):
        assert len(getattr(ctflows.models, builder)(2, blocks=blocks).transform.layers) >= 1


def test_the_image_builders_check_their_counts_too():
    from ctflows.image import multiscale_cnf, multiscale_glow

    with pytest.raises(ConfigurationError, match="multiscale_cnf: blocks must be an int >= 1"):
        multiscale_cnf((1, 4, 4), blocks=0)
    with pytest.raises(ConfigurationError, match="multiscale_glow: steps must be an int >= 1"):
        multiscale_glow((1, 4, 4), steps=0)


@pytest.mark.parametrize("builder", BUILDERS)
def test_one_block_is_enough(builder):
    flow = getattr(ctflows.models, builder)(2, blocks=1)
    assert any(not isinstance(layer, ctflows.ActNorm) for layer in flow.transform.layers)


@pytest.mark.parametrize("builder", ["realnvp", "nice", "spline", "resflow", "cnf"])
@pytest.mark.parametrize("width", [0, -1, 1.5])
def test_a_context_width_that_is_not_a_positive_int_is_refused_when_built(builder, width):
    # 0 used to build a model that failed only when sampled ('NoneType' object has no attribute 'to'), -1 one
    # that asked for contexts of shape [batch, -1].
    with pytest.raises(ConfigurationError, match="context_features must be an int >= 1"):
        getattr(ctflows.models, builder)(2, context_features=width)


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("features", [0, -2, 2.5, True, "2"])
def test_builders_refuse_feature_counts_that_are_not_positive_ints_under_their_own_name(builder, features):
    # was "ActNorm: features must be ..." (or "TimeMLP: ..."), a layer the user never called; maf(2.5) a TypeError
    with pytest.raises(ConfigurationError, match=f"^{builder}: features must be an int >= 1"):
        getattr(ctflows.models, builder)(features)


@pytest.mark.parametrize("builder", ["realnvp", "nice", "spline"])
def test_coupling_builders_refuse_one_feature_and_name_the_builders_that_take_it(builder):
    with pytest.raises(ConfigurationError, match=rf"^{builder}: a coupling flow needs at least 2 features.*got 1; for 1-D "
                                                 r"data use ctflows.cnf, ctflows.resflow"):
        getattr(ctflows.models, builder)(1)
    for named in ("cnf", "resflow"):  # the ones the message names do build, and give a density
        flow = getattr(ctflows.models, named)(1, blocks=1, hidden=(8,))
        assert flow.log_prob(torch.linspace(-2, 2, 5).unsqueeze(1)).shape == (5,)
