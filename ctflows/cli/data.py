"""``ctflows data list``: the built-in densities, one per line with its description."""
from __future__ import annotations

import argparse

from ctflows.data import list_densities


def run(args: argparse.Namespace) -> int:
    """Print each built-in density's name and description; returns 0."""
    densities = list_densities()
    width = max(map(len, densities))
    for name, description in densities.items():
        print(f"{name:<{width}}  {description}")
    return 0
