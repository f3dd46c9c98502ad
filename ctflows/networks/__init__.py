"""Neural networks shared by layer families (conditioners, residual branches)."""
from ctflows.networks.mlp import MLP, activation_module

__all__ = ["MLP", "activation_module"]
