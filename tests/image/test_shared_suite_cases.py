"""The image layers, flattened by FlatView, pass the shared vector property suite as LayerCases.

The Glow step is listed in tests/layer_cases.py; the multiscale CNF is not (the suite's row-by-row Jacobian
would take tens of seconds), so this file runs the suite's cheaper checks on it. The two view cases run every
check: a FlatView over a chain that changes the shape (its inverse enters at the squeezed end), and views
that hand a context through to a conditional vector layer.
"""
from __future__ import annotations

import pytest

import test_layer_properties as suite
from ctflows.continuous import CNF
from ctflows.core import Chain
from ctflows.coupling import AffineCoupling
from ctflows.image import ConvAffineCoupling, ConvTimeField, FlatView, ImageView, Multiscale, Squeeze, level_shapes
from layer_cases import LayerCase

CASES = [
    LayerCase(
        "multiscale_cnf_image",
        lambda d, c: FlatView(Multiscale((1, 4, 4), [
            ImageView(CNF(ConvTimeField(s, (6,), activation="tanh"), eval_atol=1e-10, eval_rtol=1e-10), s)
            for s in level_shapes((1, 4, 4), 2)
        ])),
        features=16,
        atol=1e-7,
    ),
    LayerCase("squeeze_coupling_flat", lambda d, c: FlatView(Chain(Squeeze((1, 4, 4)), ConvAffineCoupling((4, 2, 2), 8))), features=16),
    LayerCase(
        "conditional_image_view_flat",
        lambda d, c: FlatView(ImageView(AffineCoupling(16, hidden=(8,), context_features=c), (1, 4, 4))),
        features=16,
        conditional=True,
    ),
]

EVERY_CHECK = [
    suite.test_round_trip_both_ways, suite.test_logdet_matches_brute_force_jacobian, suite.test_batch_independence,
    suite.test_gradients_reach_every_parameter, suite.test_parameter_gradients_match_finite_differences,
    suite.test_float32_and_composition, suite.test_bad_input_names_the_layer,
]

# The CNF case runs only the checks tests/image/test_image_properties.py does not already make (solves are slow).
PAIRS = [(CASES[0], check) for check in (suite.test_batch_independence, suite.test_bad_input_names_the_layer)]
PAIRS += [(case, check) for case in CASES[1:] for check in EVERY_CHECK]
PAIRS += [(case, suite.test_context_is_used_and_checked) for case in CASES if case.conditional]


@pytest.mark.parametrize("case, check", PAIRS, ids=[f"{case.name}-{check.__name__}" for case, check in PAIRS])
def test_shared_check(case: LayerCase, check) -> None:
    check(case)
