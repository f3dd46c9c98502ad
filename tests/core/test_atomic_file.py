"""Writing a file whole or not at all: the path holds the old file or the new one, and no temporary is left."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import ctflows.core.atomic_file as atomic_file
from ctflows.core.atomic_file import TemporaryFileError, create_temporary, write_atomically


def test_a_write_lands_whole_under_the_name_with_no_temporary_left(tmp_path: Path) -> None:
    seen = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"new")

    assert write_atomically(tmp_path / "f.gif", write, suffix=".gif") == tmp_path / "f.gif"
    assert (tmp_path / "f.gif").read_bytes() == b"new" and os.listdir(tmp_path) == ["f.gif"]
    # hidden, beside the target (one file system, so the rename is atomic), ending in the asked suffix
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".f.gif.") and seen[0].name.endswith(".tmp.gif")


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_write_that_fails_halfway_leaves_the_old_file_and_no_temporary(tmp_path: Path, error: BaseException) -> None:
    """The error goes up as it came (a Ctrl-C as the KeyboardInterrupt it is)."""
    (tmp_path / "f.pdf").write_bytes(b"old")

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise error

    with pytest.raises(type(error)):
        write_atomically(tmp_path / "f.pdf", write)
    assert (tmp_path / "f.pdf").read_bytes() == b"old" and os.listdir(tmp_path) == ["f.pdf"]


def test_a_temporary_that_cannot_be_made_is_told_apart_from_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name taken by another writer is never reused; with no free name, or no right to create one, the error is a
    TemporaryFileError (an OSError), and the write is never called."""
    monkeypatch.setattr(atomic_file.secrets, "token_hex", lambda n: "taken")
    (tmp_path / ".f.pt.taken.tmp").write_bytes(b"another writer's")
    with pytest.raises(TemporaryFileError, match="cannot find a free temporary name"):
        write_atomically(tmp_path / "f.pt", lambda tmp: pytest.fail("written"))
    assert (tmp_path / ".f.pt.taken.tmp").read_bytes() == b"another writer's"
    with pytest.raises(TemporaryFileError):
        create_temporary(tmp_path / "missing_folder" / "f.pt")


@pytest.mark.parametrize("failing", ["open", "fsync"])
def test_a_directory_that_cannot_be_synced_leaves_the_durable_write_done_and_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Syncing the directory is best effort: where it cannot be opened (Windows) or synced (file systems that answer
    EINVAL) the file written and renamed stays, no error goes up, and every descriptor opened is closed again."""
    real_open, real_fsync, real_close = os.open, os.fsync, os.close
    opened: list[int] = []
    closed: list[int] = []
    synced: list[int] = []

    def open_(path, flags, *args):
        if failing == "open" and Path(path) == tmp_path:
            raise PermissionError("directories cannot be opened here")
        fd = real_open(path, flags, *args)
        opened.append(fd)
        return fd

    def fsync(fd: int) -> None:
        synced.append(fd)
        if failing == "fsync":
            raise OSError(22, "Invalid argument")
        real_fsync(fd)

    def close(fd: int) -> None:
        closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(atomic_file.os, "open", open_)
    monkeypatch.setattr(atomic_file.os, "fsync", fsync)
    monkeypatch.setattr(atomic_file.os, "close", close)
    write_atomically(tmp_path / "f.pt", lambda tmp: tmp.write_bytes(b"new"), durable=True)
    monkeypatch.undo()
    assert (tmp_path / "f.pt").read_bytes() == b"new" and os.listdir(tmp_path) == ["f.pt"]
    assert sorted(opened) == sorted(closed) and len(opened) == (1 if failing == "open" else 2)
    assert len(synced) == (0 if failing == "open" else 1)


@pytest.mark.parametrize("suffix", ["", ".gif"])
@pytest.mark.parametrize("split", [False, True], ids=["cut-between-characters", "cut-inside-a-character"])
def test_a_target_whose_name_fills_the_limit_still_gets_a_temporary_beside_it(tmp_path: Path, suffix: str, split: bool) -> None:
    """The temporary adds about 23 bytes to the name: for a target of 250 bytes (multi-byte characters included) that
    was past the 255-byte limit of most file systems, and every write of it failed. Where the cut falls inside a
    two-byte character, the half character is dropped, not replaced by a (three-byte) replacement character."""
    if split:  # 2k + len(suffix) = 254 bytes, cut at 233 - len(suffix) bytes: an odd count, inside the é's
        target = tmp_path / ("é" * ((255 - len(suffix)) // 2) + suffix)
    else:
        target = tmp_path / ("é" * 60 + "x" * 126 + suffix)  # 120 + 126 + 4 bytes, cut inside the x's
    assert len(target.name.encode()) <= 255
    write_atomically(target, lambda tmp: tmp.write_bytes(b"new"), suffix=suffix)
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == [target.name]
