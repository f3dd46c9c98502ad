import copy
import math

import numpy as np
import pytest
import torch

import ctflows.core.transform as transform_module
import ctflows.core.validation as validation
from brute_force import brute_force_logdets
from ctflows.core import Chain, Flow, Inverse, StandardNormal
from ctflows.core.transform import Transform, flat_layers
from ctflows.core.validation import check_generator
from ctflows.data import get_density
from ctflows.errors import ConfigurationError, InputError
from ctflows.image import Squeeze
from ctflows.linear import ActNorm, Asinh, LULinear, ReversePermutation, Standardization


def test_chain_rejects_non_transforms_and_empty():
    with pytest.raises(ConfigurationError, match="at least one"):
        Chain()
    with pytest.raises(ConfigurationError, match=r"^Chain: layer 1 must be a ctflows Transform such as ActNorm\(2\), got Linear$"):
        Chain(ActNorm(2), torch.nn.Linear(2, 2))


def test_flow_rejects_mismatched_base():
    with pytest.raises(ConfigurationError, match="base"):
        Flow(Chain(ActNorm(3)), StandardNormal(2))


@pytest.mark.parametrize("base", [3, torch.nn.Linear(2, 2), None], ids=["int", "module", "none"])
def test_flow_refuses_a_base_that_is_not_a_distribution_when_built(base):
    """Not an AttributeError about event_shape from inside Flow, nor a model that fails at its first call."""
    with pytest.raises(ConfigurationError, match=rf"^Flow: base must be a ctflows Distribution such as StandardNormal\(2\), got {type(base).__name__}$"):
        Flow([ActNorm(2)], base)


@pytest.mark.parametrize("transform", [3, torch.nn.Linear(2, 2)], ids=["int", "module"])
def test_inverse_and_flow_refuse_what_is_not_a_transform(transform):
    with pytest.raises(ConfigurationError, match=rf"^Inverse: transform must be a ctflows Transform such as LULinear\(2\), got {type(transform).__name__}$"):
        Inverse(transform)
    with pytest.raises(ConfigurationError, match=r"^Flow: transform must be a ctflows Transform such as ActNorm\(2\) or a list"):
        Flow(transform, StandardNormal(2))


