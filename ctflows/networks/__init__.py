"""Neural networks shared by layer families (conditioners, residual branches)."""
from ctflows.networks.mlp import MLP, activation_module, check_network
from ctflows.networks.soft_clamp import soft_clamp

__all__ = ["MLP", "activation_module", "check_network", "soft_clamp"]
