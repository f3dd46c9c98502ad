"""An affine whitening layer set from data, as a fine-tunable :class:`~ctflows.linear.LULinear`.

    z = W (x - μ),    W = Λ^{-1/2} Vᵀ   (Σ = V Λ Vᵀ, the sample covariance),    log|det J| = -½ Σ log λ_i

After it the data has zero mean and identity covariance, the starting point of Tabak & Turner's
ascent (the best Gaussian fit is then N(0, I) itself). W is loaded into LULinear's factors
W = P L U, so the layer is an ordinary LULinear that later training may move.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ctflows.core.span import mean_and_covariance
from ctflows.errors import DataError
from ctflows.linear import LULinear


def set_lu_linear(layer: LULinear, weight: Tensor, bias: Tensor) -> LULinear:
    """Load ``z = weight x + bias`` (``weight [D, D]`` invertible, ``bias [D]``) into ``layer``'s LU factors."""
    p, lower, upper = torch.linalg.lu(weight.double())
    diag = torch.diagonal(upper)
    with torch.no_grad():
        like = layer.bias
        layer.permutation.copy_(p.to(like))
        layer.sign.copy_(torch.sign(diag).to(like))
        layer.lower.copy_(torch.tril(lower, -1).to(like))
        layer.upper.copy_(torch.triu(upper, 1).to(like))
        layer.log_diag.copy_(torch.log(diag.abs()).to(like))
        layer.bias.copy_(bias.to(like))
    return layer


def whitening_layer(x: Tensor, *, eps: float = 1e-8) -> LULinear:
    """An LULinear mapping ``x [N, D]`` to zero mean and identity covariance (PCA whitening).

    Raises :class:`DataError` when the covariance is singular (eigenvalue below ``eps`` times the largest).
    """
    n, d = x.shape
    if n < d + 1:
        raise DataError(f"whitening_layer: need more than D = {d} points to estimate a covariance, got {n}")
    mean, moments = mean_and_covariance(x)
    values, vectors = torch.linalg.eigh(moments * (n / (n - 1)))
    if float(values.min()) <= eps * float(values.max()):
        # Points on a hyperplane are refused by the fits before this (core.span.check_spans_space, scale-free);
        # here that, or columns whose scales differ by more than 1/√eps.
        raise DataError(
            f"whitening_layer: the data's covariance is singular or too ill-conditioned (smallest / largest "
            f"eigenvalue {max(float(values.min()), 0.0) / float(values.max()):.1e}, at most {eps:g} allowed): the points "
            "lie near a lower-dimensional subspace, or the columns have very different scales; standardise the "
            "columns first, e.g. (x - x.mean(0)) / x.std(0), and drop redundant ones"
        )
    weight = vectors.T / values.sqrt().unsqueeze(1)
    layer = LULinear(d, identity_init=True).to(dtype=x.dtype, device=x.device)
    return set_lu_linear(layer, weight, -weight @ mean)
