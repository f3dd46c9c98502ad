"""Plots of densities and samples, in one consistent style (matplotlib, no screen needed)."""
from ctflows.viz.density import density_panel, sample_panel, side_by_side

__all__ = ["density_panel", "sample_panel", "side_by_side"]
