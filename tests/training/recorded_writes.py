"""Watching fit write its training state: each record it writes, in order, while still writing it."""
from __future__ import annotations

import importlib
from typing import Any

import pytest


def record_state_writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The list that every training-state record ``fit`` writes from now on is appended to (the files are written too)."""
    fit_module = importlib.import_module("ctflows.training.fit")  # the package's `fit` attribute is the function
    real, written = fit_module.write_state, []

    def recording(directory: Any, record: dict[str, Any]) -> Any:
        written.append(record)
        return real(directory, record)

    monkeypatch.setattr(fit_module, "write_state", recording)
    return written
