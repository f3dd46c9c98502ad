"""The record of a training run: what :func:`ctflows.training.fit` returns."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """Per-step and per-evaluation numbers of one ``fit`` call.

    Attributes:
        losses: total loss per step, ``mean NLL + Σ w·term``.
        nll: mean negative log-likelihood of the training batch per step (nats).
        lr: learning rate used at each step.
        grad_norm: gradient norm per step, before clipping.
        regularization: unweighted value of each reported regularization term per step
            (``None`` at steps where no layer reported it).
        counts: integer counts from the layers per step, e.g. ``"nfe_forward"``, ``"nfe_backward"``
            (``None`` where not reported).
        evals: one dict per evaluation: ``step``, ``time`` (:attr:`trained_seconds` then) and :func:`evaluate`'s keys.
        skipped: steps (1-based) whose loss or gradient was not finite, so no update was applied.
        wall_time: seconds the run took, evaluations included (summed over resumed segments).
        trained_seconds: training seconds so far: the steps' own time, what a ``seconds`` budget counts
            (evaluations, callbacks, checkpoint writes and set-up excluded; summed over resumed segments;
            under ``torchrun`` the slowest rank's, the same on every rank). Up to date when a callback sees it.
    """

    losses: list[float] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    regularization: dict[str, list[float | None]] = field(default_factory=dict)
    counts: dict[str, list[int | None]] = field(default_factory=dict)
    evals: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    wall_time: float = 0.0
    trained_seconds: float = 0.0  # after wall_time, so that positional construction keeps its meaning

    @property
    def steps(self) -> int:
        """Number of completed steps."""
        return len(self.losses)

    def record_step(
        self, *, loss: float, nll: float, lr: float, grad_norm: float, terms: dict[str, float], counts: dict[str, int]
    ) -> None:
        """Append one step's numbers, keeping every per-name series as long as :attr:`losses`."""
        before = self.steps
        self.losses.append(loss)
        self.nll.append(nll)
        self.lr.append(lr)
        self.grad_norm.append(grad_norm)
        _append_aligned(self.regularization, terms, before)
        _append_aligned(self.counts, counts, before)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable copy (lists, dicts, floats, ints, bools)."""
        out = dataclasses.asdict(self)
        out["steps"] = self.steps
        return out

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "History":
        """The inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


def _append_aligned(table: dict[str, list[Any]], values: dict[str, Any], before: int) -> None:
    # A name first reported at a later step, or missing at this one, is padded with None so that index k of
    # every series is step k + 1.
    for name in values.keys() - table.keys():
        table[name] = [None] * before
    for name, series in table.items():
        series.append(values.get(name))
