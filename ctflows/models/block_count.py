"""The one check every builder makes of its ``blocks`` argument."""
from __future__ import annotations

from ctflows.errors import ConfigurationError


def check_blocks(builder: str, blocks: int) -> int:
    """``blocks`` if it is an int >= 1, else a :class:`ConfigurationError` naming ``builder``.

    Zero blocks would build a flow of the ActNorm layers alone (or nothing), a model that cannot learn
    what the builder promises, without a word.
    """
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ConfigurationError(f"{builder}: blocks must be an int >= 1, got {blocks!r}")
    return blocks
