"""Elementary flows (Rezende & Mohamed 2015): planar and radial layers."""
from ctflows.elementary.planar import Planar
from ctflows.elementary.radial import Radial

__all__ = ["Planar", "Radial"]
