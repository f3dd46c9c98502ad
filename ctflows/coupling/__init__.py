"""Coupling layers: half the features, unchanged, parameterise an elementwise map of the other half."""
from ctflows.coupling.additive import AdditiveCoupling
from ctflows.coupling.affine import AffineCoupling
from ctflows.coupling.base import Coupling, checkerboard_mask

__all__ = ["Coupling", "AdditiveCoupling", "AffineCoupling", "checkerboard_mask"]
