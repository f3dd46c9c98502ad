"""The solvers' default tolerances: each solver's own table, and one rule for the half precisions."""
from __future__ import annotations

import torch

from ctflows.core.tolerance import solver_tolerance
from ctflows.elementary import Planar

TABLE = {torch.float64: 1e-12, torch.float32: 1e-6}


def test_a_dtype_in_the_table_gets_its_entry_and_a_half_precision_the_shared_rule() -> None:
    """float16 (ulp of 1: 9.8e-4) gets 1e-3; bfloat16 (ulp 0.0078) 4 ulps, 0.03125, since 1e-3 is below its
    resolution."""
    assert [solver_tolerance(t, TABLE) for t in (torch.float64, torch.float32)] == [1e-12, 1e-6]
    assert solver_tolerance(torch.float16, TABLE) == 1e-3
    assert solver_tolerance(torch.bfloat16, TABLE) == 4 * torch.finfo(torch.bfloat16).eps == 0.03125


def test_a_bfloat16_planar_inverse_returns_to_its_input_at_bfloat16s_resolution() -> None:
    """The planar layer's Newton inverse stops at the shared half-precision tolerance and still lands within a few
    of bfloat16's ulps of the input."""
    layer = Planar(3).to(torch.bfloat16)
    with torch.no_grad():
        for p, value in zip((layer.w, layer.u, layer.b), (torch.tensor([1.0, -0.5, 0.3]), torch.tensor([0.8, 0.2, -0.4]), 0.1)):
            p.copy_(torch.as_tensor(value))
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    z, _ = layer(x)
    x_back, _ = layer.inverse(z)
    assert ((x_back.float() - x.float()).abs() / (1 + x.float().abs())).max() <= 4 * torch.finfo(torch.bfloat16).eps
