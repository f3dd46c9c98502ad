"""The check of a whole-number setting (a number of blocks, iterations, kernels): one message everywhere."""
from __future__ import annotations

import operator

from ctflows.errors import ConfigurationError


def positive_count(owner: str, name: str, value: object) -> int:
    """``value`` as an int if it is a whole number >= 1 (numpy and 0-d torch integers too; not bools or floats),
    else a :class:`ConfigurationError` naming ``owner`` and ``name``."""
    try:
        count = operator.index(value)
    except TypeError:
        count = None
    if isinstance(value, bool) or count is None or count < 1:
        raise ConfigurationError(f"{owner}: {name} must be an int >= 1, got {value!r}")
    return count
