"""The registry of toy densities by name: ``get_density("two_moons")``, ``list_densities()``."""
from __future__ import annotations

import inspect

from ctflows.core.counts import positive_count
from ctflows.data.checkerboard import Checkerboard
from ctflows.data.curves import SwissRoll, TwoMoons, TwoSpirals
from ctflows.data.density import ToyDensity
from ctflows.data.funnel import Funnel
from ctflows.data.many_well import ManyWell
from ctflows.data.mixtures import EightGaussians, GaussianMixture
from ctflows.data.pinwheel import Pinwheel
from ctflows.data.rings import Circles, Rings
from ctflows.data.twisted_gaussian import TwistedGaussian
from ctflows.errors import ConfigurationError

_DENSITIES: dict[str, type[ToyDensity]] = {
    cls.name: cls
    for cls in (
        EightGaussians, Checkerboard, Rings, Circles, TwoMoons, SwissRoll, TwoSpirals, Pinwheel,
        GaussianMixture, Funnel, TwistedGaussian, ManyWell,
    )
}


def list_densities(dim: int | None = None) -> dict[str, str]:
    """Registered densities: name -> one-line description; with ``dim``, only those of that dimension by default
    (``list_densities(dim=2)``: the planar toys a 2-D model or plot can take as they are)."""
    if dim is not None:
        dim = positive_count("list_densities", "dim", dim)  # else dim="2" or 0 matched nothing, silently
    return {name: cls.description for name, cls in _DENSITIES.items() if dim is None or cls().dim == dim}


def get_density(name: str, **kwargs: object) -> ToyDensity:
    """Build the density registered as ``name`` with its options (e.g. ``get_density("funnel", dim=20)``).

    Raises ConfigurationError for an unknown name (listing the known ones) or options the density does not take.
    """
    if not isinstance(name, str) or name not in _DENSITIES:  # a list as name was a TypeError (unhashable)
        raise ConfigurationError(f"unknown density {name!r}; known densities: {', '.join(_DENSITIES)}")
    cls = _DENSITIES[name]
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError:
        options = ", ".join(signature.parameters) or "none"
        raise ConfigurationError(
            f"density {name!r} got options {sorted(kwargs)}; it accepts: {options}"
        ) from None
    return cls(**kwargs)
