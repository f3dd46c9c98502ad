"""Coupling layers: half the features, unchanged, parameterise an elementwise map of the other half."""
from ctflows.coupling.additive import AdditiveCoupling
from ctflows.coupling.affine import AffineCoupling
from ctflows.coupling.base import Coupling, checkerboard_mask
from ctflows.coupling.rational_quadratic import rational_quadratic_spline
from ctflows.coupling.spline import RQSplineCoupling

__all__ = [
    "Coupling", "AdditiveCoupling", "AffineCoupling", "RQSplineCoupling", "checkerboard_mask",
    "rational_quadratic_spline",
]
