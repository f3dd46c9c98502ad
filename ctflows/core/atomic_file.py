"""Writing a file whole or not at all: into a new hidden file beside it, renamed over it once complete.

A failure, a crash or a Ctrl-C while writing leaves the path as it was (the earlier file, or none), never a
half-written file: the rename is atomic because the temporary lies in the same directory. Checkpoints
(:mod:`ctflows.training.checkpoint`) and figures (:mod:`ctflows.viz.figure`) are written this way.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


class TemporaryFileError(OSError):
    """No temporary file could be made beside the target (a directory that cannot be written, no free name)."""


def create_temporary(path: Path, suffix: str = "") -> Path:
    """Create a new empty hidden file ``.NAME.RANDOM.tmp`` + ``suffix`` beside ``path`` and return its path.

    O_EXCL: a name that exists (another writer's, a 1-in-2^64 clash) is never reused. Any failure is a
    :class:`TemporaryFileError`, so that callers tell it from a failure of the write itself. Made with mode 0o666
    less the umask, as a plain ``open()`` would (mkstemp's files are owner-only, and reading the umask to widen them
    means setting it, which races with other threads).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    # NAME is cut to what leaves the temporary's name within the usual 255-byte limit, which the target may fill.
    name = path.name.encode()[: 255 - len(f"..{'0' * 16}.tmp{suffix}".encode())].decode(errors="ignore")
    for _ in range(100):
        tmp = path.parent / f".{name}.{secrets.token_hex(8)}.tmp{suffix}"
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as error:
            raise TemporaryFileError(str(error)) from error
    raise TemporaryFileError(f"cannot find a free temporary name in {path.parent} for {path}")


def write_atomically(path: Path, write: Callable[[Path], None], *, suffix: str = "", durable: bool = False) -> Path:
    """Run ``write(tmp)`` on a new temporary beside ``path`` (:func:`create_temporary`), then rename it onto ``path``.

    ``suffix`` ends the temporary's name, for writers that take the format from it (Pillow's GIFs). ``durable``
    syncs the directory after the rename, so that the new name survives a power cut (``write`` syncs its own
    bytes). On any failure the temporary is removed and the error goes up as it came.
    """
    tmp = create_temporary(path, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened this way on Windows.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
