"""Linear and normalization layers: cheap, exact log-dets."""
from ctflows.linear.actnorm import ActNorm
from ctflows.linear.lu_linear import LULinear
from ctflows.linear.permutation import Permutation, RandomPermutation, ReversePermutation
from ctflows.linear.standardization import Standardization

__all__ = ["ActNorm", "LULinear", "Permutation", "RandomPermutation", "ReversePermutation", "Standardization"]
