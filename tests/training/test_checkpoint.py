"""Checkpoints: bit-exact round trips, atomic writes, and a CheckpointError for every bad file."""
from __future__ import annotations

import io
import os
import re
import stat
import sys

import pytest
import torch

import ctflows.core.atomic_file as atomic_file
import ctflows.training.checkpoint as checkpoint
from ctflows.core import Chain, Flow, StandardNormal
from ctflows.errors import CheckpointError
from ctflows.training import load, save
from ctflows.training.checkpoint import read_metadata
from training.fakes import ElementwiseAffine, Penalized, affine_flow

RECORD = {"format": "ctflows-checkpoint", "version": 1}


def trained_flow(dtype=torch.float32) -> Flow:
    torch.manual_seed(0)
    flow = Flow(Chain(ElementwiseAffine(2), Penalized(2, 3)), StandardNormal(2)).to(dtype)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(torch.randn_like(p))
    return flow


@pytest.mark.filterwarnings("error")  # e.g. torch.frombuffer on a read-only buffer warns on every save
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    flow = trained_flow(dtype)
    x, c = torch.randn(64, 2, dtype=dtype), torch.randn(64, 3, dtype=dtype)
    path = save(flow, tmp_path / "model.pt", metadata={"epoch": 3, "note": "hi"})
    loaded = load(path)
    assert type(loaded) is Flow and loaded is not flow
    assert torch.equal(loaded.log_prob(x, c), flow.log_prob(x, c))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(loaded.sample(5, c[:1], generator=g1), flow.sample(5, c[:1], generator=g2))
    assert read_metadata(path) == {"epoch": 3, "note": "hi"}
    # The weights are readable without unpickling any code.
    record = torch.load(path, weights_only=True)
    assert record["format"] == "ctflows-checkpoint" and record["version"] == 1
    assert record["ctflows_version"] == checkpoint._ctflows_version() and record["torch_version"] == str(torch.__version__)
    assert all(torch.equal(record["state_dict"][k], v) for k, v in flow.state_dict().items())


def test_save_overwrites_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "m.pt"
    save(affine_flow(), path)
    save(trained_flow(), path)
    assert os.listdir(tmp_path) == ["m.pt"]
    assert isinstance(load(path).transform, Chain)


def raiser(error):
    """A stand-in for a system call that fails with ``error``."""
    def call(*args, **kwargs):
        raise error
    return call


def fail_partway(error):
    """A disk write that gets half a checkpoint out, then fails with ``error``."""
    def write(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise error
    return write


def intercept_disk_writes(monkeypatch, write):
    """torch.save to a file calls ``write(obj, file)`` instead; the in-memory model serialisation is left working."""
    real = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: real(obj, f, *a, **k) if isinstance(f, io.BytesIO) else write(obj, f))


