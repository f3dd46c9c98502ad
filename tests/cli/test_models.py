"""The command line's model table: which models take one feature, how wide they are, and that each is seeded."""
import pytest
import torch

from ctflows.autoregressive.made import MADE, MaskedLinear
from ctflows.cli.models import MODELS, build_model, check_models_suit_data
from ctflows.errors import ConfigurationError

VECTOR_MODELS = [name for name, spec in MODELS.items() if not spec.image]


def _widest_input(flow: torch.nn.Module) -> int:
    """The most inputs any weight matrix of ``flow`` takes: the hidden width of these models' networks."""
    return max(p.shape[-1] for p in flow.parameters() if p.dim() == 2)


@pytest.mark.parametrize("name", VECTOR_MODELS)
def test_a_model_is_refused_one_feature_exactly_when_its_builder_cannot_take_one(name: str) -> None:
    """The check before training refuses 1-D data for the coupling models, which cannot build on it, and only them:
    a model whose builder takes one feature (cnf, maf, resflow) gives a finite log-density there."""
    try:
        flow = MODELS[name].build((1,), 0)
    except ConfigurationError:
        with pytest.raises(ConfigurationError, match=f"{name} split the features in two"):
            check_models_suit_data([name], False, "one.csv", (1,))
    else:
        check_models_suit_data([name], False, "one.csv", (1,))
        assert torch.isfinite(flow.log_prob(torch.randn(8, 1))).all()


@pytest.mark.parametrize("name", VECTOR_MODELS)
def test_hidden_layers_widen_to_128_above_8_features(name: str) -> None:
    """The module docstring's rule: 64 hidden units up to 8 features, 128 from 9."""
    assert (_widest_input(build_model(name, (8,), 0)), _widest_input(build_model(name, (9,), 0))) == (64, 128)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_is_built_from_its_seed(name: str) -> None:
    """The same seed builds the same parameters, another seed others (so --seed reaches every builder)."""
    shape = (1, 8, 8) if MODELS[name].image else (2,)
    first, again, other = (build_model(name, shape, seed).state_dict() for seed in (3, 3, 4))
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_maf_wider_than_the_width_rule_still_conditions_each_feature_on_all_before_it() -> None:
    """At 130 features (more than the 128 units of the width rule) every MADE's output for a feature is reached
    from every input of lower degree and no other: the hidden layers kept at least D - 1 units."""
    flow = build_model("maf", (130,), 0)
    mades = [module for module in flow.modules() if isinstance(module, MADE)]
    assert mades
    for made in mades:
        masks = [layer.mask for layer in made.net if isinstance(layer, MaskedLinear)]
        paths = masks[0]
        for mask in masks[1:]:
            paths = mask @ paths  # [outputs, inputs]: the number of paths from each input to each output
        feature_degree = made.degrees.repeat_interleave(made.params_per_feature)
        assert torch.equal(paths > 0, made.degrees[None, :] < feature_degree[:, None])
