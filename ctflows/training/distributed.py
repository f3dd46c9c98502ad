"""Data-parallel training with ``torch.distributed``: one process per device, launched by ``torchrun``.

Every rank draws the same global batch (same seed) and trains on its contiguous share of it; DDP averages
the gradients, so with equal shares the update equals a single process's on the whole batch:

    ∇ (1/B) Σ_b ℓ_b  =  (1/R) Σ_r ∇ (R/B) Σ_{b ∈ shard r} ℓ_b

Backend: NCCL on CUDA, gloo on CPU. Only rank 0 writes checkpoints, evaluates and shows progress.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ctflows.core.validation import placement
from ctflows.errors import ConfigurationError, DataError


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Whether this process is rank 0 of a ``torchrun`` launch, or not launched by torchrun at all."""
    return int(os.environ.get("RANK", "0")) == 0


def process_device(device: torch.device | str) -> torch.device:
    """``device``, except that under ``torchrun`` a bare ``"cuda"`` means this process's GPU, ``cuda:LOCAL_RANK``.

    ``"cuda"`` alone is the current device, GPU 0 on every rank until the group is set up.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class DataParallel:
    """The process group of one ``fit`` call, or a single-process stand-in with the same methods.

    Attributes:
        rank, world: this process's rank and the number of processes (0 and 1 when not distributed).
        main: whether this is rank 0, the one that writes.
    """

    def __init__(self, device: torch.device, *, enabled: bool | None = None) -> None:
        # A torch built without distributed support has no dist.is_initialized: ask is_available first.
        available = dist.is_available()
        if enabled is None:
            enabled = launched_by_torchrun() or (available and dist.is_initialized())
        if enabled and not available:
            raise ConfigurationError("fit: distributed training was asked for but torch.distributed is not available")
        self.owns_group = False
        if enabled and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                local = int(os.environ.get("LOCAL_RANK", "0"))
                if device.index != local:  # NCCL would stop on it with "Duplicate GPU detected", or ranks share a GPU
                    raise ConfigurationError(
                        f"fit: under torchrun the process with LOCAL_RANK={local} must train on cuda:{local}, but the "
                        f"model is on {device}; pass device='cuda' to fit, or move the model to cuda:{local}"
                    )
                torch.cuda.set_device(local)
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=10))
            self.owns_group = True
        self.enabled = bool(enabled)
        self.rank = dist.get_rank() if self.enabled else 0
        self.world = dist.get_world_size() if self.enabled else 1
        self.main = self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        """Raise :class:`ConfigurationError` unless the global batch splits evenly across the processes."""
        if batch_size % self.world:
            raise ConfigurationError(
                f"fit: batch_size={batch_size} does not split evenly over {self.world} processes; "
                f"use a multiple of {self.world} (it is the global batch)"
            )

    def check_batches(self, sizes: set[int] | None) -> None:
        """Raise :class:`DataError` before training if a batch the data will give cannot be shared out evenly."""
        uneven = sorted(size for size in sizes or () if size % self.world)
        if uneven:
            raise DataError(
                f"fit: the data give batches of {uneven[0]} rows, which do not split evenly over {self.world} processes "
                "(tensor data with fewer rows than batch_size, or a DataLoader's last partial batch); use a batch size "
                f"that is a multiple of {self.world} and at most the number of rows, and DataLoader(drop_last=True)"
            )

    def shard(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """This rank's contiguous share of a global batch ``[B, ...] -> [B / world, ...]``."""
        if self.world == 1:
            return x, context
        if x.shape[0] % self.world:  # equal shares, or the averaged gradient is not the whole batch's
            raise DataError(
                f"fit: a batch of {x.shape[0]} rows does not split evenly over {self.world} processes (tensor data "
                "with fewer rows than batch_size, or a DataLoader's last partial batch); use a batch size that is a "
                f"multiple of {self.world} and at most the number of rows, and DataLoader(drop_last=True)"
            )
        share = x.shape[0] // self.world
        rows = slice(self.rank * share, (self.rank + 1) * share)
        return x[rows], None if context is None else context[rows]

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under DDP when distributed (parameters broadcast from rank 0), else itself."""
        if not self.enabled:
            return module
        device, _ = placement(module)
        device_ids = [device.index] if device is not None and device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def mean(self, values: Tensor) -> Tensor:
        """The mean of ``values`` over processes (a no-op with one)."""
        if self.world == 1:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values / self.world

    def maximum(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over processes (a no-op with one)."""
        if self.world == 1:
            return value
        holder = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(holder, op=dist.ReduceOp.MAX)
        return float(holder)

    def broadcast_int(self, value: int, device: torch.device) -> int:
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        holder = torch.tensor([value], dtype=torch.long, device=device)
        dist.broadcast(holder, src=0)
        return int(holder)

    def close(self, *, barrier: bool = True) -> None:
        """Tear the group down if this object made it; ``barrier=False`` on the way out of an error.

        A rank leaving on an error (its evaluation, its checkpoint, its callback) must not wait in a barrier
        the others never reach, stuck as they are in the next step's all-reduce: tearing the group down
        makes that all-reduce fail on them too, instead of all waiting for the timeout.
        """
        if self.owns_group and dist.is_initialized():
            if barrier:
                # Without it a fast rank can tear its gloo connections down while a slow one is still
                # closing, and the slow one aborts ("terminate called without an active exception").
                dist.barrier()
            dist.destroy_process_group()

