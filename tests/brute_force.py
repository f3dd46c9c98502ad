"""The brute-force log-det the layer tests compare against: autograd's full Jacobian of each row, then its slogdet."""
from __future__ import annotations

import torch

from ctflows.core import Transform


def brute_force_logdets(layer: Transform, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """log|det ∂z/∂x| of ``layer`` at each row of ``x [B, D]`` (with its own row of ``context [B, c]``): ``-> [B]``."""
    logdets = []
    for i in range(x.shape[0]):
        row_context = None if context is None else context[i : i + 1]
        jacobian = torch.autograd.functional.jacobian(lambda row: layer(row.unsqueeze(0), row_context)[0].squeeze(0), x[i])
        logdets.append(torch.linalg.slogdet(jacobian).logabsdet)
    return torch.stack(logdets)
