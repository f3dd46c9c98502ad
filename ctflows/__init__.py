"""ctflows: continuous-time (neural ODE) and discrete normalizing flows on one interface."""
from ctflows.continuous import CNF
from ctflows.core import Chain, DiagonalNormal, Flow, Inverse, StandardNormal, Transform
from ctflows.coupling import AdditiveCoupling, AffineCoupling, RQSplineCoupling
from ctflows.data import get_density, list_densities, load_array
from ctflows.errors import CtflowsError
from ctflows.linear import ActNorm, Asinh, LULinear, RandomPermutation, ReversePermutation, Standardization
from ctflows.models import cnf, nice, realnvp, resflow, spline
from ctflows.nonparametric import fit_dual_ascent, fit_gaussianization
from ctflows.training import evaluate, fit, load, save

__version__ = "0.1.0"

__all__ = [
    "Transform", "Chain", "Inverse", "Flow", "StandardNormal", "DiagonalNormal",
    "ActNorm", "Standardization", "Asinh", "LULinear", "ReversePermutation", "RandomPermutation", "AdditiveCoupling", "AffineCoupling", "RQSplineCoupling",
    "CNF", "cnf", "realnvp", "nice", "resflow", "spline", "get_density", "list_densities", "load_array", "fit", "evaluate", "save", "load",
    "fit_dual_ascent", "fit_gaussianization", "CtflowsError",
]
