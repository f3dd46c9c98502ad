"""Ready-made image flows on the same interface: a multiscale CNF (FFJORD) and a multiscale Glow.

    x ∈ [0, 1)^{C×H×W} --logit--> multiscale(levels) --> z ~ N(0, I)

Both take dequantized pixels in ``[0, 1)`` (see :func:`ctflows.image.dequantize`) and return a
:class:`~ctflows.core.Flow` whose ``log_prob`` is a density on a box slightly larger than the unit cube
(the logit's domain, see :mod:`ctflows.image.logit`), logit log-det included; samples may fall just
outside ``[0, 1]``. :func:`ctflows.image.bits_per_dim` turns it into bits per dimension (an upper bound).
"""
from __future__ import annotations

from typing import Any, Sequence

from ctflows.continuous import CNF
from ctflows.core import Chain, Flow, StandardNormal
from ctflows.core.counts import check_seed, positive_count
from ctflows.image.fields import ConvTimeField
from ctflows.image.glow import glow_step
from ctflows.image.logit import Logit
from ctflows.image.multiscale import Multiscale, level_shapes
from ctflows.image.settings import image_shape
from ctflows.image.views import ImageView
from ctflows.models.seeding import initialised_from


def multiscale_cnf(
    shape: tuple[int, int, int],
    *,
    levels: int = 2,
    blocks: int = 1,
    hidden: Sequence[int] = (32, 32),
    activation: str = "softplus",
    alpha: float = 0.05,
    seed: int | None = None,
    **cnf_kwargs: Any,
) -> Flow:
    """FFJORD-style multiscale CNF (Grathwohl et al. 2019): per level, squeeze and ``blocks`` CNF blocks.

    Each block is a :class:`~ctflows.continuous.CNF` with a :class:`ConvTimeField`; ``cnf_kwargs`` go to
    every CNF (defaults here: Hutchinson's estimator in training, the exact trace in evaluation,
    atol = rtol = 1e-5 as FFJORD). Data ``[B, *shape]`` in ``[0, 1)``. ``seed``, when given, fixes the initial
    weights (drawn in a forked RNG, leaving torch's global one as it was).
    """
    shape = image_shape("multiscale_cnf", shape)
    positive_count("multiscale_cnf", "blocks", blocks)
    seed = check_seed("multiscale_cnf", seed)
    options = {"divergence": "hutchinson", "eval_divergence": "exact", "atol": 1e-5, "rtol": 1e-5, **cnf_kwargs}
    with initialised_from(seed):
        stages = [
            Chain(*[ImageView(CNF(ConvTimeField(s, hidden, activation=activation), **options), s) for _ in range(blocks)])
            for s in level_shapes(shape, levels)
        ]
    return Flow(Chain(Logit(shape, alpha), Multiscale(shape, stages)), StandardNormal(shape))


def multiscale_glow(
    shape: tuple[int, int, int], *, levels: int = 2, steps: int = 4, hidden: int = 64, alpha: float = 0.05,
    seed: int | None = None,
) -> Flow:
    """Discrete multiscale baseline (Kingma & Dhariwal 2018): per level, squeeze and ``steps`` Glow steps.

    Steps alternate which channel half conditions the coupling. Data ``[B, *shape]`` in ``[0, 1)``. ``seed``,
    when given, fixes the initial weights (drawn in a forked RNG, leaving torch's global one as it was).
    """
    shape = image_shape("multiscale_glow", shape)
    positive_count("multiscale_glow", "steps", steps)
    seed = check_seed("multiscale_glow", seed)
    with initialised_from(seed):
        stages = [Chain(*[glow_step(s, hidden, parity=i % 2) for i in range(steps)]) for s in level_shapes(shape, levels)]
    return Flow(Chain(Logit(shape, alpha), Multiscale(shape, stages)), StandardNormal(shape))