@pytest.mark.parametrize("where", ["torch.save", "os.replace", "fsync", "ctrl-c"])
def test_failed_save_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, where):
    """A Ctrl-C mid-write goes up as the KeyboardInterrupt it is; any other failure as a CheckpointError."""
    path = tmp_path / "m.pt"
    save(affine_flow(), path)
    before = path.read_bytes()
    if where == "torch.save":
        intercept_disk_writes(monkeypatch, fail_partway(OSError("disk full")))
    elif where == "ctrl-c":
        intercept_disk_writes(monkeypatch, fail_partway(KeyboardInterrupt()))
    elif where == "os.replace":
        monkeypatch.setattr(checkpoint.os, "replace", raiser(OSError("rename failed")))
    else:
        monkeypatch.setattr(checkpoint.os, "fsync", raiser(OSError("io error")))
    expected = pytest.raises(KeyboardInterrupt) if where == "ctrl-c" else pytest.raises(CheckpointError, match="nothing was changed")
    with expected:
        save(trained_flow(), path)
    assert os.listdir(tmp_path) == ["m.pt"]
    assert path.read_bytes() == before


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    intercept_disk_writes(monkeypatch, fail_partway(OSError("disk full")))
    with pytest.raises(CheckpointError):
        save(affine_flow(), tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


def test_unpicklable_model_is_a_checkpoint_error(tmp_path):
    flow = affine_flow()
    flow.hook = lambda: None  # lambdas cannot be pickled
    with pytest.raises(CheckpointError, match="cannot serialise"):
        save(flow, tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


def serialised(obj) -> torch.Tensor:
    """``obj`` as save stores its model: the bytes of a torch.save, as a uint8 tensor."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def test_bad_files_raise_checkpoint_error(tmp_path):
    good = tmp_path / "good.pt"
    save(trained_flow(), good)
    data = good.read_bytes()
    cases = {
        "missing.pt": None,
        "text.pt": b"hello, I am not a checkpoint\n",
        "pk_text.pt": b"PK, but not the header of a zip archive\n",  # found by its first 4 bytes, not by torch.load
        "truncated.pt": data[: len(data) // 2],
        "empty.pt": b"",
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    torch.save({"weight": torch.ones(2)}, tmp_path / "state_dict.pt")
    torch.save({**RECORD, "version": 99, "model": torch.zeros(0, dtype=torch.uint8)}, tmp_path / "future.pt")
    torch.save(affine_flow(), tmp_path / "bare_module.pt")  # a pickle, but not ours: must not be unpickled
    torch.save(torch.ones(2), tmp_path / "tensor.pt")
    torch.save(RECORD, tmp_path / "no_model.pt")
    torch.save({**RECORD, "model": torch.zeros(8)}, tmp_path / "float_model.pt")
    torch.save({**RECORD, "model": serialised({"model": {"weight": 1}, "metadata": {}})}, tmp_path / "not_a_module.pt")
    # Each of these holds a loadable model: only the one thing named is wrong, so only its check can refuse it.
    model = serialised({"model": affine_flow(), "metadata": {}})
    torch.save({**RECORD, "format": "ctflows-training-state", "model": model}, tmp_path / "other_format.pt")
    torch.save({**RECORD, "model": model.reshape(1, -1)}, tmp_path / "2d_model.pt")
    torch.save({**RECORD, "model": model}, tmp_path / "by_hand.pt")
    assert isinstance(load(tmp_path / "by_hand.pt"), Flow)  # the model bytes of the two above are good
    expected = {
        "missing.pt": "no such file",
        "text.pt": "not a torch file",
        "pk_text.pt": r"not a torch file \(a checkpoint is a zip archive starting with 'PK'; got b'PK, '\)",
        "truncated.pt": "truncated or corrupted",
        "empty.pt": "is empty",
        "state_dict.pt": "not a ctflows checkpoint",
        "future.pt": "version 99",
        "bare_module.pt": "pickles ctflows.core.flow.Flow",
        "tensor.pt": r"not a ctflows checkpoint \(a Tensor",
        "no_model.pt": "has the ctflows marker but no model",
        "float_model.pt": "has the ctflows marker but no model",
        "not_a_module.pt": "holds a dict, not a torch module",
        "other_format.pt": r"not a ctflows checkpoint \(a dict without the marker",
        "2d_model.pt": "has the ctflows marker but no model",
    }
    for name, message in expected.items():
        with pytest.raises(CheckpointError, match=message) as info:
            load(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
        if name == "truncated.pt":  # the cause is given, not only its kind
            assert str(info.value.__cause__).strip().splitlines()[0] in str(info.value)
    with pytest.raises(CheckpointError, match="a directory"):
        load(tmp_path)


def test_saved_file_has_ordinary_permissions_and_missing_directory_errors(tmp_path):
    path = save(affine_flow(), tmp_path / "m.pt")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(CheckpointError, match=r"the directory .*no does not exist; create it first"):
        save(affine_flow(), tmp_path / "no" / "m.pt")


def test_save_refuses_what_is_not_a_model_before_writing_anything(tmp_path):
    for model, metadata in (({"weights": 1}, None), (5, None), (affine_flow(), 5)):
        with pytest.raises(CheckpointError, match="save: (expected a model|metadata must be a dict)"):
            save(model, tmp_path / "m.pt", metadata=metadata)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("umask", [0o002, 0o077])
def test_saved_file_mode_follows_the_umask_and_leaves_it_as_it_was(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = save(affine_flow(), tmp_path / "m.pt")
        after = os.umask(umask)  # reading the umask means setting it
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert after == umask


def test_metadata_defaults_to_an_empty_dict(tmp_path):
    """Callers use ``read_metadata(path).get(...)``: a save without metadata reads back as {}, not None."""
    assert read_metadata(save(affine_flow(), tmp_path / "m.pt")) == {}


def test_a_model_whose_class_is_gone_is_a_checkpoint_error(tmp_path, monkeypatch):
    """A class renamed or removed since the save: the error names the file, the ctflows that wrote it, and what to fix."""
    path = save(affine_flow(), tmp_path / "m.pt")
    monkeypatch.delattr(sys.modules[ElementwiseAffine.__module__], "ElementwiseAffine")
    written_by = re.escape(f"{path} (written by ctflows {checkpoint._ctflows_version()})")
    with pytest.raises(CheckpointError, match=f"cannot rebuild the model in {written_by}; its classes must be importable"):
        load(path)


def test_an_unwritable_directory_is_a_checkpoint_error(tmp_path, monkeypatch):
    """Simulated: the tests may run as root, whom directory permissions do not stop."""
    monkeypatch.setattr(checkpoint.os, "open", raiser(PermissionError(13, "Permission denied")))
    with pytest.raises(CheckpointError, match="save: cannot create a file in .*Permission denied"):
        save(affine_flow(), tmp_path / "m.pt")


def test_the_temporary_file_is_hidden_beside_the_target(tmp_path, monkeypatch):
    """In the target's directory (one file system, so the rename is atomic), named as remove_interrupted_writes
    expects (``.model.pt.*.tmp``), so that what a killed writer leaves is found and cleared."""
    real, seen = torch.save, []

    def write(obj, f):
        seen.append(sorted(path.name for path in tmp_path.iterdir()))
        real(obj, f)

    intercept_disk_writes(monkeypatch, write)
    save(affine_flow(), tmp_path / "model.pt")
    assert len(seen) == 1 and len(seen[0]) == 1 and re.fullmatch(r"\.model\.pt\..+\.tmp", seen[0][0])
    assert os.listdir(tmp_path) == ["model.pt"]


def test_the_bytes_are_synced_before_the_rename_and_the_rename_after(tmp_path, monkeypatch):
    """What a power cut may keep: the whole file is on disk before it takes the name, then the directory entry."""
    path, real, synced = tmp_path / "m.pt", os.fsync, []

    def spy(fd):
        status = os.fstat(fd)
        synced.append((stat.S_ISDIR(status.st_mode), path.exists(), status.st_size))
        real(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", spy)
    save(affine_flow(), path)
    assert [(is_dir, renamed) for is_dir, renamed, _ in synced] == [(False, False), (True, True)]
    assert synced[0][2] == path.stat().st_size


def test_a_temporary_name_that_exists_is_never_reused(tmp_path, monkeypatch):
    """O_EXCL: a clash with another writer's temporary file draws a new name; that file is left as it was."""
    names = iter(["clash", "clash", "fresh"])
    monkeypatch.setattr(atomic_file.secrets, "token_hex", lambda n: next(names))
    other = tmp_path / ".m.pt.clash.tmp"
    other.write_bytes(b"another writer's bytes")
    save(affine_flow(), tmp_path / "m.pt")
    assert other.read_bytes() == b"another writer's bytes"
    assert sorted(os.listdir(tmp_path)) == [".m.pt.clash.tmp", "m.pt"]
    monkeypatch.setattr(atomic_file.secrets, "token_hex", lambda n: "clash")
    with pytest.raises(CheckpointError, match="cannot find a free temporary name"):
        save(affine_flow(), tmp_path / "m.pt")
