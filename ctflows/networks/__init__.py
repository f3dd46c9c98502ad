"""Neural networks shared by layer families (conditioners, residual branches)."""
from ctflows.networks.mlp import MLP, activation_module
from ctflows.networks.soft_clamp import soft_clamp

__all__ = ["MLP", "activation_module", "soft_clamp"]
