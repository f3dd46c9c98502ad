"""Toy densities with exact ``sample()`` and ``log_prob()``, loaders for user data files, and image sets."""
from ctflows.data.density import ToyDensity
from ctflows.data.files import load_array
from ctflows.data.images import load_digits, load_idx_images
from ctflows.data.registry import get_density, list_densities

__all__ = ["ToyDensity", "get_density", "list_densities", "load_array", "load_digits", "load_idx_images"]
