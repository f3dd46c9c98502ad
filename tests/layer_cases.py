"""The registry of layers the shared property suite (test_layer_properties.py) runs over.

A new layer gets every check by being listed here: add a ``LayerCase`` with a factory that builds it
for ``features`` and, for conditional layers, ``context_features``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ctflows.continuous import CNF, ConcatMLP, FourierMLP, TimeMLP
from ctflows.core import Inverse, Transform
from ctflows.autoregressive import MaskedAutoregressive
from ctflows.coupling import AdditiveCoupling, AffineCoupling, RQSplineCoupling
from ctflows.elementary import Planar, Radial
from ctflows.image import FlatView, glow_step
from ctflows.residual import ResidualBlock
from ctflows.linear import ActNorm, Asinh, LULinear, RandomPermutation, ReversePermutation, Standardization
from ctflows.nonparametric import MarginalGaussianization, RadialExpansion, random_rotation


@dataclass(frozen=True)
class LayerCase:
    name: str
    factory: Callable[[int, int | None], Transform]  # (features, context_features) -> layer
    features: int = 3
    conditional: bool = False  # whether the layer takes a context (then it is built with one)
    atol: float = 1e-9  # round-trip / log-det tolerance in float64
    marks: tuple = field(default_factory=tuple)


CASES: list[LayerCase] = [
    LayerCase("actnorm", lambda d, c: ActNorm(d)),
    LayerCase("standardization", lambda d, c: Standardization(torch.linspace(-2.0, 3.0, d), torch.linspace(0.1, 40.0, d))),
    LayerCase("asinh", lambda d, c: Asinh(d, torch.linspace(0.5, 2.0, d))),
    LayerCase("reverse_permutation", lambda d, c: ReversePermutation(d)),
    LayerCase("random_permutation", lambda d, c: RandomPermutation(d)),
    LayerCase("lu_linear", lambda d, c: LULinear(d)),
    LayerCase("additive_coupling", lambda d, c: AdditiveCoupling(d, hidden=(16, 16))),
    LayerCase("affine_coupling", lambda d, c: AffineCoupling(d, hidden=(16, 16))),
    LayerCase("affine_coupling_even", lambda d, c: AffineCoupling(d, hidden=(16,), parity=1), features=4),
    LayerCase(
        "affine_coupling_context",
        lambda d, c: AffineCoupling(d, hidden=(16, 16), context_features=c),
        conditional=True,
    ),
    # A layer run backwards: its inverse pass becomes the forward one, with the log-det negated.
    LayerCase("inverse_affine_coupling", lambda d, c: Inverse(AffineCoupling(d, hidden=(16, 16)))),
    LayerCase("rq_spline_coupling", lambda d, c: RQSplineCoupling(d, hidden=(16, 16))),
    # A bound of 1 puts about a third of the N(0, 1) test inputs in the identity tails.
    LayerCase(
        "rq_spline_coupling_tails",
        lambda d, c: RQSplineCoupling(d, hidden=(16,), bins=4, bound=1.0, parity=1),
        features=4,
    ),
    LayerCase(
        "rq_spline_coupling_context",
        lambda d, c: RQSplineCoupling(d, hidden=(16, 16), context_features=c),
        conditional=True,
    ),
    LayerCase("masked_autoregressive", lambda d, c: MaskedAutoregressive(d, (16, 16))),
    LayerCase(
        "masked_autoregressive_context",
        lambda d, c: MaskedAutoregressive(d, (16, 16), order=[2, 0, 1], context_features=c),
        conditional=True,
    ),
    LayerCase("planar", lambda d, c: Planar(d)),
    LayerCase("radial", lambda d, c: Radial(d)),
    # Residual blocks: exact log-det in eval() (D = 3), a fixed-point inverse to float64 precision.
    LayerCase("residual_block", lambda d, c: ResidualBlock(d, hidden=(16, 16))),
    LayerCase(
        "residual_block_roulette",
        lambda d, c: ResidualBlock(d, hidden=(16,), activation="elu", logdet="russian_roulette"),
    ),
    LayerCase(
        "residual_block_context",
        lambda d, c: ResidualBlock(d, hidden=(16, 16), context_features=c, logdet="power_series"),
        conditional=True,
    ),
    # Continuous layers: exact to solver tolerance, so they are checked with tight evaluation tolerances.
    LayerCase(
        "cnf_concatsquash",
        lambda d, c: CNF(TimeMLP(d, (16, 16)), eval_atol=1e-10, eval_rtol=1e-10),
        atol=1e-7,
    ),
    LayerCase(
        "cnf_concat",
        lambda d, c: CNF(ConcatMLP(d, (16, 16), activation="softplus"), eval_atol=1e-10, eval_rtol=1e-10),
        atol=1e-7,
    ),
    LayerCase(
        "cnf_fourier_direct",
        lambda d, c: CNF(FourierMLP(d, (16,), activation="tanh"), adjoint=False, eval_atol=1e-10, eval_rtol=1e-10),
        atol=1e-7,
    ),
    LayerCase(
        "cnf_context",
        lambda d, c: CNF(TimeMLP(d, (16,), context_features=c), eval_atol=1e-10, eval_rtol=1e-10),
        conditional=True,
        atol=1e-7,
    ),
    # Image layers act on [B, C, H, W]; FlatView presents them to the suite as vectors of C·H·W features.
    # The multiscale CNF's checks live in tests/image (its row-by-row Jacobian is slow).
    LayerCase("glow_step_image", lambda d, c: FlatView(glow_step((4, 2, 2), 8)), features=16),
    # Tabak's and Gaussianization's elementary maps, with fitted-looking (not identity) parameters.
    LayerCase("radial_expansion", lambda d, c: RadialExpansion(torch.zeros(d), bandwidth=1.0, beta=0.5)),
    LayerCase("marginal_gaussianization", lambda d, c: MarginalGaussianization(d, kernels=8)),
    # Built in float64: a float32 rotation cast up is orthogonal only to about 1e-7.
    LayerCase(
        "rotation",
        lambda d, c: random_rotation(d, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
    ),
]
