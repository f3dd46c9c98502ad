"""The one check every builder makes of its ``blocks`` argument."""
from __future__ import annotations

from ctflows.core.counts import positive_count


def check_blocks(builder: str, blocks: object) -> int:
    """``blocks`` as an int >= 1, else a :class:`ConfigurationError` naming ``builder``.

    Zero blocks would build a flow of the ActNorm layers alone (or nothing), a model that cannot learn
    what the builder promises, without a word.
    """
    return positive_count(builder, "blocks", blocks)
