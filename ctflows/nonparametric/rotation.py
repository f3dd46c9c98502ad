"""A fixed rotation (orthogonal matrix): volume preserving, log|det J| = 0.

    z = Q x,    Qᵀ Q = I,    x = Qᵀ z

Rotation-based iterative Gaussianization (Laparra et al. 2011) alternates these with marginal
Gaussianization; :func:`pca_rotation` and :func:`random_rotation` are its two choices of Q. Unlike
:class:`~ctflows.linear.LULinear` the matrix is a buffer, so the log-det is exactly zero and the inverse
is a transpose; fine-tuning leaves it fixed. Build it in the dtype it will run in: a float32 matrix cast
to float64 is orthogonal only to ~1e-7, which the zero log-det then ignores.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ctflows.core.transform import Transform, zeros_logdet
from ctflows.errors import ConfigurationError


class Rotation(Transform):
    """``z = x Qᵀ`` for a fixed orthogonal ``Q [D, D]`` (a buffer); shapes ``[B, D] -> [B, D]``, log-det 0.

    Laparra, Camps-Valls & Malo 2011 (rotation-based iterative Gaussianization).
    """

    def __init__(self, matrix: Tensor) -> None:
        super().__init__()
        matrix = torch.as_tensor(matrix)
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or not matrix.is_floating_point():
            raise ConfigurationError(f"Rotation: need a square floating matrix, got shape {list(matrix.shape)}")
        eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
        error = float((matrix.T @ matrix - eye).abs().max())
        if error > 1e-5:
            raise ConfigurationError(f"Rotation: the matrix is not orthogonal (max |QᵀQ - I| = {error:.2e})")
        self.event_shape = (matrix.shape[0],)
        self.register_buffer("matrix", matrix.clone())

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return x @ self.matrix.T, zeros_logdet(x)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return z @ self.matrix, zeros_logdet(z)


def random_rotation(features: int, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None) -> Rotation:
    """A Haar-distributed random rotation: QR of a Gaussian matrix with R's diagonal made positive (Mezzadri 2007)."""
    q, r = torch.linalg.qr(torch.randn(features, features, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # without the sign fix QR's output is not uniform on O(D)
    return Rotation(q.to(dtype or torch.get_default_dtype()))


def pca_rotation(x: Tensor) -> Rotation:
    """The rotation onto the principal axes of ``x [N, D]`` (largest variance first)."""
    centred = x - x.mean(dim=0)
    _, vectors = torch.linalg.eigh(centred.T.double() @ centred.double() / max(x.shape[0] - 1, 1))
    return Rotation(vectors.flip(1).T.to(x.dtype))
