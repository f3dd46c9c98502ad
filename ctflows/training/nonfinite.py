"""What ``fit`` does when a step's loss or gradient is NaN or infinite: skip it, maybe roll back, count it.

A skipped step applies no update. ``"restore"`` also puts back the model and optimizer state (and the
parameter average, if the run keeps one) of the last checkpoint or of the start, for runs that have wandered
into a region where every batch diverges.
After ``max_bad_steps`` bad steps in a row ``fit`` stops with a :class:`TrainingError`.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from ctflows.core.counts import positive_count
from ctflows.errors import ConfigurationError
from ctflows.training.averaging import ParameterAverage

POLICIES = ("skip", "restore", "raise")


class NonFiniteGuard:
    """Counts bad steps and keeps the snapshot ``"restore"`` rolls back to."""

    def __init__(self, policy: str, max_bad_steps: int) -> None:
        if policy not in POLICIES:
            raise ConfigurationError(f"fit: on_nonfinite must be one of {POLICIES}, got {policy!r}")
        self.policy, self.max_bad_steps = policy, positive_count("fit", "max_bad_steps", max_bad_steps)
        self.in_a_row = 0
        self._snapshot: dict[str, Any] | None = None

    @staticmethod
    def finite(*values: float) -> bool:
        """Whether every value is a finite number."""
        return all(math.isfinite(v) for v in values)

    def resume_count(self, skipped: list[int], steps: int) -> None:
        """Continue a run's count of bad steps in a row: the ``skipped`` steps that end at step ``steps``."""
        bad = set(skipped)
        self.in_a_row = next(n for n in range(steps + 1) if steps - n not in bad)

    def good_step(self) -> None:
        """A step was applied: the run of bad steps is over."""
        self.in_a_row = 0

    def bad_step(
        self, flow: nn.Module, optimizer: torch.optim.Optimizer, average: ParameterAverage | None = None
    ) -> bool:
        """Record a bad step (rolling back under ``"restore"``); True when it is one too many in a row."""
        self.in_a_row += 1
        if self.policy == "restore" and self._snapshot is not None:
            flow.load_state_dict(self._snapshot["model"])
            # The optimizer keeps tensors it need not move: give it a copy, or later steps change the snapshot.
            optimizer.load_state_dict(copy.deepcopy(self._snapshot["optimizer"]))
            if average is not None:  # a divergent update may already have been folded into the average
                average.load_state_dict(self._snapshot["average"])
        return self.policy == "raise" or self.in_a_row >= self.max_bad_steps

    def remember(
        self, flow: nn.Module, optimizer: torch.optim.Optimizer, average: ParameterAverage | None = None
    ) -> None:
        """Keep the current state as the one ``"restore"`` returns to (only under that policy: it costs a copy)."""
        if self.policy == "restore":
            self._snapshot = {
                "model": copy.deepcopy(flow.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict()),
                "average": average.state_dict() if average is not None else None,
            }
