"""Training and evaluation: the ``fit`` loop, held-out ``evaluate``, and model checkpoints."""
from ctflows.training.checkpoint import load, save
from ctflows.training.evaluate import evaluate
from ctflows.training.fit import fit
from ctflows.training.history import History

__all__ = ["fit", "evaluate", "save", "load", "History"]
