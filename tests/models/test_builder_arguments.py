"""Every builder refuses, under its own name, a feature count it cannot build for and a block count that would build
no flow layers (only ActNorm, or nothing)."""
import numpy as np
import pytest
import torch

import ctflows
from ctflows.errors import ConfigurationError
from ctflows.image import multiscale_cnf, multiscale_glow

BUILDERS = ["realnvp", "nice", "spline", "maf", "resflow", "cnf"]


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("blocks", [0, -1, 2.0, True])
def test_builders_refuse_block_counts_that_are_not_positive_ints(builder, blocks):
    with pytest.raises(ConfigurationError, match=f"{builder}: blocks must be an int >= 1"):
        getattr(ctflows.models, builder)(2, blocks=blocks)


@pytest.mark.parametrize("builder", BUILDERS)
def test_numpy_and_torch_integers_are_counts_too(builder):
    for blocks in (np.int64(1), torch.tensor(1)):
        assert len(getattr(ctflows.models, builder)(2, blocks=blocks).transform.layers) >= 1


def test_the_image_builders_check_their_counts_too():
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
    for named in ("cnf", "resflow", "maf"):  # the ones the message names, and maf (not a coupling flow), build a density
        flow = getattr(ctflows.models, named)(1, blocks=1, hidden=(8,))
        assert flow.log_prob(torch.linspace(-2, 2, 5).unsqueeze(1)).shape == (5,)


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("seed", [3.5, "3", True, -1, 2**63])
def test_builders_refuse_seeds_that_are_not_whole_numbers_in_range_under_their_own_name(builder, seed):
    # maf, resflow and cnf used to take 3.5 as 3, "3" as 3 and True as 1 without a word; the coupling builders
    # raised torch's own TypeError or RuntimeError, naming no builder.
    with pytest.raises(ConfigurationError, match=rf"^{builder}: seed must be a whole number from 0 to 2\^63 - 1, or None"):
        getattr(ctflows.models, builder)(2, blocks=1, hidden=(4,), seed=seed)


@pytest.mark.parametrize("builder", BUILDERS)
def test_numpy_and_torch_integer_seeds_give_the_weights_of_the_same_int(builder):
    # The coupling builders used to refuse np.int64 (torch.Generator.manual_seed: "an integer is required").
    build = getattr(ctflows.models, builder)
    expected = build(2, blocks=1, hidden=(4,), seed=3).state_dict()
    for seed in (np.int64(3), torch.tensor(3)):
        got = build(2, blocks=1, hidden=(4,), seed=seed).state_dict()
        assert all(torch.equal(got[name], p) for name, p in expected.items()), seed
