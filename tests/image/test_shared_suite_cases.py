"""The image layers, flattened by FlatView, pass the shared vector property suite as LayerCases.

The Glow step is listed in tests/layer_cases.py; the multiscale CNF is not (the suite's row-by-row Jacobian
would take tens of seconds), so this file runs the suite's cheaper checks on it.
"""
from __future__ import annotations

import pytest

import test_layer_properties as suite
from ctflows.continuous import CNF
from ctflows.image import ConvTimeField, FlatView, ImageView, Multiscale, level_shapes
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
]


# The CNF case runs only the checks tests/image/test_image_properties.py does not already make (solves are slow).
PAIRS = [(CASES[0], check) for check in (suite.test_batch_independence, suite.test_bad_input_names_the_layer)]


@pytest.mark.parametrize("case, check", PAIRS, ids=[f"{case.name}-{check.__name__}" for case, check in PAIRS])
def test_shared_check(case: LayerCase, check) -> None:
    check(case)
