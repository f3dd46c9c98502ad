import pytest
import torch

from ctflows.core import Chain, Flow, Inverse, StandardNormal
from ctflows.core.transform import flat_layers
from ctflows.errors import ConfigurationError, InputError
from ctflows.image import Squeeze
from ctflows.linear import ActNorm, LULinear, ReversePermutation


def test_chain_rejects_non_transforms_and_empty():
    with pytest.raises(ConfigurationError, match="at least one"):
        Chain()
    with pytest.raises(ConfigurationError, match="not a ctflows Transform"):
        Chain(ActNorm(2), torch.nn.Linear(2, 2))


def test_flow_rejects_mismatched_base():
    with pytest.raises(ConfigurationError, match="base"):
        Flow(Chain(ActNorm(3)), StandardNormal(2))


def test_flow_bad_input_names_the_first_layer_and_shape():
    flow = Flow([LULinear(3), ActNorm(3)], StandardNormal(3))
    with pytest.raises(InputError, match=r"LULinear.*\[batch, 3\].*\[4, 2\]"):
        flow.log_prob(torch.randn(4, 2))
    with pytest.raises(InputError, match="NaN"):
        flow.log_prob(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(InputError, match="floating-point"):
        flow.log_prob(torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(InputError, match="positive integer"):
        flow.sample(0)


def test_flow_forward_is_latent_and_log_prob_and_inverse_swaps():
    torch.manual_seed(0)
    layer = LULinear(3)
    flow = Flow(Chain(layer, ReversePermutation(3)), StandardNormal(3))
    x = torch.randn(6, 3)
    z, log_prob = flow(x)
    torch.testing.assert_close(log_prob, flow.log_prob(x))
    z_inv, logdet_inv = Inverse(layer).inverse(x)
    torch.testing.assert_close(z_inv, layer(x)[0])
    torch.testing.assert_close(logdet_inv, layer(x)[1])


def test_flat_layers_expands_nested_chains_in_forward_order():
    a, b, c = ActNorm(2), ReversePermutation(2), LULinear(2)
    assert flat_layers(Chain(a, Chain(b, Chain(c)))) == [a, b, c]
    assert flat_layers(a) == [a]


def test_chain_and_flow_refuse_layers_built_for_another_shape():
    # Without the check these ran: ActNorm(1) broadcast over 2 features (density integrating to e), and a
    # 2-feature coupling after 3 features returned uninitialised memory.
    with pytest.raises(ConfigurationError, match=r"layer 1 \(ActNorm\) takes points of shape \(1,\), but the layers before it give \(2,\)"):
        Flow([ActNorm(2), ActNorm(1)], StandardNormal(2))
    with pytest.raises(ConfigurationError, match=r"layer 2 \(LULinear\).*give \(3,\)"):
        Chain(ActNorm(3), ReversePermutation(3), LULinear(2))
    with pytest.raises(ConfigurationError, match=r"ends in event shape \(3,\) but the base has \(2,\)"):
        Flow([ActNorm(3)], StandardNormal(2))


def test_a_reshaping_layer_passes_its_output_shape_on_and_its_inverse_swaps_them():
    squeeze = Squeeze((1, 4, 4))
    assert Inverse(squeeze).event_shape == (4, 2, 2) and Inverse(squeeze).out_shape == (1, 4, 4)
    assert Chain(squeeze).out_shape == (4, 2, 2)
    assert not hasattr(Chain(squeeze, Inverse(squeeze)), "out_shape")  # squeeze then unsqueeze: no change
    with pytest.raises(ConfigurationError, match=r"takes points of shape \(1, 4, 4\), but the layers before it give \(4, 2, 2\)"):
        Chain(squeeze, squeeze)


def test_a_generator_that_is_not_one_is_refused_by_every_sampler():
    # generator=0 (a seed where a Generator goes) reached torch.randn, whose TypeError lists its overloads
    from ctflows.core.validation import check_generator
    from ctflows.data import get_density

    flow = Flow([ActNorm(2)], StandardNormal(2))
    for sample, owner in ((flow.sample, "Flow.sample"), (get_density("two_moons").sample, "two_moons.sample")):
        with pytest.raises(ConfigurationError, match=rf"{owner}: generator must be a torch.Generator or None, got int 0"):
            sample(3, generator=0)
        assert sample(3, generator=torch.Generator().manual_seed(1)).shape == (3, 2)
    # torch draws only with a generator on the tensor's device type; the check says which one to pass
    with pytest.raises(ConfigurationError, match=r"generator is on cpu but the draws are made on cuda:0.*device='cuda'"):
        check_generator("sampler", torch.Generator(), torch.device("cuda:0"))
