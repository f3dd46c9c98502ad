"""Ready-made models: one function per architecture, each returning a :class:`~ctflows.core.Flow`."""
from ctflows.models.autoregressive import maf
from ctflows.models.continuous import cnf
from ctflows.models.discrete import nice, realnvp
from ctflows.models.residual import resflow
from ctflows.models.spline import spline

__all__ = ["cnf", "maf", "nice", "realnvp", "resflow", "spline"]
