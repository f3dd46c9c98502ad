"""DataParallel piece by piece: the torchrun environment, group set-up and tear-down against a stand-in for
torch.distributed that records its calls, and the collectives in a real two-process gloo group."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

import ctflows.training.distributed as distributed
from ctflows.training.distributed import DataParallel, is_main_process, launched_by_torchrun

WORKER = Path(__file__).with_name("group_worker.py")


class FakeDist:
    """Stands in for torch.distributed's group functions; ``calls`` lists what DataParallel asked of it."""

    def __init__(self, monkeypatch, *, rank: int, world: int, initialized: bool = False) -> None:
        self.rank, self.world, self.initialized, self.calls = rank, world, initialized, []
        monkeypatch.setattr(dist, "is_available", lambda: True)
        monkeypatch.setattr(dist, "is_initialized", lambda: self.initialized)
        monkeypatch.setattr(dist, "init_process_group", self.init_process_group)
        monkeypatch.setattr(dist, "get_rank", lambda *args, **kwargs: self.rank)
        monkeypatch.setattr(dist, "get_world_size", lambda *args, **kwargs: self.world)
        monkeypatch.setattr(dist, "barrier", lambda *args, **kwargs: self.calls.append("barrier"))
        monkeypatch.setattr(dist, "destroy_process_group", self.destroy_process_group)
        monkeypatch.setattr(torch.cuda, "set_device", lambda device: self.calls.append(f"set_device {device}"))

    def init_process_group(self, backend, **kwargs) -> None:
        assert not self.initialized, "a second process group"
        self.initialized = True
        self.calls.append(f"init {backend}")

    def destroy_process_group(self, *args) -> None:
        assert self.initialized
        self.initialized = False
        self.calls.append("destroy")


@pytest.fixture
def plain_env(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_torchrun_environment(plain_env):
    monkeypatch = plain_env
    assert not launched_by_torchrun() and is_main_process()  # a plain `python script.py`
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert not launched_by_torchrun() and is_main_process()  # torchrun with one process
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launched_by_torchrun() and is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()
    # The first process of the second node: its local rank is 0, but it is not the one that writes.
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not is_main_process()


def test_cuda_group_is_nccl_on_this_process_gpu(plain_env):
    plain_env.setenv("WORLD_SIZE", "4")
    plain_env.setenv("RANK", "3")
    plain_env.setenv("LOCAL_RANK", "1")
    fake = FakeDist(plain_env, rank=3, world=4)
    group = DataParallel(torch.device("cuda", 1))
    # The GPU is chosen before the group is made: NCCL sets itself up on the current device.
    assert fake.calls == ["set_device 1", "init nccl"]
    assert (group.enabled, group.owns_group, group.rank, group.world, group.main) == (True, True, 3, 4, False)


def test_cpu_group_is_gloo_and_closing_it_waits_for_every_rank(plain_env):
    plain_env.setenv("WORLD_SIZE", "2")
    plain_env.setenv("RANK", "0")
    fake = FakeDist(plain_env, rank=0, world=2)
    group = DataParallel(torch.device("cpu"))
    assert fake.calls == ["init gloo"]
    assert (group.enabled, group.owns_group, group.rank, group.world, group.main) == (True, True, 0, 2, True)
    group.close()
    assert fake.calls == ["init gloo", "barrier", "destroy"] and not fake.initialized
    # On the way out of an error no barrier: the other ranks may never reach it.
    fake.calls.clear()
    group = DataParallel(torch.device("cpu"))
    group.close(barrier=False)
    assert fake.calls == ["init gloo", "destroy"] and not fake.initialized


def test_a_group_made_by_the_caller_is_joined_and_left_alone(plain_env):
    # No torchrun variables, but the caller has set up a group itself (say, with a FileStore): fit trains in it.
    fake = FakeDist(plain_env, rank=1, world=2, initialized=True)
    group = DataParallel(torch.device("cpu"))
    assert (group.enabled, group.owns_group, group.rank, group.world, group.main) == (True, False, 1, 2, False)
    group.close()
    group.close(barrier=False)
    assert fake.calls == [] and fake.initialized  # the group is the caller's to tear down
    # distributed=False: one process, whatever group exists.
    alone = DataParallel(torch.device("cpu"), enabled=False)
    assert (alone.enabled, alone.rank, alone.world, alone.main) == (False, 0, 1, True)
    alone.close()
    assert fake.calls == [] and fake.initialized


def test_wrap_puts_a_cuda_model_on_its_own_device_only(plain_env):
    FakeDist(plain_env, rank=0, world=2, initialized=True)
    made = []

    def fake_ddp(module, device_ids=None):
        made.append(device_ids)
        return ("ddp", module)

    plain_env.setattr(distributed, "DistributedDataParallel", fake_ddp)
    module = nn.Linear(2, 2)
    group = DataParallel(torch.device("cpu"))
    assert group.wrap(module) == ("ddp", module) and made == [None]  # CPU: DDP must not be given device ids
    plain_env.setattr(distributed, "placement", lambda module: (torch.device("cuda", 1), torch.float32))
    assert group.wrap(module) == ("ddp", module) and made == [None, [1]]
    assert DataParallel(torch.device("cpu"), enabled=False).wrap(module) is module


def test_each_rank_trains_on_its_contiguous_share_of_the_batch_and_context():
    group = DataParallel(torch.device("cpu"), enabled=False)
    x, context = torch.arange(12.0).reshape(6, 2), torch.arange(6.0)[:, None]
    assert group.shard(x, context) == (x, context)  # one process: the whole batch
    group.world = 3
    for rank in range(3):
        group.rank = rank
        share, share_context = group.shard(x, context)
        assert torch.equal(share, x[2 * rank: 2 * rank + 2]) and torch.equal(share_context, context[2 * rank: 2 * rank + 2])
    assert group.shard(x, None)[1] is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_collectives_in_a_real_two_process_group(tmp_path):
    env = {"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[2]), "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    ranks = [subprocess.Popen([sys.executable, str(WORKER), str(tmp_path)], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        for process in ranks:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err[-3000:]
    finally:
        for process in ranks:
            process.kill()
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    for r, report in enumerate((zero, one)):
        assert (report["rank"], report["world"], report["main"], report["enabled"], report["owns"]) == (r, 2, r == 0, True, True)
        assert report["mean"] == [1.5, 15.0]  # the ranks' [1, 10] and [2, 20] averaged
        assert report["values_kept"]  # the caller's tensor is not reduced in place
        assert report["maximum"] == 7.0
        assert report["broadcast"] == 2**62 + 1  # rank 0's, exactly
        assert not report["initialized_after_close"]  # the group DataParallel made is torn down
    assert zero["share"] == [[0.0, 1.0], [2.0, 3.0]] and zero["context"] == [[0.0], [1.0]]
    assert one["share"] == [[4.0, 5.0], [6.0, 7.0]] and one["context"] == [[2.0], [3.0]]


def test_a_torch_built_without_distributed_support_trains_in_one_process(plain_env):
    # Such a build's torch.distributed has is_available() False and no is_initialized at all.
    from ctflows.errors import ConfigurationError
    from ctflows.models import realnvp
    from ctflows.training import fit

    plain_env.setattr(dist, "is_available", lambda: False)
    plain_env.delattr(dist, "is_initialized")
    history = fit(realnvp(2, blocks=1, hidden=(4,), seed=0), torch.randn(32, 2), steps=2, batch_size=16, progress=False, seed=0)
    assert history.steps == 2  # an AttributeError before, on every default fit
    plain_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigurationError, match="distributed training was asked for but torch.distributed is not available"):
        DataParallel(torch.device("cpu"))
