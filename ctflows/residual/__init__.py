"""Invertible residual flows: i-ResNet (Behrmann et al. 2019) and Residual Flows (Chen et al. 2019).

A block maps x -> x + g(x) with a branch g whose Lipschitz constant is held below 1 by spectral
normalisation; its inverse is a fixed-point iteration and its log-det an exact, truncated-series or
unbiased Russian-roulette estimate.
"""
from ctflows.residual.activations import LipSwish, lipschitz_activation
from ctflows.residual.block import ResidualBlock
from ctflows.residual.branch import LipschitzMLP
from ctflows.residual.fixed_point import fixed_point_inverse
from ctflows.residual.logdet import exact_logdet, power_series_logdet, resolve_logdet
from ctflows.residual.roulette import Truncation, russian_roulette_logdet
from ctflows.residual.spectral_norm import SpectralLinear, cached_weights, spectral_norms

__all__ = [
    "ResidualBlock", "LipschitzMLP", "SpectralLinear", "LipSwish", "lipschitz_activation", "Truncation",
    "exact_logdet", "power_series_logdet", "russian_roulette_logdet", "resolve_logdet", "fixed_point_inverse",
    "cached_weights", "spectral_norms",
]
