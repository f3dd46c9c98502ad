"""A builder's ``seed``: the model's initial weights drawn from it, torch's global generator left alone."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def initialised_from(seed: int | None) -> Iterator[None]:
    """Within the block, torch's global generator is a fork seeded with ``seed`` (``None``: no change at all)."""
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield
