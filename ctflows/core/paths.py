"""File paths given to the library: a str or os.PathLike, refused with the caller's error before pathlib sees them.

pathlib's own TypeError for ``Path(3)`` names neither the function nor the argument; bytes, lists and None
fail there the same way.
"""
from __future__ import annotations

import os
from pathlib import Path

from ctflows.errors import ConfigurationError, CtflowsError, DataError


def as_path(owner: str, name: str, value: object, example: str, error: type[CtflowsError] = ConfigurationError) -> Path:
    """``value`` as a Path; ``error`` naming ``owner`` and the argument ``name`` (with an ``example``) if it is not a
    str or os.PathLike."""
    if not isinstance(value, (str, os.PathLike)):
        got = f"{type(value).__name__} {value!r}"
        raise error(f"{owner}: {name} must be a str or os.PathLike such as {example!r}, got {got}")
    return Path(value)


def existing_file(owner: str, value: object, example: str) -> Path:
    """``value`` as the Path of an existing regular file to read; a :class:`DataError` starting with the path if it
    is missing or not a regular file."""
    path = as_path(owner, "path", value, example, DataError)
    if not path.is_file():
        raise DataError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    return path
