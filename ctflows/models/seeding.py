"""A builder's ``seed``: the model's initial weights drawn from it, torch's global generator left alone."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def initialised_from(seed: int | None) -> Iterator[None]:
    """Within the block, torch's global generator is a fork seeded with ``seed`` (``None``: no change at all).

    Only the CPU generator, where the models are built, is forked and seeded: ``torch.manual_seed`` would also
    reseed every CUDA (MPS, XPU) generator, which ``fork_rng(devices=[])`` does not restore.
    """
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.default_generator.manual_seed(int(seed))  # int: a NumPy integer from another caller
        yield
