"""RNODE regularizers (Finlay et al., "How to train your neural ODE", 2020), integrated as extra ODE states.

    kinetic energy:      K = ∫_0^T ‖v(t, x(t))‖² dt               favours straight, constant-speed paths
    Jacobian Frobenius:  B = ∫_0^T ‖∂v/∂x (t, x(t))‖_F² dt         favours smooth fields; E‖εᵀJ‖² = ‖J‖_F²

Together they make the learned dynamics easy to solve (fewer function evaluations) without changing the
optimal density. Rates are per sample ``[B]``; the CNF reports their batch means in ``stats["regularization"]``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Iterable, Sequence

from torch import Tensor

from ctflows.errors import ConfigurationError, InputError

REGULARIZERS = ("kinetic_energy", "jacobian_frobenius")


def check_regularization(names: Iterable[str] | str | None) -> tuple[str, ...]:
    """Normalise a name or list of names to a tuple of known regularizer names (no repeats)."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = (names,)
    if isinstance(names, Mapping):  # its weights would be dropped without a word
        raise ConfigurationError(
            f"CNF: regularization names the terms to integrate, e.g. {list(names)}; their weights go to "
            f"fit(regularization={dict(names)!r}), got {names!r}"
        )
    if not hasattr(names, "__iter__"):
        raise ConfigurationError(f"CNF: regularization must be a name or a list of names from {REGULARIZERS}, got {names!r}")
    names = tuple(names)
    unknown = [n for n in names if not isinstance(n, str) or n not in REGULARIZERS]
    if unknown:
        raise ConfigurationError(f"CNF: unknown regularization {unknown}; choose from {REGULARIZERS}")
    return tuple(dict.fromkeys(names))


def _squared_norm_per_row(owner: str, values: Tensor, shape: str) -> Tensor:
    """The sum of squares of each row (all but the first axis): ``[B, ...] -> [B]``."""
    if not isinstance(values, Tensor) or values.dim() < 2:
        got = list(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise InputError(f"{owner}: expects a batch of shape {shape}, got {got}")
    return values.pow(2).reshape(values.shape[0], -1).sum(dim=1)


def kinetic_energy_rate(v: Tensor) -> Tensor:
    """``‖v‖²`` per sample: ``[B, D] -> [B]``."""
    return _squared_norm_per_row("kinetic_energy_rate", v, "[B, D]")


def jacobian_frobenius_rate(jacobian_part: Tensor) -> Tensor:
    """``‖εᵀJ‖²`` from a Hutchinson vjp ``[B, D]``, or the exact ``‖J‖_F²`` from the full Jacobian ``[B, D, D]``: ``-> [B]``."""
    return _squared_norm_per_row("jacobian_frobenius_rate", jacobian_part, "[B, D] or [B, D, D]")


def regularization_rates(names: Sequence[str], v: Tensor, jacobian_part: Tensor | None) -> list[Tensor]:
    """The time derivatives of the requested regularizer states, in the order of ``names``; each ``[B]``."""
    rates = []
    for name in names:
        if name == "kinetic_energy":
            rates.append(kinetic_energy_rate(v))
        else:
            rates.append(jacobian_frobenius_rate(jacobian_part))
    return rates
