"""Ready-made models: one function per architecture, each returning a :class:`~ctflows.core.Flow`."""
from ctflows.models.continuous import cnf
from ctflows.models.discrete import nice, realnvp
from ctflows.models.residual import resflow
from ctflows.models.spline import spline

__all__ = ["cnf", "nice", "realnvp", "resflow", "spline"]
