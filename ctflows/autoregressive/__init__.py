"""Autoregressive layers: MADE conditioners and the masked autoregressive flow (MAF) layer."""
from ctflows.autoregressive.made import MADE, MaskedLinear
from ctflows.autoregressive.maf import MaskedAutoregressive

__all__ = ["MADE", "MaskedLinear", "MaskedAutoregressive"]
