"""The registry of layers the shared property suite (test_layer_properties.py) runs over.

A new layer gets every check by being listed here: add a ``LayerCase`` with a factory that builds it
for ``features`` and, for conditional layers, ``context_features``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ctflows.continuous import CNF, FourierMLP, TimeMLP
from ctflows.core import Transform
from ctflows.coupling import AdditiveCoupling, AffineCoupling
from ctflows.linear import ActNorm, LULinear, RandomPermutation, ReversePermutation


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
    # Continuous layers: exact to solver tolerance, so they are checked with tight evaluation tolerances.
    LayerCase(
        "cnf_concatsquash",
        lambda d, c: CNF(TimeMLP(d, (16, 16)), eval_atol=1e-10, eval_rtol=1e-10),
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
]
