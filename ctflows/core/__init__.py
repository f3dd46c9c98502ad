"""The interface: Transform, Chain, Inverse, Flow and base distributions."""
from ctflows.core.distributions import DiagonalNormal, Distribution, StandardNormal
from ctflows.core.flow import Flow
from ctflows.core.transform import Chain, Inverse, Transform, sum_except_batch, zeros_logdet

__all__ = ["Transform", "Chain", "Inverse", "Flow", "Distribution", "StandardNormal", "DiagonalNormal", "sum_except_batch", "zeros_logdet"]
