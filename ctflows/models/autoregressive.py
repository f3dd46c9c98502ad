"""Builder for masked autoregressive flows (Papamakarios et al. 2017).

Each block is ``ActNorm -> MaskedAutoregressive``, the autoregressive order reversed from one block to the
next so that every coordinate is conditioned on every other somewhere in the stack; a last ActNorm ends it.
"""
from __future__ import annotations

from typing import Sequence

from ctflows.autoregressive import MaskedAutoregressive
from ctflows.core import Chain, Flow, StandardNormal, Transform
from ctflows.core.counts import check_seed
from ctflows.linear import ActNorm
from ctflows.models.builder_arguments import check_blocks, check_features
from ctflows.models.seeding import initialised_from


def maf(features: int, blocks: int = 5, hidden: Sequence[int] = (64, 64), *, seed: int | None = None) -> Flow:
    """A MAF of ``blocks`` × (ActNorm, MaskedAutoregressive) with alternating orders, then ActNorm.

    Shapes: data ``[B, features]``. The density takes one pass per layer; sampling takes ``features`` passes
    per layer (the inverse is sequential). Hidden widths should be at least ``features - 1`` (MADE's masks).
    ``seed``, when given, fixes the initial weights (drawn in a forked RNG, leaving torch's global one as it was).
    """
    features = check_features("maf", features)
    check_blocks("maf", blocks)
    seed = check_seed("maf", seed)
    natural = list(range(features))
    layers: list[Transform] = []
    with initialised_from(seed):
        for block in range(blocks):
            order = natural if block % 2 == 0 else natural[::-1]
            layers += [ActNorm(features), MaskedAutoregressive(features, hidden, order=order)]
        layers.append(ActNorm(features))
    return Flow(Chain(*layers), StandardNormal(features))
