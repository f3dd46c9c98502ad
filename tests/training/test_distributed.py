"""Data-parallel training: two gloo processes under torchrun end where one process with the same global
batch ends (float64, so that summation order is the only difference)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.fakes import CorrelatedGaussian
from training.train_worker import build

WORKER = Path(__file__).with_name("train_worker.py")
ENV = {"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[2])}


def train(out: Path, model: str, processes: int) -> dict[str, torch.Tensor]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = (launcher if processes > 1 else [sys.executable]) + [str(WORKER), "--model", model, "--double", "--steps", "8", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out / "params.pt", weights_only=True)


def train_two(out: Path, *flags: str, timeout: float = 240) -> None:
    """The worker under torchrun in two gloo processes (float64), writing into ``out``."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(launcher + [str(WORKER), "--double", *flags, "--out", str(out)], capture_output=True,
                          text=True, timeout=timeout, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]


def assert_ranks_identical(out: Path) -> None:
    ranks = [torch.load(out / f"params_rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name


def histories(out: Path) -> list[dict]:
    return [json.loads((out / f"history_rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.parametrize("model", ["realnvp", "cnf"])  # the CNF uses the adjoint method
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, model):
    one = train(tmp_path / "one", model, 1)
    two = train(tmp_path / "two", model, 2)
    initial = train_free_initial(model)
    for name in one:
        assert torch.allclose(one[name], two[name], rtol=0, atol=1e-9), name
    # and training moved the parameters, so the agreement is not that of two untouched models
    assert any(not torch.allclose(one[k], initial[k]) for k in one)


def test_every_rank_ends_with_the_same_average_when_ranks_start_apart(tmp_path):
    # DDP gives every rank rank 0's parameters when it wraps the model; the average must not keep a rank's own start.
    train_two(tmp_path, "--steps", "6", "--ema-decay", "0.9", "--rank-offset")
    assert_ranks_identical(tmp_path)


def test_ranks_agree_on_a_seconds_budget_when_one_runs_slower(tmp_path):
    # Rank 1's optimizer steps take 50 ms longer, after the step's last collective: counted on their own clocks,
    # the ranks would take different learning rates, and at the budget one could stop while the other waits
    # for it in the next all-reduce (until the 10-minute timeout).
    train_two(tmp_path, "--seconds", "1.0", "--slow-rank-step", "0.05", timeout=120)
    zero, one = histories(tmp_path)
    assert zero["steps"] > 3 and zero["lr"] == one["lr"]
    assert zero["trained_seconds"] == one["trained_seconds"] >= 1.0
    assert_ranks_identical(tmp_path)


def train_free_initial(model: str) -> dict[str, torch.Tensor]:
    return {k: v.double() if v.is_floating_point() else v for k, v in build(model).state_dict().items()}


def test_restore_sends_every_rank_back_to_the_same_checkpoint(tmp_path):
    # Only rank 0 writes checkpoints, but every rank must remember them: a rank that rolled back to the start
    # instead would silently train another model from then on (DDP does not re-broadcast parameters).
    train_two(tmp_path, "--steps", "8", "--checkpoint", str(tmp_path / "state"), "--huge-batch", "7",
              "--on-nonfinite", "restore")
    assert histories(tmp_path)[0]["skipped"] == [7]  # after the checkpoint at step 5; step 8 goes on from it
    assert_ranks_identical(tmp_path)


def test_data_initialised_layers_agree_across_ranks_with_a_custom_objective(tmp_path):
    # RealNVP's ActNorm layers initialise from the first batch: that must happen before the DDP wrap, on the
    # same batch everywhere, whatever the objective, or each rank starts from its own shard's statistics.
    train_two(tmp_path, "--steps", "2", "--custom-objective")
    assert_ranks_identical(tmp_path)


@pytest.mark.parametrize("where", [[], ["--callback-on-rank0-only"]])
def test_a_callback_that_stops_one_rank_stops_them_all(tmp_path, where):
    # Say, a callback that stops on an evaluation, which rank 0 alone makes, or one given on rank 0 only: rank 1
    # would otherwise go on into the next step's all-reduce and wait there for rank 0 until the timeout.
    train_two(tmp_path, "--steps", "8", "--rank0-stops-at", "3", *where, timeout=120)
    assert [len(history["lr"]) for history in histories(tmp_path)] == [3, 3]


def test_an_error_on_one_rank_ends_every_rank_at_once(tmp_path):
    # Rank 0's callback raises: leaving through a barrier the others never reach (they wait in the next step's
    # all-reduce) hung both until the process group's timeout; now the others fail at once as well.
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(launcher + [str(WORKER), "--double", "--steps", "8", "--rank0-raises-at", "3", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode != 0 and "the callback failed at step 3 on rank 0" in done.stderr


def test_batch_must_split_evenly():
    from ctflows.errors import ConfigurationError
    from ctflows.training.distributed import DataParallel

    group = DataParallel(torch.device("cpu"), enabled=False)
    group.world = 3  # the check only needs the count
    with pytest.raises(ConfigurationError, match="multiple of 3"):
        group.check_batch_size(64)
    # A batch can still come out shorter (tensor data with fewer rows, a loader's last batch): its rows were
    # dropped silently, and the shares would not be equal.
    from ctflows.errors import DataError

    share, context = group.shard(torch.zeros(63, 2), None)
    assert share.shape == (21, 2) and context is None
    with pytest.raises(DataError, match="batch of 62 rows does not split evenly over 3 processes"):
        group.shard(torch.zeros(62, 2), torch.zeros(62, 1))
    # fit finds out before training where the data say what their batches will be, not at the first epoch's end
    from torch.utils.data import DataLoader, TensorDataset

    from ctflows.training.data_source import BatchStream

    def sizes(data, batch_size=30):
        stream = BatchStream(data, batch_size, generator=torch.Generator(), device=torch.device("cpu"), dtype=torch.float32)
        return stream.batch_sizes()

    rows = TensorDataset(torch.zeros(64, 2))
    assert sizes(DataLoader(rows, batch_size=30)) == {30, 4} and sizes(DataLoader(rows, batch_size=30, drop_last=True)) == {30}
    assert sizes(torch.zeros(20, 2)) == {20} and sizes(iter([torch.zeros(5, 2)])) is None
    assert sizes(CorrelatedGaussian()) == {30}  # a density gives batch_size fresh rows every time
    # What is batched is the sampler's rows, and only default collation keeps a batch's rows as they are.
    from torch.utils.data import SubsetRandomSampler

    assert sizes(DataLoader(rows, batch_size=30, sampler=SubsetRandomSampler(range(60)))) == {30}
    assert sizes(DataLoader(TensorDataset(torch.zeros(8, 2)), batch_size=30)) == {8}
    assert sizes(DataLoader(rows, batch_size=30, collate_fn=lambda batch: batch)) is None
    group.check_batches({30}), group.check_batches(None)
    for data in (DataLoader(rows, batch_size=30), torch.zeros(20, 2)):
        with pytest.raises(DataError, match="do not split evenly over 3 processes"):
            group.check_batches(sizes(data))


def test_cuda_under_torchrun_means_each_process_its_own_gpu(monkeypatch):
    from ctflows.errors import ConfigurationError
    from ctflows.training.distributed import DataParallel, process_device

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_device("cuda") == torch.device("cuda", 1)  # "cuda" alone would be GPU 0 on every rank
    assert process_device("cuda:0") == torch.device("cuda", 0) and process_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    with pytest.raises(ConfigurationError, match=r"LOCAL_RANK=1 must train on cuda:1, but the model is on cuda:0"):
        DataParallel(torch.device("cuda", 0))  # refused before any process group or GPU is touched
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert process_device("cuda") == torch.device("cuda")


def test_fit_drops_its_ddp_wrapper_before_returning(tmp_path):
    """DDP sits in a reference cycle: left to the garbage collector it can outlive the process group and be
    torn down at interpreter exit, where gloo's leftovers abort the process ("terminate called without an
    active exception", after training had succeeded). fit must free it itself."""
    import gc

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import ctflows
    from ctflows.training import fit

    gc.collect()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    gc.disable()  # only fit's own clean-up may free the wrapper
    try:
        flow = ctflows.models.realnvp(2, blocks=2, hidden=(8,), seed=0)
        fit(flow, torch.randn(64, 2), steps=2, batch_size=32, progress=False, seed=0)
        wrappers = [o for o in gc.get_objects() if type(o) is DistributedDataParallel]
        assert not wrappers, "fit returned with its DistributedDataParallel wrapper still alive"
    finally:
        gc.enable()
        dist.destroy_process_group()
