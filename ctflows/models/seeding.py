"""A builder's ``seed``: the model's initial weights drawn from it, torch's global generator left alone."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def initialised_from(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Within the block, torch's global generator is a fork seeded with ``seed`` (``None``: no change at all).

    Only the CPU generator and that of ``device`` (by default torch's default device, where models are built,
    see ``torch.set_default_device``) when it is a CUDA device are forked and seeded: ``torch.manual_seed``
    would reseed every CUDA (MPS, XPU) generator, and only the forked ones are restored afterwards.
    """
    device = device if device is not None else torch.empty(0).device
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, enabled=seed is not None):
        if seed is not None:
            torch.default_generator.manual_seed(int(seed))  # int: a NumPy integer from another caller
            for gpu in cuda:
                with torch.cuda.device(gpu):
                    torch.cuda.manual_seed(int(seed))
        yield
