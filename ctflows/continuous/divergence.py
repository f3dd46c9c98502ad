"""Divergence ``tr(∂v/∂x)`` of a velocity field, exactly or by Hutchinson's estimator.

    exact:       tr J = Σ_i e_iᵀ J e_i                    D vector-Jacobian products, batched into one call
    Hutchinson:  tr J ≈ εᵀ J ε,  E[εεᵀ] = I               one vector-Jacobian product (Hutchinson 1990;
                                                          used for CNFs by Grathwohl et al., FFJORD, 2019)

``exact_divergence`` and ``hutchinson_divergence`` take the output ``v = field(t, x)`` [B, D] and the input
``x`` [B, D] it was computed from (``x`` must require grad) and use reverse mode; ``create_graph=True`` keeps
the result differentiable, as training needs. Fields with a ``forward_with_jvp`` method (the MLPs of
:mod:`ctflows.continuous.fields`) push tangents forward instead (``*_forward_mode``): the same numbers
without a double backward pass, and without autograd at all under ``torch.no_grad()``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ctflows.core.counts import optional_count
from ctflows.core.validation import check_generator
from ctflows.errors import ConfigurationError, InputError

AUTO_EXACT_MAX_FEATURES = 8
"""``"auto"`` uses the exact divergence up to this many features: there D passes cost little and remove all variance."""

ESTIMATORS = ("exact", "hutchinson", "auto")
NOISE_KINDS = ("rademacher", "gaussian")


def resolve_divergence(name: str, features: int) -> str:
    """``"exact"``, ``"hutchinson"``, or for ``"auto"`` the exact one when ``features <= AUTO_EXACT_MAX_FEATURES``."""
    if name not in ESTIMATORS:
        raise ConfigurationError(f"divergence estimator {name!r} is not one of {ESTIMATORS}")
    if name == "auto":
        return "exact" if features <= AUTO_EXACT_MAX_FEATURES else "hutchinson"
    return name


def _check_pair(owner: str, v: Tensor, x: Tensor) -> None:
    """``v`` and ``x`` must be ``[B, D]`` tensors of one shape, connected by autograd: else autograd's own error,
    about batched gradients or a missing grad_fn, is all a caller would see."""
    if not (isinstance(x, Tensor) and isinstance(v, Tensor)) or x.dim() != 2 or v.shape != x.shape:
        shapes = [list(a.shape) if isinstance(a, Tensor) else type(a).__name__ for a in (v, x)]
        raise InputError(f"{owner}: v and x must both be [batch, D] tensors of one shape, got v {shapes[0]} and x {shapes[1]}")
    if not x.requires_grad:
        raise InputError(f"{owner}: x does not require grad; call x.requires_grad_() before computing v = field(t, x)")
    if not v.requires_grad:
        raise InputError(
            f"{owner}: v has no autograd graph; compute it from x with grad enabled (not under torch.no_grad() "
            "and not detached)"
        )


def check_noise(owner: str, noise: Tensor, x: Tensor) -> None:
    """Hutchinson probes must match ``x`` in shape and dtype (one probe per sample, no silent casts)."""
    if not isinstance(noise, Tensor) or noise.shape != x.shape or noise.dtype != x.dtype:
        got = f"{list(noise.shape)} {noise.dtype}" if isinstance(noise, Tensor) else type(noise).__name__
        raise InputError(
            f"{owner}: noise must be a tensor of x's shape {list(x.shape)} and dtype {x.dtype}, got {got}; "
            "draw it with sample_noise(x)"
        )


def _check_jvp_field(owner: str, field: object, x: Tensor) -> None:
    """The forward-mode estimators call ``field.forward_with_jvp`` on ``x [B, field.features]``."""
    if not callable(getattr(field, "forward_with_jvp", None)):
        raise ConfigurationError(
            f"{owner}: the field {type(field).__name__} has no forward_with_jvp method; use a ctflows.continuous "
            "field (TimeMLP, ...), or the reverse-mode estimator on v = field(t, x)"
        )
    features = getattr(field, "features", None)
    if not isinstance(x, Tensor) or x.dim() != 2 or (features is not None and x.shape[1] != features):
        got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"{owner}: x must have shape [batch, {features or 'D'}], got {got}")


def exact_divergence(
    v: Tensor, x: Tensor, *, create_graph: bool = False, chunk_size: int | None = None, return_jacobian: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Exact ``tr(∂v/∂x)`` per sample: ``v, x [B, D] -> (div [B], J [B, D, D] or None)``.

    The D vector-Jacobian products ``e_iᵀ J`` run as one batched backward pass (``is_grads_batched``, a
    vmap over autograd), not a Python loop. Cost: about D backward passes of the field in time and D
    copies of its activations in memory (``chunk_size`` basis vectors at a time bounds the memory).
    Variance: none. ``J[b, i, :] = ∂v_i/∂x`` is returned when asked (e.g. for ‖J‖_F²).
    """
    _check_pair("exact_divergence", v, x)
    chunk_size = optional_count("exact_divergence", "chunk_size", chunk_size)
    batch, d = x.shape
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    step = d if chunk_size is None else chunk_size
    diagonals, rows = [], []
    for start in range(0, d, step):
        basis = eye[start : start + step].unsqueeze(1).expand(-1, batch, d)  # [k, B, D]
        last = start + step >= d
        (vjp,) = torch.autograd.grad(
            v, x, basis, is_grads_batched=True, create_graph=create_graph, retain_graph=create_graph or not last,
            allow_unused=True,
        )
        if vjp is None:  # v depends on parameters but not on x (a translation field): its Jacobian is 0
            vjp = torch.zeros_like(basis)
        k = vjp.shape[0]
        diagonals.append(vjp[torch.arange(k, device=x.device), :, torch.arange(start, start + k, device=x.device)])
        if return_jacobian:
            rows.append(vjp)
    div = torch.cat(diagonals, dim=0).sum(dim=0)
    jacobian = torch.cat(rows, dim=0).transpose(0, 1) if return_jacobian else None
    return div, jacobian


