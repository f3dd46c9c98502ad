"""Toy densities with exact ``sample()`` and ``log_prob()``, and a loader for user data files."""
from ctflows.data.density import ToyDensity
from ctflows.data.files import load_array
from ctflows.data.registry import get_density, list_densities

__all__ = ["ToyDensity", "get_density", "list_densities", "load_array"]
