"""The checks every builder makes of its ``features`` and ``blocks`` arguments, under the builder's own name
(``seed`` goes through :func:`ctflows.core.counts.check_seed`, as ``fit``'s does)."""
from __future__ import annotations

from ctflows.core.counts import positive_count
from ctflows.errors import ConfigurationError


def check_blocks(builder: str, blocks: object) -> int:
    """``blocks`` as an int >= 1, else a :class:`ConfigurationError` naming ``builder``.

    Zero blocks would build a flow of the ActNorm layers alone (or nothing), a model that cannot learn
    what the builder promises, without a word.
    """
    return positive_count(builder, "blocks", blocks)


def check_features(builder: str, features: object, *, coupling: bool = False) -> int:
    """``features`` as an int >= 1 (>= 2 for a ``coupling`` flow), else a :class:`ConfigurationError` naming ``builder``.

    The first layer would refuse it too, but under its own name (``ActNorm: features ...``), which the user
    never called; a coupling layer transforms one part of the features given the rest, so it needs two.
    """
    features = positive_count(builder, "features", features)
    if coupling and features < 2:
        raise ConfigurationError(
            f"{builder}: a coupling flow needs at least 2 features (it transforms some given the others), got "
            f"{features}; for 1-D data use ctflows.cnf, ctflows.resflow or ctflows.nonparametric.fit_gaussianization"
        )
    return features
