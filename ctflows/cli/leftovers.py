"""Files that an earlier run left in a reused ``--out`` directory and this run did not rewrite.

A second ``ctflows compare`` with other models, or a ``ctflows train`` on images after one on 2-D data, writes
a different set of files; what the first run wrote stays beside the new outputs and could be read as part of
them. They are named, not deleted: they may be the only copy of a trained model.
"""
from __future__ import annotations

from pathlib import Path


def file_stamps(out: Path) -> dict[Path, int]:
    """Every file under ``out`` (recursively) with its modification time in ns; empty if ``out`` does not exist."""
    if not out.is_dir():
        return {}
    return {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}


def left_over(out: Path, before: dict[Path, int], still_to_write: tuple[str, ...] = ()) -> list[str]:
    """The files of ``before`` (from :func:`file_stamps` at the start of the run) still there and not rewritten,
    as paths relative to ``out``, sorted; ``still_to_write`` names (relative paths) the run has yet to write."""
    now = file_stamps(out)
    names = (str(path.relative_to(out)) for path, stamp in before.items() if now.get(path) == stamp)
    return sorted(name for name in names if name not in still_to_write)


def left_over_note(out: Path, before: dict[Path, int], still_to_write: tuple[str, ...] = ()) -> str | None:
    """One sentence naming the left-over files, or None when there are none."""
    names = left_over(out, before, still_to_write)
    if not names:
        return None
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"{out} also holds files from an earlier run, not from this one: {shown}"