def hutchinson_divergence(v: Tensor, x: Tensor, noise: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """Hutchinson's estimate ``εᵀ (∂v/∂x) ε`` per sample: ``v, x, ε [B, D] -> (div [B], εᵀJ [B, D])``.

    Unbiased for any ε with E[εεᵀ] = I. Cost: one backward pass, independent of D. Variance per sample,
    with S = (J + Jᵀ)/2: Gaussian 2‖S‖_F², Rademacher 2(‖S‖_F² - Σ_i S_ii²), the smallest among i.i.d.
    probes (Hutchinson 1990); it shrinks as 1/K when K probes are averaged. The second output ``εᵀJ`` is
    returned so the Jacobian Frobenius regularizer E‖εᵀJ‖² = ‖J‖_F² (Finlay et al. 2020) reuses it.
    """
    _check_pair("hutchinson_divergence", v, x)
    check_noise("hutchinson_divergence", noise, x)
    (eps_jac,) = torch.autograd.grad(v, x, noise, create_graph=create_graph, allow_unused=True)
    if eps_jac is None:  # v does not depend on x: εᵀJ = 0
        eps_jac = torch.zeros_like(noise)
    return (eps_jac * noise).sum(dim=-1), eps_jac


def exact_divergence_forward_mode(
    field, t: Tensor, x: Tensor, context: Tensor | None, *, chunk_size: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(v [B, D], tr ∂v/∂x [B], Jᵀ [B, D, D])`` from ``field.forward_with_jvp`` on the D basis vectors.

    Cost: about D + 1 forward passes, batched (``chunk_size`` basis vectors per pass bounds the memory);
    no variance. ``‖Jᵀ‖_F² = ‖J‖_F²``, so the Frobenius regularizer can use the transposed Jacobian as it is.
    """
    _check_jvp_field("exact_divergence_forward_mode", field, x)
    chunk_size = optional_count("exact_divergence_forward_mode", "chunk_size", chunk_size)
    d = x.shape[1]
    if chunk_size is None or chunk_size >= d:
        v, jt = field.forward_with_jvp(t, x, context)
        return v, jt.diagonal(dim1=-2, dim2=-1).sum(-1), jt
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    parts = []
    for start in range(0, d, chunk_size):
        v, jt = field.forward_with_jvp(t, x, context, eye[start : start + chunk_size].expand(x.shape[0], -1, -1))
        parts.append(jt)
    jt = torch.cat(parts, dim=1)
    return v, jt.diagonal(dim1=-2, dim2=-1).sum(-1), jt


def hutchinson_divergence_forward_mode(
    field, t: Tensor, x: Tensor, context: Tensor | None, noise: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``(v [B, D], εᵀJε [B], Jε [B, D])`` from one ``forward_with_jvp`` pass with the single tangent ε.

    Unbiased with the same variance as :func:`hutchinson_divergence` (the estimate is the same number);
    E‖Jε‖² = ‖J‖_F² too, so ``Jε`` serves the Frobenius regularizer. Cost: about two forward passes.
    """
    _check_jvp_field("hutchinson_divergence_forward_mode", field, x)
    check_noise("hutchinson_divergence_forward_mode", noise, x)
    v, jv = field.forward_with_jvp(t, x, context, noise.unsqueeze(1))
    jv = jv.squeeze(1)
    return v, (jv * noise).sum(dim=-1), jv


def sample_noise(like: Tensor, kind: str = "rademacher", generator: torch.Generator | None = None) -> Tensor:
    """Probe vectors ε with E[εεᵀ] = I, shaped, typed and placed like ``like``: ±1 (Rademacher) or N(0, 1).

    A CNF draws them once per solve and holds them fixed along the trajectory, so the integrated log-det
    is an unbiased estimate of one continuous quantity rather than a sum of independent noisy steps.
    """
    if not isinstance(like, Tensor) or not like.is_floating_point():
        got = like.dtype if isinstance(like, Tensor) else type(like).__name__
        raise InputError(f"sample_noise: like must be a floating-point tensor (the noise takes its dtype), got {got}")
    check_generator("sample_noise", generator, like.device)
    if kind == "gaussian":
        return torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator)
    if kind == "rademacher":
        bits = torch.randint(0, 2, like.shape, device=like.device, generator=generator)
        return bits.to(like.dtype) * 2 - 1
    raise ConfigurationError(f"noise kind {kind!r} is not one of {NOISE_KINDS}")
