"""Gathering the per-call side information that layers leave in ``layer.stats``.

Convention for a layer's ``stats`` dict (all keys optional):
    ``"nfe_forward"``, ``"nfe_backward"``, ``"iterations"``: counts from the last call (ints);
    ``"regularization"``: ``{name: scalar Tensor}``, differentiable terms (batch means) that a training
    loop may weight into the loss, e.g. ``{"kinetic_energy": ..., "jacobian_frobenius": ...}``.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ctflows.core.transform import Chain, Inverse, Transform


def _leaf_transforms(model: nn.Module) -> list[Transform]:
    # Chains and Inverses only forward their parts' stats; counting them too would double every term.
    return [m for m in model.modules() if isinstance(m, Transform) and not isinstance(m, (Chain, Inverse))]


def regularization_terms(model: nn.Module) -> dict[str, Tensor]:
    """Sum of each named regularization term over every layer of ``model`` (from their last call)."""
    totals: dict[str, Tensor] = {}
    for layer in _leaf_transforms(model):
        for name, value in layer.stats.get("regularization", {}).items():
            totals[name] = totals[name] + value if name in totals else value
    return totals


def detach_regularization_terms(model: nn.Module) -> None:
    """Replace every layer's regularization terms by their values without the graph that produced them.

    A training loop calls it once a step is done: a step skipped for a non-finite loss never runs backward,
    so its terms would otherwise keep the whole solve's graph alive through the next forward pass.
    """
    for layer in _leaf_transforms(model):
        terms = layer.stats.get("regularization")
        if terms:
            layer.stats["regularization"] = {name: value.detach() for name, value in terms.items()}


def count_stats(model: nn.Module) -> dict[str, int]:
    """Sum of each integer count (``nfe_forward``, ``iterations``, ...) over every layer of ``model``."""
    totals: dict[str, int] = {}
    for layer in _leaf_transforms(model):
        for name, value in layer.stats.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[name] = totals.get(name, 0) + value
    return totals


def layer_stats(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Each reporting layer's stats keyed by its module path, e.g. ``{"transform.layers.2": {...}}``."""
    return {name: m.stats for name, m in model.named_modules() if isinstance(m, Transform) and not isinstance(m, (Chain, Inverse)) and m.stats}
