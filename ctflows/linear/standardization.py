"""A fixed per-feature standardisation, set once from data and never trained.

    z = (x - μ) / σ,      log|det J| = -Σ_i log σ_i

Unlike :class:`~ctflows.linear.ActNorm`, μ and σ are buffers: no optimizer moves them, so the layer can
sit in front of a CNF trained by flow matching (which regresses the velocity field alone and would leave
a learnable layer at whatever weight decay made of it). Put it first when data come in arbitrary units.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ctflows.core.counts import real_setting
from ctflows.core.transform import Transform
from ctflows.errors import DataError


class Standardization(Transform):
    """``z = (x - loc) / scale`` with fixed ``loc [D]`` and ``scale [D] > 0``; shapes ``[B, D] -> [B, D]``."""

    def __init__(self, loc: Tensor, scale: Tensor) -> None:
        super().__init__()
        try:
            loc, scale = torch.as_tensor(loc), torch.as_tensor(scale)
        except (TypeError, ValueError, RuntimeError):
            raise DataError(f"Standardization: loc and scale must be [D] tensors of numbers, got {loc!r} and {scale!r}") from None
        if loc.dtype == torch.bool or scale.dtype == torch.bool or loc.is_complex() or scale.is_complex():
            raise DataError(f"Standardization: loc and scale must be real numbers, got {loc.dtype} and {scale.dtype}")
        # Integer statistics would stay integer buffers: no dtype for .double() to move, and a float32 log-det.
        dtype = torch.promote_types(loc.dtype, scale.dtype)
        loc, scale = (t.to(dtype if dtype.is_floating_point else torch.get_default_dtype()) for t in (loc, scale))
        if loc.dim() != 1 or loc.shape != scale.shape or loc.numel() == 0:
            raise DataError(f"Standardization: loc and scale must both be [D] with D >= 1, got {list(loc.shape)} and {list(scale.shape)}")
        if not (torch.isfinite(loc).all() and torch.isfinite(scale).all() and (scale > 0).all()):
            raise DataError("Standardization: loc must be finite and scale finite and positive")
        self.event_shape = (loc.shape[0],)
        self.register_buffer("loc", loc.clone())
        self.register_buffer("scale", scale.clone())

    @classmethod
    def from_data(cls, x: Tensor, *, min_scale: float = 1e-8) -> "Standardization":
        """The standardisation of ``x [N, D]`` (N ≥ 2): its per-feature mean and standard deviation.

        Raises :class:`DataError` for non-finite values or a feature whose standard deviation is below
        ``min_scale`` times the largest one (a constant column has no density to model).
        """
        if not isinstance(x, Tensor):
            raise DataError(
                f"Standardization.from_data: x must be a torch.Tensor, got {type(x).__name__}; convert it with torch.as_tensor(x)"
            )
        if x.dim() != 2 or x.shape[0] < 2 or not x.is_floating_point():
            raise DataError(f"Standardization.from_data: need a floating [N, D] tensor with N >= 2, got {x.dtype} {list(x.shape)}")
        min_scale = real_setting("Standardization.from_data", "min_scale", min_scale, "a number >= 0, e.g. 1e-8", lambda m: m >= 0)
        if not torch.isfinite(x).all():
            raise DataError("Standardization.from_data: the data contain NaN or Inf; remove or impute those rows first")
        loc, scale = x.mean(dim=0), x.std(dim=0)
        flat = (scale <= min_scale * scale.max()).nonzero().flatten().tolist()
        if flat:
            raise DataError(
                f"Standardization.from_data: feature(s) {flat} are constant in the data; drop them (a constant "
                "column has no density) or add noise of the measurement's precision"
            )
        return cls(loc, scale)

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return (x - self.loc) / self.scale, (-self.scale.log().sum()).expand(x.shape[0])

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return z * self.scale + self.loc, self.scale.log().sum().expand(z.shape[0])
