"""Each builder builds what its docstring says: the layers in order, and every setting handed to every block."""
import inspect

import pytest
import torch
from torch import nn

import ctflows
import ctflows.models
from ctflows.autoregressive import MaskedAutoregressive
from ctflows.continuous import CNF, TimeMLP
from ctflows.continuous.layers import ConcatLinear, ConcatSquashLinear
from ctflows.coupling import AdditiveCoupling, AffineCoupling, RQSplineCoupling
from ctflows.autoregressive.made import MaskedLinear
from ctflows.core import StandardNormal
from ctflows.linear import ActNorm, LULinear, RandomPermutation, ReversePermutation
from ctflows.residual import ResidualBlock
from ctflows.residual.spectral_norm import SpectralLinear


def kinds(flow) -> list[type]:
    return [type(layer) for layer in flow.transform.layers]


def widths(field: TimeMLP) -> list[tuple[int, int]]:
    return [(layer.linear.in_features, layer.linear.out_features) for layer in field.layers]


def test_cnf_defaults_are_ffjords_toy_configuration_with_softplus_and_a_fixed_end_time():
    flow = ctflows.cnf(2)
    assert kinds(flow) == [CNF]
    block = flow.transform.layers[0]
    assert isinstance(block.field, TimeMLP) and widths(block.field) == [(2, 64), (64, 64), (64, 64), (64, 2)]
    assert all(isinstance(layer, ConcatSquashLinear) for layer in block.field.layers)
    assert isinstance(block.field.activation, nn.Softplus)
    assert (block.method, block.atol, block.rtol, block.adjoint) == ("dopri5", 1e-5, 1e-5, True)
    assert float(block.end_time) == 1.0 and not any("end_time" in name for name, _ in block.named_parameters())
    assert block.context_features is None


def test_cnf_hands_every_setting_to_every_block():
    flow = ctflows.cnf(
        3, (8, 5), blocks=3, context_features=2, activation="tanh", layer="concat",
        method="rk4", step_size=0.25, adjoint=False, atol=1e-3, rtol=1e-2, end_time=0.5,
    )
    blocks = flow.transform.layers
    assert kinds(flow) == [CNF] * 3
    assert len({id(block.field) for block in blocks}) == 3  # three fields, not one shared
    for block in blocks:
        assert widths(block.field) == [(3, 8), (8, 5), (5, 3)]
        assert all(isinstance(layer, ConcatLinear) for layer in block.field.layers)
        assert isinstance(block.field.activation, nn.Tanh)
        assert block.context_features == 2 and block.field.layers[0].cond.in_features == 1 + 2  # t, then context
        assert (block.method, block.step_size, block.adjoint, block.atol, block.rtol) == ("rk4", 0.25, False, 1e-3, 1e-2)
        assert float(block.end_time) == 0.5
    x, c = torch.randn(4, 3), torch.randn(4, 2)
    assert flow.log_prob(x, c).shape == (4,)


