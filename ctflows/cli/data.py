"""``ctflows data list``: the built-in densities, one per line with its description, then the image set."""
from __future__ import annotations

import argparse

from ctflows.cli.dataset import IMAGE_DATA
from ctflows.cli.models import DEFAULT_IMAGE_MODELS
from ctflows.data import list_densities


def run(args: argparse.Namespace) -> int:
    """Print each built-in density's name and description, then the image data sets; returns 0."""
    densities = list_densities()
    width = max(map(len, densities))
    for name, description in densities.items():
        print(f"{name:<{width}}  {description}")
    print(
        f"\nimage data: {', '.join(IMAGE_DATA)} (scikit-learn's 8x8 handwritten digits, 17 gray levels; "
        f"models {DEFAULT_IMAGE_MODELS.replace(',', ', ')}; reported in bits/dim)"
    )
    return 0