def test_flow_bad_input_names_the_first_layer_and_shape():
    flow = Flow([LULinear(3), ActNorm(3)], StandardNormal(3))
    with pytest.raises(InputError, match=r"LULinear.*\[batch, 3\].*\[4, 2\]"):
        flow.log_prob(torch.randn(4, 2))
    with pytest.raises(InputError, match="NaN"):
        flow.log_prob(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(InputError, match="floating-point"):
        flow.log_prob(torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(InputError, match=r"^Flow.sample: n must be an int >= 1, got 0"):
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


def test_a_reshaping_chain_is_entered_at_the_end_each_direction_starts_from():
    """A chain's inverse and its Inverse's forward take the last layer's output shape; the Flow's event shape is the data's."""
    layers = [Squeeze((1, 4, 4)), Squeeze((4, 2, 2))]
    twice = Chain(*layers)
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    z, _ = twice(x)
    assert z.shape == (3, 16, 1, 1)
    assert torch.equal(twice.inverse(z)[0], x) and torch.equal(Inverse(twice)(z)[0], x)
    assert torch.equal(Inverse(twice).inverse(x)[0], z)
    with pytest.raises(InputError, match=r"Squeeze: inverse input .*\[batch, 16, 1, 1\]"):
        twice.inverse(x)
    assert Flow(layers, StandardNormal((16, 1, 1))).event_shape == (1, 4, 4)


def test_a_chain_checks_its_dtype_when_its_first_layer_holds_no_floats():
    """A permutation first has no dtype to check against; the chain's float64 still refuses float32 input."""
    chain = Chain(ReversePermutation(2), LULinear(2)).double()
    with pytest.raises(InputError, match=r"^Chain: input has dtype torch.float32 but the layer's parameters are torch.float64"):
        chain(torch.randn(4, 2))


def test_a_generator_that_is_not_one_is_refused_by_every_sampler():
    # generator=0 (a seed where a Generator goes) reached torch.randn, whose TypeError lists its overloads

    flow = Flow([ActNorm(2)], StandardNormal(2))
    for sample, owner in ((flow.sample, "Flow.sample"), (get_density("two_moons").sample, "two_moons.sample")):
        with pytest.raises(ConfigurationError, match=rf"{owner}: generator must be a torch.Generator or None, got int 0"):
            sample(3, generator=0)
        assert sample(3, generator=torch.Generator().manual_seed(1)).shape == (3, 2)
    # torch draws only with a generator on the tensor's device type; the check says which one to pass
    with pytest.raises(ConfigurationError, match=r"generator is on cpu but the draws are made on cuda:0.*device='cuda'"):
        check_generator("sampler", torch.Generator(), torch.device("cuda:0"))


class _Scale(Transform):
    """z = a ⊙ x + b(context): log|det| = Σ log|a|; with context_features=2, b = context ⊙ (1, 10)."""

    def __init__(self, a, context_features=None):
        super().__init__()
        self.event_shape = (2,)
        self.context_features = context_features
        self.register_buffer("a", torch.as_tensor(a, dtype=torch.float64))

    def _shift(self, x, context):
        if self.context_features is None or context is None:  # an unconditional layer ignores one, as real layers do
            return torch.zeros_like(x)
        # The contract real layers rely on (a coupling concatenates it with x): one context row per point.
        assert context.shape == x.shape, f"context {list(context.shape)} for points {list(x.shape)}"
        return context * torch.tensor([1.0, 10.0], dtype=x.dtype)

    def _forward(self, x, context):
        return self.a * x + self._shift(x, context), self.a.abs().log().sum().expand(x.shape[0])

    def _inverse(self, z, context):
        return (z - self._shift(z, context)) / self.a, -self.a.abs().log().sum().expand(z.shape[0])


def test_flow_log_prob_is_the_change_of_variables_formula():
    # z = a x with a = (3, 0.5): p(x) = N(a x; 0, I) |a_1 a_2|, i.e. x ~ N(0, diag(1/a²)).
    flow = Flow(_Scale([3.0, 0.5]), StandardNormal(2)).double()
    x = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.distributions.Normal(0.0, 1 / torch.tensor([3.0, 0.5], dtype=torch.float64)).log_prob(x).sum(1)
    torch.testing.assert_close(flow.log_prob(x), expected)
    samples, log_prob = flow.sample_and_log_prob(50, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(log_prob, flow.log_prob(samples))
    torch.testing.assert_close(log_prob, torch.distributions.Normal(0.0, 1 / torch.tensor([3.0, 0.5], dtype=torch.float64)).log_prob(samples).sum(1))


def test_a_shared_sampling_context_is_the_same_as_one_row_per_sample():
    flow = Flow(_Scale([2.0, 1.0], context_features=2), StandardNormal(2)).double()
    c = torch.tensor([0.3, -1.2], dtype=torch.float64)
    shared = flow.sample(6, context=c, generator=torch.Generator().manual_seed(0))
    one_row = flow.sample(6, context=c.unsqueeze(0), generator=torch.Generator().manual_seed(0))
    per_row = flow.sample(6, context=c.expand(6, 2).clone(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(shared, per_row)
    torch.testing.assert_close(one_row, per_row)
    # x = (z - c ⊙ (1, 10)) / a with the base draw z
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(per_row, (z - c * torch.tensor([1.0, 10.0], dtype=torch.float64)) / torch.tensor([2.0, 1.0], dtype=torch.float64))


def test_a_flows_context_errors_name_the_flow_not_its_chain():
    """The user called the Flow: a message naming the Chain inside it would send them looking for one."""
    unconditional = Flow([_Scale([2.0, 1.0]), ActNorm(2)], StandardNormal(2)).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(InputError, match=r"^Flow: takes no context but got one \(\[4, 3\]\)"):
        unconditional.log_prob(x, context=torch.randn(4, 3, dtype=torch.float64))
    # The conditional layer is the second: the first (ActNorm) would not say the model needs a context.
    conditional = Flow([ActNorm(2), _Scale([2.0, 1.0], context_features=2)], StandardNormal(2)).double()
    with pytest.raises(InputError, match=r"^Flow: is conditional and needs a context; pass one of shape \[batch, 2\]"):
        conditional.log_prob(x)
    with pytest.raises(InputError, match=r"^Flow: context has batch size 3 but the input has 4"):
        conditional.log_prob(x, context=torch.randn(3, 2, dtype=torch.float64))


class _ShiftedNormal(StandardNormal):
    """N(context, I) on R^2: a base that takes the context itself."""

    context_features = 2

    def log_prob(self, z, context=None):
        return super().log_prob(z - context)

    def sample(self, n, context=None, generator=None):
        return super().sample(n, generator=generator) + context


def test_a_conditional_base_behind_an_unconditional_transform_gets_the_context():
    flow = Flow(_Scale([2.0, 0.5]), _ShiftedNormal(2)).double()
    x, c = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    expected = torch.distributions.Normal(c / torch.tensor([2.0, 0.5], dtype=torch.float64), 1 / torch.tensor([2.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(flow.log_prob(x, context=c), expected.log_prob(x).sum(1))
    samples, log_prob = flow.sample_and_log_prob(5, context=c, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_prob, expected.log_prob(samples).sum(1))


def test_a_chain_hands_the_context_to_every_layer_and_inverts_in_reverse_order():
    """The context reaches the conditional layer both ways; an unconditional first layer's check is not handed it."""
    first, second = _Scale([2.0, 0.5]), _Scale([1.5, -3.0], context_features=2)
    chain = Chain(first, ReversePermutation(2), second).double()
    x, c = torch.randn(2, 5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z, logdet = chain(x, c)
    torch.testing.assert_close(z, second(first(x)[0].flip(1), c)[0])
    torch.testing.assert_close(logdet, torch.full((5,), math.log(2.0 * 0.5 * 1.5 * 3.0), dtype=torch.float64))
    x_back, logdet_inverse = chain.inverse(z, c)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(logdet_inverse, -logdet)


def linear_flow() -> Flow:
    """A 2-D float64 flow through every linear layer (eval()): ActNorm initialised, LULinear off its rotation start."""
    lu = LULinear(2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lu.lower.fill_(0.7)
        lu.log_diag.copy_(torch.tensor([0.4, -0.2]))
        lu.bias.copy_(torch.tensor([0.3, -0.1]))
    layers = [
        Inverse(Asinh(2, torch.tensor([0.5, 2.0]))),
        lu,
        ActNorm(2),
        Standardization(torch.tensor([0.2, -0.4]), torch.tensor([1.5, 0.6])),
        ReversePermutation(2),
    ]
    flow = Flow(layers, StandardNormal(2)).double().train()
    with torch.no_grad():
        flow.log_prob(torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.7 + 0.2)
    return flow.eval()


def test_a_chain_of_linear_layers_round_trips_and_its_log_det_is_the_jacobians():
    """The inverse undoes the layers in reverse order with minus the log-det, which is the autograd Jacobian's."""
    chain = linear_flow().transform
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z, logdet = chain(x)
    x_back, logdet_inverse = chain.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet_inverse, -logdet, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, brute_force_logdets(chain, x), atol=1e-12, rtol=0)


def test_a_2d_flows_density_integrates_to_one_and_its_samples_log_prob_is_log_prob():
    """Riemann sum of p(x) over a grid holding all the mass; sample_and_log_prob's density equals log_prob's."""
    flow = linear_flow()
    edge, n = 6.0, 481
    axis = torch.linspace(-edge, edge, n, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        mass = float(flow.log_prob(grid).exp().sum()) * (2 * edge / (n - 1)) ** 2
        samples, log_prob = flow.sample_and_log_prob(200, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(log_prob, flow.log_prob(samples), atol=1e-10, rtol=0)
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_a_chain_refuses_layers_that_disagree_on_the_context_width():
    """Layers built for contexts of 2 and 3 features cannot share one context tensor."""
    with pytest.raises(ConfigurationError, match=r"^Chain: layers disagree on the context width: \[2, 3\]"):
        Chain(_Scale([1.0, 2.0], context_features=3), ReversePermutation(2), _Scale([1.0, 2.0], context_features=2))


def test_a_chain_checks_the_context_itself_when_its_end_layers_take_none():
    """Both end layers are unconditional, so their checks never see the context: the chain's own check must refuse a
    missing, narrow or mis-batched context before the conditional layer gets it (_Scale would read None as zero)."""
    chain = Chain(ReversePermutation(2), _Scale([2.0, 1.0], context_features=2), ReversePermutation(2)).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    for call in (chain.forward, chain.inverse):
        with pytest.raises(InputError, match=r"^Chain: is conditional and needs a context; pass one of shape \[batch, 2\]"):
            call(x)
        with pytest.raises(InputError, match=r"^Chain: context must have shape \[batch, 2\], got \[4, 1\]"):
            call(x, torch.zeros(4, 1, dtype=torch.float64))
        with pytest.raises(InputError, match=r"^Chain: context has batch size 3 but the input has 4"):
            call(x, torch.zeros(3, 2, dtype=torch.float64))


def test_sample_and_log_prob_is_log_prob_of_the_samples_gradients_included():
    """Both compute log q_θ(x_θ(z)) for the same base draws z, so their values and their gradients in θ agree
    (a log-det detached from the sampling pass would lose the gradient of the volume term)."""
    flow = linear_flow()
    grads = []
    for one_pass in (True, False):
        flow.zero_grad()
        generator = torch.Generator().manual_seed(4)
        if one_pass:
            _, log_prob = flow.sample_and_log_prob(16, generator=generator)
        else:
            log_prob = flow.log_prob(flow.sample(16, generator=generator))
        log_prob.sum().backward()
        grads.append({name: p.grad.clone() for name, p in flow.named_parameters()})
    assert set(grads[0]) == set(grads[1]) and any(g.abs().sum() > 0 for g in grads[0].values())
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-10, rtol=0, msg=name)


def test_a_copy_of_a_layer_keeps_its_stats_values_detached_from_the_graph():
    """deepcopy refuses tensors inside a graph: stats hold them (in dicts, lists, tuples), so a copy detaches them."""
    layer = ActNorm(2)
    w = torch.ones(2, requires_grad=True)
    layer.stats = {"regularization": {"energy": (w * 2).sum()}, "trace": [w * 3], "pair": (w * 4, 5), "iterations": 7}
    copied = copy.deepcopy(layer)
    assert copied.stats["iterations"] == 7 and copied.stats["pair"][1] == 5 and isinstance(copied.stats["pair"], tuple)
    for value in (copied.stats["regularization"]["energy"], copied.stats["trace"][0], copied.stats["pair"][0]):
        assert not value.requires_grad
    torch.testing.assert_close(copied.stats["trace"][0], torch.full((2,), 3.0))
    assert layer.stats["trace"][0].requires_grad  # the original keeps its graph


def test_sample_sizes_of_numpy_or_torch_integers_draw_what_the_int_draws():
    """n is a count like any other: np.int64(5) and torch.tensor(5) give the int 5's samples; a torch flag is refused."""
    flow = linear_flow()
    same = flow.sample(5, generator=torch.Generator().manual_seed(0))
    for n in (np.int64(5), torch.tensor(5)):
        torch.testing.assert_close(flow.sample(n, generator=torch.Generator().manual_seed(0)), same, atol=0, rtol=0)
    with pytest.raises(InputError, match=r"^Flow.sample: n must be an int >= 1, got tensor\(True\)"):
        flow.sample(torch.tensor(True))


def test_a_conditional_flow_scans_its_input_and_context_once_per_call(monkeypatch):
    """The Flow checks the context and its Chain the input; neither the Chain nor its end layer scans the context
    again (each scan of a CUDA tensor for NaN waits for the device). Counted: calls of check_tensor per log_prob."""
    calls = []
    real = validation.check_tensor

    def counting(owner, x, *args, **kwargs):
        calls.append((owner, kwargs.get("name", "input")))
        return real(owner, x, *args, **kwargs)

    monkeypatch.setattr(validation, "check_tensor", counting)  # check_context's
    monkeypatch.setattr(transform_module, "check_tensor", counting)  # Transform.check's
    flow = Flow(Chain(_Scale([2.0, 1.0], context_features=2), ReversePermutation(2)), StandardNormal(2)).double()
    x, context = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    flow.log_prob(x, context)
    assert sorted(calls) == [("Flow", "context"), ("_Scale", "input")], calls
    calls.clear()
    flow.transform(x, context)  # the Chain called on its own checks the context itself, once
    assert sorted(calls) == [("Chain", "context"), ("_Scale", "input")], calls


class _OldStyle(_Scale):
    """A user's layer whose check override predates ``context_checked``: it counts its calls (per subclass), keeps the
    ``(name, inverse)`` it was last given, and refuses inputs beyond 100."""

    seen = 0

    def check(self, x, context, *, name="input", inverse=False):
        type(self).seen += 1
        self.heard = (name, inverse)
        super().check(x, context, name=name, inverse=inverse)
        if bool((x.abs() > 100).any()):
            raise InputError(f"{type(self).__name__}: input beyond 100")


def test_a_layer_whose_check_override_predates_context_checked_still_runs_and_checks():
    """A user's layer that overrides check(x, context, *, name, inverse) the old way, at the end of a Chain in a Flow
    and under an Inverse: it is called without the new keyword, its own check still refuses bad input, and the model
    gives the same log-density as without the override."""

    class OldStyle(_OldStyle):
        seen = 0

    x, context = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    old = Flow(Chain(OldStyle([2.0, 1.0], context_features=2), ReversePermutation(2)), StandardNormal(2)).double()
    new = Flow(Chain(_Scale([2.0, 1.0], context_features=2), ReversePermutation(2)), StandardNormal(2)).double()
    torch.testing.assert_close(old.log_prob(x, context), new.log_prob(x, context))
    assert OldStyle.seen == 1
    with pytest.raises(InputError, match="OldStyle: input beyond 100"):
        old.log_prob(x * 1000, context)
    Inverse(Chain(ReversePermutation(2), OldStyle([2.0, 1.0], context_features=2))).double()(x, context)
    assert OldStyle.seen == 3


def test_an_old_style_check_is_never_passed_context_checked_whoever_calls_it():
    """Not even as False: an Inverse called directly, or a Flow given an input that is no tensor, passed
    context_checked=False, a TypeError from the override's signature instead of the layer running or an InputError.
    It is told its own direction and name, and an unconditional old-style layer is handed no context (it would refuse
    one), at the end of a conditional Chain or in front of a conditional base."""
    x, context = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    old, new = _OldStyle([2.0, 1.0], context_features=2).double(), _Scale([2.0, 1.0], context_features=2).double()
    for got, expected in zip(Inverse(old)(x, context), Inverse(new)(x, context)):
        torch.testing.assert_close(got, expected)
    assert old.heard == ("input", True)  # the Inverse's forward is the layer's inverse
    Inverse(old).inverse(x, context)
    assert old.heard == ("inverse input", False)
    with pytest.raises(InputError, match=r"^_OldStyle: input must be a torch.Tensor"):
        Flow(_OldStyle([2.0, 1.0]), StandardNormal(2)).double().log_prob([1.0, 2.0])
    ends = [Flow(Chain(end, _Scale([3.0, 0.5], context_features=2)), StandardNormal(2)).double()
            for end in (_OldStyle([2.0, 1.0]), _Scale([2.0, 1.0]))]
    torch.testing.assert_close(ends[0].log_prob(x, context), ends[1].log_prob(x, context))
    # Nor is it handed a context that is the base's alone (a conditional base behind an unconditional transform).
    bases = [Flow(layer, _ShiftedNormal(2)).double() for layer in (_OldStyle([2.0, 0.5]), _Scale([2.0, 0.5]))]
    torch.testing.assert_close(bases[0].log_prob(x, context), bases[1].log_prob(x, context))


def test_a_check_taking_keyword_arguments_is_told_the_context_was_checked():
    """A check override with ``**kwargs`` takes ``context_checked`` too: inside a Flow it hears True (the Flow checked
    the context); called on its own it is not told so (the default, False, applies)."""

    class Forwarding(_Scale):
        def check(self, x, context, **kwargs):
            self.heard = kwargs.get("context_checked")
            super().check(x, context, **kwargs)

    layer = Forwarding([2.0, 1.0], context_features=2).double()
    x, context = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    Flow(layer, StandardNormal(2)).double().log_prob(x, context)
    assert layer.heard is True
    layer(x, context)
    assert not layer.heard


def test_an_inverse_checks_the_context_unless_its_caller_did(monkeypatch):
    """Called directly, an Inverse refuses a missing context itself; inside a Flow the context is scanned once, by the
    Flow (counted as in the test above)."""
    layer = Inverse(_Scale([2.0, 1.0], context_features=2)).double()
    x, context = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(InputError, match=r"^Inverse\(_Scale\): is conditional and needs a context"):
        layer(x)
    calls = []
    real = validation.check_tensor

    def counting(owner, x, *args, **kwargs):
        calls.append((owner, kwargs.get("name", "input")))
        return real(owner, x, *args, **kwargs)

    monkeypatch.setattr(validation, "check_tensor", counting)
    monkeypatch.setattr(transform_module, "check_tensor", counting)
    Flow(layer, StandardNormal(2)).double().log_prob(x, context)
    assert sorted(calls) == [("Flow", "context"), ("_Scale", "input")], calls
