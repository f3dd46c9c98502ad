"""The error hierarchy: every ctflows error is a CtflowsError and also the built-in exception it refines."""
from __future__ import annotations

import pytest

from ctflows import errors


@pytest.mark.parametrize(
    "error, builtin",
    [
        (errors.InputError, ValueError),
        (errors.ConfigurationError, ValueError),
        (errors.CheckpointError, ValueError),
        (errors.DataError, ValueError),
        (errors.SolverError, RuntimeError),
        (errors.TrainingError, RuntimeError),
    ],
)
def test_each_error_is_caught_by_the_library_base_and_by_its_builtin(error: type[Exception], builtin: type[Exception]) -> None:
    """``except CtflowsError`` catches them all, and generic ``except ValueError``/``RuntimeError`` handlers keep working."""
    for catch in (errors.CtflowsError, builtin):
        with pytest.raises(catch):
            raise error("message")
