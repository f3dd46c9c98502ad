"""Linear and normalization layers: cheap, exact log-dets."""
from ctflows.linear.actnorm import ActNorm
from ctflows.linear.asinh import Asinh
from ctflows.linear.lu_linear import LULinear
from ctflows.linear.permutation import Permutation, RandomPermutation, ReversePermutation
from ctflows.linear.standardization import Standardization

__all__ = ["ActNorm", "Asinh", "LULinear", "Permutation", "RandomPermutation", "ReversePermutation", "Standardization"]
