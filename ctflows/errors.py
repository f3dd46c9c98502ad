"""Exceptions raised by ctflows.

Every error a user can cause derives from :class:`CtflowsError`, so ``except CtflowsError`` catches
them all; each also derives from the built-in exception it refines (``ValueError`` for bad input,
``RuntimeError`` for a computation that cannot proceed) so generic handlers keep working.
"""


class CtflowsError(Exception):
    """Base class of all ctflows errors."""


class InputError(CtflowsError, ValueError):
    """An input tensor has the wrong shape, dtype or non-finite values."""


class ConfigurationError(CtflowsError, ValueError):
    """A layer or model was constructed with settings that cannot work (e.g. non-invertible)."""


class SolverError(CtflowsError, RuntimeError):
    """A numerical procedure (ODE solve, fixed-point inverse) could not proceed."""


class CheckpointError(CtflowsError, ValueError):
    """A file is not a valid ctflows checkpoint."""


class DataError(CtflowsError, ValueError):
    """A data file or data set is malformed."""


class TrainingError(CtflowsError, RuntimeError):
    """Training cannot continue (e.g. the loss or its gradient became NaN or infinite)."""
