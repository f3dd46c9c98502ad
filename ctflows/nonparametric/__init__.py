"""Density estimators fitted without gradient descent, returned as ordinary flows.

* :func:`fit_dual_ascent` — Tabak & Turner (2013): many near-identity radial maps, each a clipped
  Newton step on the log-likelihood; the discrete counterpart of a CNF.
* :func:`fit_gaussianization` — Laparra et al. (2011): rotations alternated with marginal
  Gaussianization through logistic-mixture CDFs (Meng et al. 2020).

Both return a :class:`~ctflows.Flow` with ``flow.report`` (a :class:`FitReport`); :func:`truncate` gives
the model after its first k steps. Their layers are Transforms usable on their own:
:class:`RadialExpansion`, :class:`MarginalGaussianization`, :class:`Rotation`; :func:`whitening_layer`
returns an LULinear. docs/nonparametric.md describes the procedures.
"""
from ctflows.nonparametric.ascent_step import newton_beta, radial_derivatives, radial_step
from ctflows.nonparametric.dual_ascent import fit_dual_ascent
from ctflows.nonparametric.gaussianization import fit_gaussianization
from ctflows.nonparametric.marginal import MarginalGaussianization
from ctflows.nonparametric.normal_quantile import normal_quantile
from ctflows.nonparametric.radial import RadialExpansion, radial_forward
from ctflows.nonparametric.report import FitReport, truncate
from ctflows.nonparametric.root import solve_increasing
from ctflows.nonparametric.rotation import Rotation, pca_rotation, random_rotation
from ctflows.nonparametric.whitening import set_lu_linear, whitening_layer

__all__ = [
    "fit_dual_ascent", "fit_gaussianization", "FitReport", "truncate", "RadialExpansion",
    "MarginalGaussianization", "Rotation", "pca_rotation", "random_rotation", "whitening_layer", "set_lu_linear",
    "radial_derivatives", "newton_beta", "radial_step", "radial_forward", "normal_quantile", "solve_increasing",
]
