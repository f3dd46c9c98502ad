"""Builder for residual flows on vectors (i-ResNet, Behrmann et al. 2019; Residual Flows, Chen et al. 2019).

Each block is ``ActNorm -> ResidualBlock``: ActNorm standardises what the block sees (a residual block
moves points by at most Lip(g) per unit of distance, so it cannot rescale much on its own) and the block
does the non-linear work; a final ActNorm matches the base's scale.
"""
from __future__ import annotations

from typing import Any, Sequence

from ctflows.core import Chain, Flow, StandardNormal, Transform
from ctflows.core.counts import check_seed
from ctflows.linear import ActNorm
from ctflows.models.builder_arguments import check_blocks, check_features
from ctflows.models.seeding import initialised_from
from ctflows.residual import ResidualBlock


def resflow(
    features: int,
    blocks: int = 8,
    hidden: Sequence[int] = (64, 64),
    *,
    coefficient: float = 0.97,
    activation: str = "lipswish",
    logdet: str = "auto",
    eval_logdet: str = "auto",
    context_features: int | None = None,
    seed: int | None = None,
    **block_options: Any,
) -> Flow:
    """A residual flow: ``blocks`` × (ActNorm, :class:`~ctflows.residual.ResidualBlock`), then ActNorm.

    Shapes: data ``[B, features]``; context ``[B, context_features]`` if given.
    ``logdet`` / ``eval_logdet``: ``"auto"`` (exact for features <= 8, else the unbiased Russian-roulette
    estimate), ``"exact"``, ``"power_series"`` or ``"russian_roulette"``. ``seed``, when given, fixes the
    initial weights and power-iteration vectors (drawn in a forked RNG, leaving torch's global one as it
    was). Other ``ResidualBlock`` options (``terms``, ``truncation``, ``tolerance``, ...) pass through.
    """
    features = check_features("resflow", features)
    check_blocks("resflow", blocks)
    seed = check_seed("resflow", seed)
    with initialised_from(seed):
        layers: list[Transform] = []
        for _ in range(blocks):
            layers += [
                ActNorm(features),
                ResidualBlock(
                    features, hidden, context_features=context_features, coefficient=coefficient,
                    activation=activation, logdet=logdet, eval_logdet=eval_logdet, **block_options,
                ),
            ]
    layers.append(ActNorm(features))
    return Flow(Chain(*layers), StandardNormal(features))
