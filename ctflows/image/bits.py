"""Bits per dimension of integer images under a flow on dequantized pixels (Theis et al. 2016).

    bpd = -log P(k) / (D ln 2)  with  log P(k) ≈ log q(x) - D log L,   x = (k + u) / L ∈ [0, 1)^D

``q`` is the flow's density on the unit cube (every preprocessing log-det, e.g. the logit's, is inside
``Flow.log_prob``); ``-D log L`` is the log-det of the scaling from ``[0, L)`` to ``[0, 1)``. With one
draw of ``u`` per image this is an unbiased estimate of the dequantization bound, an upper bound on the
true bits per dimension. A model uniform on the cube gives exactly ``log2 L``.
"""
from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from ctflows.core.counts import positive_count
from ctflows.image.dequantization import level_count


def nats_to_bits_per_dim(nll: float, dims: int, levels: int) -> float:
    """``(nll + D ln L) / (D ln 2)``: NLL in nats of ``x`` on ``[0, 1)^D`` -> bits/dim of the integer image.

    ``D ln L`` undoes the scaling of ``[0, L)`` to ``[0, 1)`` (convention of Theis et al. 2016; Dinh et al. 2017).
    ``D`` (pixel values per image, C·H·W) must be an int >= 1 and ``L`` an int >= 2: D = 0 would divide by
    zero, and a negative or fractional D or L gives a number that is no bits per dimension at all.
    """
    dims, levels = positive_count("nats_to_bits_per_dim", "dims", dims), level_count("nats_to_bits_per_dim", levels)
    return (nll + dims * math.log(levels)) / (dims * math.log(2))


def bits_per_dim(
    flow: nn.Module, images: Tensor, levels: int, *, seed: int = 0, batch_size: int = 512, probes: int = 1
) -> dict[str, Any]:
    """Bits per dimension of integer ``images [N, C, H, W]`` (values ``0 … levels-1``) under ``flow``.

    ``evaluate(flow, images, levels=levels, ...)`` (``eval()`` mode, no grad; one dequantization draw from
    ``seed``; ``probes`` as there for Hutchinson log-dets), narrowed to ``bpd``, ``bpd_se`` (standard error
    over images), ``nll`` (nats on the unit cube), ``n``, ``exact`` and ``dims``.
    """
    # Imported here: ctflows.training.evaluate itself imports this module for nats_to_bits_per_dim.
    from ctflows.training.evaluate import evaluate

    result = evaluate(flow, images, levels=levels, seed=seed, batch_size=batch_size, probes=probes)
    keep = ("bpd", "bpd_se", "nll", "n", "exact")
    return {**{k: result[k] for k in keep}, "dims": images[0].numel()}
