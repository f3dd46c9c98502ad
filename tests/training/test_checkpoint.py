"""Checkpoints: bit-exact round trips, atomic writes, and a CheckpointError for every bad file."""
from __future__ import annotations

import io
import os

import pytest
import torch

import ctflows.training.checkpoint as checkpoint
from ctflows.core import Chain, Flow, StandardNormal
from ctflows.errors import CheckpointError
from ctflows.training import load, save
from ctflows.training.checkpoint import read_metadata
from training.fakes import ElementwiseAffine, Penalized, affine_flow


def trained_flow(dtype=torch.float32) -> Flow:
    torch.manual_seed(0)
    flow = Flow(Chain(ElementwiseAffine(2), Penalized(2, 3)), StandardNormal(2)).to(dtype)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(torch.randn_like(p))
    return flow


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
    assert all(torch.equal(record["state_dict"][k], v) for k, v in flow.state_dict().items())


def test_save_overwrites_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "m.pt"
    save(affine_flow(), path)
    save(trained_flow(), path)
    assert os.listdir(tmp_path) == ["m.pt"]
    assert isinstance(load(path).transform, Chain)


def _fail_partway(obj, f, *args, **kwargs):
    f.write(b"PK\x03\x04 half a checkpoint")
    raise OSError("disk full")


@pytest.mark.parametrize("where", ["torch.save", "os.replace", "fsync"])
def test_failed_save_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, where):
    path = tmp_path / "m.pt"
    save(affine_flow(), path)
    before = path.read_bytes()
    if where == "torch.save":
        real = torch.save
        # Only the write to disk fails; the in-memory model serialisation is left working.
        monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: real(obj, f, *a, **k) if isinstance(f, io.BytesIO) else _fail_partway(obj, f))
    elif where == "os.replace":
        monkeypatch.setattr(checkpoint.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    else:
        monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("io error")))
    with pytest.raises(CheckpointError, match="nothing was changed"):
        save(trained_flow(), path)
    assert os.listdir(tmp_path) == ["m.pt"]
    assert path.read_bytes() == before


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _fail_partway)
    with pytest.raises(CheckpointError):
        save(affine_flow(), tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


def test_unpicklable_model_is_a_checkpoint_error(tmp_path):
    flow = affine_flow()
    flow.hook = lambda: None  # lambdas cannot be pickled
    with pytest.raises(CheckpointError, match="cannot serialise"):
        save(flow, tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


def test_bad_files_raise_checkpoint_error(tmp_path):
    good = tmp_path / "good.pt"
    save(trained_flow(), good)
    data = good.read_bytes()
    cases = {
        "missing.pt": None,
        "text.pt": b"hello, I am not a checkpoint\n",
        "truncated.pt": data[: len(data) // 2],
        "empty.pt": b"",
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    torch.save({"weight": torch.ones(2)}, tmp_path / "state_dict.pt")
    torch.save({"format": "ctflows-checkpoint", "version": 99, "model": torch.zeros(0, dtype=torch.uint8)}, tmp_path / "future.pt")
    torch.save(affine_flow(), tmp_path / "bare_module.pt")  # a pickle, but not ours: must not be unpickled
    expected = {
        "missing.pt": "no such file",
        "text.pt": "not a torch file",
        "truncated.pt": "truncated or corrupted",
        "empty.pt": "is empty",
        "state_dict.pt": "not a ctflows checkpoint",
        "future.pt": "version 99",
        "bare_module.pt": "pickles ctflows.core.flow.Flow",
    }
    for name, message in expected.items():
        with pytest.raises(CheckpointError, match=message) as info:
            load(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
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
