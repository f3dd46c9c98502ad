"""One comparison for the training tests that check two models hold the very same parameters."""
from __future__ import annotations

import torch


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Assert ``a`` and ``b`` have as many parameters, each bitwise equal to its counterpart."""
    first, second = list(a.parameters()), list(b.parameters())
    assert len(first) == len(second), f"{len(first)} parameters against {len(second)}"
    for index, (p, q) in enumerate(zip(first, second)):
        assert torch.equal(p, q), f"parameter {index} differs"