def test_maf_is_blocks_of_actnorm_and_made_then_a_last_actnorm():
    flow = ctflows.models.maf(3, blocks=2, hidden=(7, 6))
    assert kinds(flow) == [ActNorm, MaskedAutoregressive, ActNorm, MaskedAutoregressive, ActNorm]
    for layer in flow.transform.layers[1::2]:  # the hidden widths asked for; 2 outputs (scale, shift) per feature
        linears = [m for m in layer.made.modules() if isinstance(m, MaskedLinear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(3, 7), (7, 6), (6, 3 * 2)]
    # The order is reversed from one block to the next (not merely rotated, which for D = 2 looks the same): feature
    # order[k] gets degree k + 1, so the natural order gives degrees [1, 2, 3] and its reversal [3, 2, 1].
    assert [layer.made.degrees.tolist() for layer in flow.transform.layers[1::2]] == [[1, 2, 3], [3, 2, 1]]


@pytest.mark.parametrize(
    "builder, coupling", [(ctflows.realnvp, AffineCoupling), (ctflows.nice, AdditiveCoupling), (ctflows.spline, RQSplineCoupling)],
    ids=["realnvp", "nice", "spline"],
)
@pytest.mark.parametrize("mixing, mixer", [("reverse", ReversePermutation), ("random", RandomPermutation), ("lu", LULinear)])
def test_coupling_builders_are_blocks_of_actnorm_mixing_and_coupling_then_a_last_actnorm(builder, coupling, mixing, mixer):
    flow = builder(4, blocks=3, hidden=(9,), context_features=2, activation="tanh", mixing=mixing, seed=0)
    assert kinds(flow) == [ActNorm, mixer, coupling] * 3 + [ActNorm]
    for layer in flow.transform.layers[2::3]:
        linears = [m for m in layer.conditioner.modules() if isinstance(m, nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears][0] == (2 + 2, 9)  # identity half, then context
        assert any(isinstance(m, nn.Tanh) for m in layer.conditioner.modules())
        assert not any(isinstance(m, nn.ReLU) for m in layer.conditioner.modules())


@pytest.mark.parametrize("builder", [ctflows.realnvp, ctflows.nice, ctflows.spline], ids=lambda b: b.__name__)
@pytest.mark.parametrize("context_features", [None, 2])
def test_coupling_builders_start_as_actnorm_layers_around_identity_couplings(builder, context_features):
    """Every coupling starts as the identity with log-det 0 (its conditioner's last layer is zero), as the spline
    builder's docstring says and the MLP's ``zero_last`` promises for the couplings built on it."""
    flow = builder(4, blocks=2, hidden=(8,), context_features=context_features, seed=0).double()
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    context = None if context_features is None else torch.randn(6, 2, dtype=torch.float64)
    for layer in flow.transform.layers[2::3]:
        y, logdet = layer(x, context)
        torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
        torch.testing.assert_close(logdet, torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0)


def test_a_learned_lu_mixing_starts_at_the_identity():
    flow = ctflows.realnvp(3, blocks=2, hidden=(8,), mixing="lu", seed=0).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    for layer in flow.transform.layers[1::3]:
        y, logdet = layer(x)
        torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
        torch.testing.assert_close(logdet, torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)


def test_realnvp_and_spline_hand_their_own_settings_to_every_coupling():
    for layer in ctflows.realnvp(3, blocks=2, scale_bound=1.5, seed=0).transform.layers[2::3]:
        assert layer.scale_bound == 1.5
    for layer in ctflows.spline(3, blocks=2, bins=5, bound=2.5, seed=0).transform.layers[2::3]:
        assert (layer.bins, layer.bound) == (5, 2.5)


def test_spline_builder_leaves_the_floors_at_the_couplings_defaults():
    """The builder takes no floors, so each coupling has RQSplineCoupling's own min_width, min_height, min_derivative."""
    defaults = {name: p.default for name, p in inspect.signature(RQSplineCoupling).parameters.items() if name.startswith("min_")}
    assert len(defaults) == 3
    for layer in ctflows.spline(3, blocks=2, seed=0).transform.layers[2::3]:
        assert layer.minimums == defaults


def test_resflow_is_blocks_of_actnorm_and_residual_block_then_a_last_actnorm_with_its_settings():
    flow = ctflows.resflow(3, blocks=2, hidden=(8, 6), coefficient=0.5, activation="elu", logdet="exact",
                           eval_logdet="power_series", context_features=2, seed=0, terms=3, tolerance=1e-7, max_iterations=40)
    assert kinds(flow) == [ActNorm, ResidualBlock, ActNorm, ResidualBlock, ActNorm]
    for block in flow.transform.layers[1::2]:
        assert block.branch.coefficient == 0.5
        assert (block.logdet, block.eval_logdet, block.context_features) == ("exact", "power_series", 2)
        assert any(isinstance(m, nn.ELU) for m in block.branch.modules())
        linears = [m for m in block.branch.modules() if isinstance(m, SpectralLinear)]
        assert [tuple(m.weight.shape[::-1]) for m in linears] == [(3 + 2, 8), (8, 6), (6, 3)]  # hidden, context at the input
        assert (block.terms, block.tolerance, block.max_iterations) == (3, 1e-7, 40)  # other options pass through
    # The builder's default Lipschitz coefficient is the block's own.
    default = ctflows.resflow(2, blocks=1, hidden=(4,)).transform.layers[1].branch.coefficient
    assert default == inspect.signature(ResidualBlock).parameters["coefficient"].default


@pytest.mark.parametrize("builder", [ctflows.realnvp, ctflows.nice, ctflows.spline, ctflows.resflow, ctflows.cnf, ctflows.models.maf],
                         ids=lambda b: b.__name__)
def test_without_a_seed_the_global_generator_decides_and_moves_on(builder):
    torch.manual_seed(0)
    a = builder(2, blocks=1, hidden=(8,))
    b = builder(2, blocks=1, hidden=(8,))  # the global generator has moved on: other weights
    torch.manual_seed(0)
    again = builder(2, blocks=1, hidden=(8,))
    first, second, third = (list(m.state_dict().values()) for m in (a, b, again))
    assert all(torch.equal(p, q) for p, q in zip(first, third))
    assert any(not torch.equal(p, q) for p, q in zip(first, second))


@pytest.mark.parametrize("builder", [ctflows.realnvp, ctflows.nice, ctflows.spline, ctflows.resflow, ctflows.cnf, ctflows.models.maf],
                         ids=lambda b: b.__name__)
def test_every_builder_maps_to_a_fixed_standard_normal(builder):
    """The base is N(0, I) on the data's shape with nothing to learn: a learnable base would add parameters the
    builders do not document (and a DiagonalNormal, initialised to N(0, I), would look the same until trained)."""
    flow = builder(3, blocks=1, hidden=(8,))
    assert type(flow.base) is StandardNormal and flow.base.event_shape == (3,)
    assert list(flow.base.parameters()) == []
