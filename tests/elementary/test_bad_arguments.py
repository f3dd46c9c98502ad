"""Bad settings of the planar and radial layers: a ConfigurationError naming the class, the argument and the
value, instead of a torch/Python error or a SolverError blaming convergence for a tolerance that cannot be met."""
from __future__ import annotations

import math
from typing import Any, Callable

import pytest
import torch

from ctflows.elementary import Planar, Radial
from ctflows.errors import ConfigurationError

CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("planar_features_negative", lambda: Planar(-1), r"Planar: features must be an int >= 1, got -1"),
    ("planar_features_zero", lambda: Planar(0), r"Planar: features .* got 0"),
    ("planar_features_fraction", lambda: Planar(2.5), r"Planar: features .* got 2\.5"),
    ("radial_features_string", lambda: Radial("3"), r"Radial: features must be an int >= 1, got '3'"),
    ("radial_features_zero", lambda: Radial(0), r"Radial: features .* got 0"),
    ("planar_tolerance_negative", lambda: Planar(3, tolerance=-1.0), r"Planar: tolerance must be a number >= 0.* got -1\.0"),
    ("planar_tolerance_nan", lambda: Planar(3, tolerance=math.nan), r"Planar: tolerance .* got nan"),
    ("planar_tolerance_string", lambda: Planar(3, tolerance="1e-6"), r"Planar: tolerance .* got '1e-6'"),
    ("planar_max_iterations_zero", lambda: Planar(3, max_iterations=0), r"Planar: max_iterations must be an int >= 1, got 0"),
    ("planar_max_iterations_fraction", lambda: Planar(3, max_iterations=2.5), r"Planar: max_iterations .* got 2\.5"),
]


@pytest.mark.parametrize("call, match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_argument_is_refused_clearly(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        call()


def test_a_zero_tolerance_is_still_allowed() -> None:
    # 0 asks for an exactly stationary root; the SolverError says so if it is never reached.
    z = torch.randn(2, 3, dtype=torch.float64)
    layer = Planar(3, tolerance=0.0).double()
    assert torch.isfinite(layer.inverse(z)[0]).all()
