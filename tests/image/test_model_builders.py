"""The image builders hand every setting to the layers they build: the logit's margin, the number of Glow steps or
CNF blocks per level, the alternating coupling halves, the fields' widths and activation, and the CNF options
(FFJORD's defaults, each overridable)."""
from __future__ import annotations

from torch import nn

from ctflows.continuous import CNF
from ctflows.core import Flow
from ctflows.image import ConvAffineCoupling, Logit, Multiscale, multiscale_cnf, multiscale_glow


def logit_and_levels(flow: Flow) -> tuple[Logit, list[nn.Module]]:
    """The builder's logit and the per-level chains of its multiscale transform."""
    logit, multiscale = flow.transform.layers
    assert isinstance(logit, Logit) and isinstance(multiscale, Multiscale)
    return logit, list(multiscale.levels)


def test_multiscale_glow_alternates_coupling_halves_on_every_level() -> None:
    logit, levels = logit_and_levels(multiscale_glow((1, 4, 4), levels=2, steps=3, hidden=5, alpha=0.1))
    assert logit.alpha == 0.1 and len(levels) == 2
    for level in levels:
        couplings = [step.layers[-1] for step in level.layers]
        assert all(isinstance(c, ConvAffineCoupling) for c in couplings)
        assert [c.parity for c in couplings] == [0, 1, 0]  # consecutive steps transform complementary halves
        assert all(c.net[0].out_channels == 5 for c in couplings)


def test_multiscale_cnf_builds_its_blocks_with_the_given_field_and_ffjord_options() -> None:
    logit, levels = logit_and_levels(multiscale_cnf((1, 4, 4), levels=2, blocks=2, hidden=(5,), activation="tanh", alpha=0.1))
    assert logit.alpha == 0.1 and [len(level.layers) for level in levels] == [2, 2]
    for level in levels:
        for block in level.layers:
            cnf = block.transform
            assert isinstance(cnf, CNF) and isinstance(cnf.field.activation, nn.Tanh)
            assert [layer.conv.out_channels for layer in cnf.field.layers] == [5, cnf.field.shape[0]]
            assert (cnf.divergence, cnf.eval_divergence, cnf.atol, cnf.rtol) == ("hutchinson", "exact", 1e-5, 1e-5)


def test_multiscale_cnf_options_override_its_defaults() -> None:
    _, levels = logit_and_levels(multiscale_cnf((1, 4, 4), levels=1, hidden=(4,), atol=1e-3, rtol=1e-4, eval_divergence="hutchinson"))
    cnf = levels[0].layers[0].transform
    assert (cnf.atol, cnf.rtol, cnf.divergence, cnf.eval_divergence) == (1e-3, 1e-4, "hutchinson", "hutchinson")
