"""Saving and loading whole models: ``save(flow, path)`` then ``load(path)`` needs no constructor arguments.

File layout (one ``torch.save`` archive)::

    {"format": "ctflows-checkpoint", "version": 1, "ctflows_version": str, "torch_version": str,
     "state_dict": {name: Tensor}, "model": uint8 Tensor}

The outer dict holds only plain types and tensors, so it is read with ``torch.load(weights_only=True)``:
a file that is not a ctflows checkpoint is rejected without running any of its pickled code, and the
``state_dict`` can be read that way by anyone who does not trust the file. ``"model"`` is a nested
``torch.save`` of ``{"model": flow, "metadata": ...}``, unpickled (``weights_only=False``) only after the
marker checks out.

Security: a checkpoint is a pickle. Loading one runs code chosen by whoever wrote it, and the marker
cannot prevent that; load only checkpoints from sources you trust.
"""
from __future__ import annotations

import io
import os
import pickle
import re
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ctflows.core.atomic_file import TemporaryFileError, write_atomically
from ctflows.core.paths import as_path
from ctflows.errors import CheckpointError, ConfigurationError
from ctflows.training.arguments import check_device

FORMAT = "ctflows-checkpoint"
VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes zip archives (torch >= 1.6)


def save(flow: nn.Module, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``flow`` (the module itself, parameters and buffers included) and ``metadata`` to ``path``.

    The write is atomic: the file goes to a temporary file in the same directory, is flushed and
    fsynced, then renamed over ``path``; on any failure the temporary file is removed and an existing
    file at ``path`` is left as it was. Returns the path written.
    """
    path = _as_path("save", path)
    if not isinstance(flow, nn.Module):
        raise CheckpointError(f"save: expected a model (an nn.Module such as a Flow), got {type(flow).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise CheckpointError(f"save: metadata must be a dict, got {type(metadata).__name__}")
    _check_writable_path(path)
    try:
        inner = io.BytesIO()
        torch.save({"model": flow, "metadata": metadata if metadata is not None else {}}, inner)
        record = {
            "format": FORMAT, "version": VERSION, "ctflows_version": _ctflows_version(),
            "torch_version": str(torch.__version__), "state_dict": flow.state_dict(),
            # uint8 tensor, not bytes: stored as raw storage and allowed by weights_only loading.
            "model": torch.frombuffer(bytearray(inner.getvalue()), dtype=torch.uint8),
        }
    except Exception as error:
        raise CheckpointError(f"save: cannot serialise the model for {path}: {error}") from error
    atomic_write(path, record)
    return path


def load(path: str | os.PathLike, map_location: Any = None) -> nn.Module:
    """Read a model written by :func:`save`; ``map_location`` as in ``torch.load`` (e.g. ``"cpu"``).

    Raises :class:`CheckpointError` naming the path when the file is missing, is not a torch file, is
    truncated, lacks the ctflows marker, has an unknown version, or its model cannot be rebuilt.
    Only load trusted files (see the module docstring).
    """
    _check_map_location(map_location)
    model = _unpickle(_as_path("load", path), map_location)["model"]
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"load: {path} holds a {type(model).__name__}, not a torch module")
    return model


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata`` given to :func:`save` (this unpickles the model too: trusted files only)."""
    return _unpickle(_as_path("read_metadata", path), "cpu")["metadata"]


def _as_path(owner: str, path: Any) -> Path:
    return as_path(owner, "path", path, "model.pt", CheckpointError)


def _check_writable_path(path: Path) -> None:
    """``path`` names a file in an existing directory: found before serialising, not as an OSError from the rename."""
    if path.is_dir():
        raise CheckpointError(f"save: {path} is a directory; give a file path inside it, e.g. {path / 'model.pt'}")
    if not path.parent.exists():
        raise CheckpointError(f"save: the directory {path.parent} does not exist; create it first (e.g. Path(...).mkdir(parents=True))")
    if not path.parent.is_dir():
        raise CheckpointError(f"save: {path.parent} is a file, not a directory, so {path} cannot be written; give a path in a directory")


def _check_map_location(map_location: Any) -> None:
    """A device name is checked here: torch's own error comes from deep inside unpickling and reads like a broken file.

    None, a dict and a function go to ``torch.load`` as they are.
    """
    if map_location is None or callable(map_location) or isinstance(map_location, dict):
        return
    if not isinstance(map_location, (str, torch.device)):
        raise ConfigurationError(
            f"load: map_location must be a device such as 'cpu' or 'cuda:0', a torch.device, a dict or a function "
            f"as in torch.load, or None; got {type(map_location).__name__} {map_location!r}"
        )
    if str(map_location) != "meta":  # a model without values, to inspect its structure: nothing to check
        check_device("load: map_location", map_location)


def _unpickle(path: Path, map_location: Any) -> dict[str, Any]:
    record = _read_record(path)
    try:
        payload = io.BytesIO(record["model"].numpy().tobytes())
        inner = torch.load(payload, map_location=map_location, weights_only=False)
        return {"model": inner["model"], "metadata": inner["metadata"]}
    except Exception as error:
        raise CheckpointError(
            f"load: cannot rebuild the model in {path} (written by ctflows {record.get('ctflows_version')}); "
            f"its classes must be importable under the same names: {error}"
        ) from error


def _read_record(path: Path) -> dict[str, Any]:
    record = read_torch_file(path, "load")
    _check_record(path, record)
    return record


def read_torch_file(path: Path, owner: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with a :class:`CheckpointError` naming what is wrong."""
    if not path.is_file():
        raise CheckpointError(f"{owner}: no checkpoint at {path} ({'a directory' if path.is_dir() else 'no such file'})")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{owner}: {path} is empty (an interrupted copy?)")
    with open(path, "rb") as file:
        magic = file.read(4)
    if magic != _ZIP_MAGIC:
        raise CheckpointError(f"{owner}: {path} is not a torch file (a checkpoint is a zip archive starting with 'PK'; got {magic!r})")
    try:
        # The CPU, whatever map_location says: the model bytes are read there; map_location applies to the model.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found:
            raise CheckpointError(
                f"{owner}: {path} is not a ctflows checkpoint: it pickles {found.group(1)} at its top level "
                "(a torch.save of some other object?); it was not unpickled"
            ) from error
        raise CheckpointError(f"{owner}: {path} is not a torch file, or is corrupted: {_describe(error)}") from error
    except Exception as error:
        raise CheckpointError(f"{owner}: {path} is not a readable torch file (truncated or corrupted?): {_describe(error)}") from error


def _check_record(path: Path, record: Any) -> None:
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        kind = "a dict without the marker" if isinstance(record, dict) else f"a {type(record).__name__}"
        raise CheckpointError(
            f"load: {path} is a torch file but not a ctflows checkpoint ({kind}; expected format {FORMAT!r}). "
            "A plain state_dict loads with torch.load and model.load_state_dict."
        )
    if record.get("version") != VERSION:
        raise CheckpointError(f"load: {path} has checkpoint version {record.get('version')!r}; this ctflows reads version {VERSION}")
    model = record.get("model")
    if not (isinstance(model, torch.Tensor) and model.dtype == torch.uint8 and model.dim() == 1):
        raise CheckpointError(f"load: {path} has the ctflows marker but no model")


def _describe(error: Exception) -> str:
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def atomic_write(path: Path, record: dict[str, Any]) -> None:
    """``torch.save(record)`` to ``path`` via a fsynced temporary file and a rename: all of it or nothing
    (:func:`~ctflows.core.atomic_file.write_atomically`)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            torch.save(record, file)
            file.flush()
            os.fsync(file.fileno())

    try:
        write_atomically(path, write, durable=True)
    except TemporaryFileError as error:
        raise CheckpointError(f"save: cannot create a file in {path.parent} for {path}: {error}") from error
    except Exception as error:
        raise CheckpointError(f"save: writing {path} failed, nothing was changed there: {error}") from error


def _ctflows_version() -> str:
    try:
        return importlib_metadata.version("ctflows")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"
