"""Resuming a run: everything ``fit`` needs to continue bit for bit, written atomically to one file.

    {"format": "ctflows-training-state", "version": 1, "step", "trained_seconds", "last_step_seconds", "eval_seed",
     "config", "model", "optimizer", "history", "stream", "rng", "first_steps", ["average"]}

The file holds only tensors and plain containers, so it is read with ``torch.load(weights_only=True)``.
RNG states: torch's CPU generator, every CUDA device's, Python's ``random`` and NumPy's global generator.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctflows.errors import CheckpointError
from ctflows.training.checkpoint import atomic_write, read_torch_file

FORMAT = "ctflows-training-state"
VERSION = 1
STATE_FILE = "training_state.pt"
MODEL_FILE = "model.pt"


def capture_rng() -> dict[str, Any]:
    """The global random states, as tensors and plain values."""
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "python": _tuples_to_lists(random.getstate()),
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(_lists_to_tuples(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))


def write_state(directory: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``record`` (plus the format marker) to ``directory/training_state.pt`` atomically."""
    path = Path(directory) / STATE_FILE
    atomic_write(path, {"format": FORMAT, "version": VERSION, **record})
    return path


def read_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The record in ``directory/training_state.pt``, or ``None`` if there is none yet.

    Raises :class:`CheckpointError` if the file exists but is not a readable training state.
    """
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    record = read_torch_file(path, "resume")
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"resume: {path} is not a ctflows training state; remove it or pick another checkpoint_dir")
    if record.get("version") != VERSION:
        raise CheckpointError(f"resume: {path} has version {record.get('version')!r}; this ctflows reads version {VERSION}")
    return record


def remove_interrupted_writes(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files that a killed writer left in ``directory``; returns what was removed.

    Only the temporaries of this module's two files are touched (``.training_state.pt.*.tmp``,
    ``.model.pt.*.tmp``): the finished files are renamed into place whole, so these are never needed.
    """
    removed = []
    for name in (STATE_FILE, MODEL_FILE):
        for path in Path(directory).glob(f".{name}.*.tmp"):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _tuples_to_lists(value: Any) -> Any:
    return [_tuples_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _lists_to_tuples(value: Any) -> Any:
    return tuple(_lists_to_tuples(v) for v in value) if isinstance(value, (tuple, list)) else value
